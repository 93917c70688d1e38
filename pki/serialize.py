"""Plain, JSON-ready views of records for the adapters (CLI --json, web)."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Any

from pki.models import AuditRecord, CertificateRequest, User


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def request_to_dict(req: CertificateRequest) -> dict[str, Any]:
    return {name: _plain(getattr(req, name)) for name in CertificateRequest.model_fields}


def audit_to_dict(rec: AuditRecord) -> dict[str, Any]:
    import json

    data = {name: _plain(getattr(rec, name)) for name in AuditRecord.model_fields}
    data["details"] = json.loads(rec.details) if rec.details else {}
    return data


def user_to_dict(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "roles": sorted(user.role_set()),
        "active": user.active,
        "created_at": _plain(user.created_at),
    }
