"""Plain, JSON-ready views of records for the adapters (CLI --json, web)."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from pki.models import AuditRecord, Certificate, User

if TYPE_CHECKING:
    from pki.services.access import AccessResult


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def audit_to_dict(rec: AuditRecord) -> dict[str, Any]:
    import json

    data = {name: _plain(getattr(rec, name)) for name in AuditRecord.model_fields}
    data["details"] = json.loads(rec.details) if rec.details else {}
    return data


def user_to_dict(user: User, point: str | None = None) -> dict[str, Any]:
    """``point``: the name of the user's acceptance point (None: a center user)."""
    return {
        "username": user.username,
        "display_name": user.display_name,
        "roles": sorted(user.role_set()),
        "active": user.active,
        "created_at": _plain(user.created_at),
        "point": point,
    }


def certificate_to_dict(cert: Certificate, status: str) -> dict[str, Any]:
    data = {name: _plain(getattr(cert, name)) for name in Certificate.model_fields if name != "der"}
    data["status"] = status  # effective: valid, revoked or expired
    return data


def access_to_dict(result: AccessResult) -> dict[str, Any]:
    """An access decision as the CLI's --json and POST /access-check answer it."""
    return {
        "decision": result.decision,
        "reasons": list(result.reasons),
        "warnings": list(result.warnings),
        "platform": result.platform,
        "at": result.at.isoformat(),
        "serial": result.serial,
        "credential_number": result.credential_number,
        "kind": result.kind,
        "party": result.party,
    }
