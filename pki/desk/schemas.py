"""The record documents the desk's operations return (on the center's side: it imports the tables).

The public shape of a record is made from its table model (every column but the secret or bulky ones), so
the API document cannot drift from the database; instants are ISO 8601 with their offset, as ``--json``
has always printed them.
"""

from __future__ import annotations

import types
from datetime import datetime
from typing import Any, Union, get_args, get_origin

from pydantic import Field, create_model
from sqlmodel import SQLModel

from pki.desk.types import Document, Instant
from pki.models import AuditRecord, Certificate, CertificateAuthority, CertificateRequest


def _public(annotation: Any) -> Any:
    if annotation is datetime:
        return Instant
    if get_origin(annotation) in (Union, types.UnionType):
        return Union[tuple(_public(a) for a in get_args(annotation))]  # noqa: UP007 - built at run time
    return annotation


def public_model(table: type[SQLModel], name: str, *, exclude: tuple[str, ...] = (), **extra: Any) -> Any:
    """A document model with the table's columns (less ``exclude``) and ``extra`` fields, all required."""
    fields: dict[str, Any] = {
        column: (_public(info.annotation), ...)
        for column, info in table.model_fields.items()
        if column not in exclude
    }
    return create_model(name, __base__=Document, **(fields | extra))


RequestDoc = public_model(CertificateRequest, "Request")
AuditDoc = public_model(AuditRecord, "AuditRecord", details=(dict[str, Any], ...))
CertificateDoc = public_model(
    Certificate, "Certificate", exclude=("der",), status=(str, Field(description="valid, revoked or expired"))
)
CaDoc = public_model(CertificateAuthority, "CertificateAuthority", exclude=("certificate_der", "key_ref"))
