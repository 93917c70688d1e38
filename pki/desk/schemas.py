"""Typed documents the desk's operations return, and the value types their inputs share.

The public shape of a record is made from its table model (every column but the secret or bulky ones), so
the API document cannot drift from the database; instants are ISO 8601 with their offset, as ``--json``
has always printed them.
"""

from __future__ import annotations

import base64
import types
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import Base64Bytes, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, create_model
from sqlmodel import SQLModel

from pki.ids import MAX_ID
from pki.models import AuditRecord, Certificate, CertificateAuthority, CertificateRequest

# A timestamp in a document: aware, ISO 8601 (datetime.isoformat, so "+00:00", never "Z").
Instant = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str, when_used="json")]
# An identifier from outside: range-checked before any query (pki/ids.py: PostgreSQL's INTEGER is 32 bits).
RecordId = Annotated[int, Field(ge=1, le=MAX_ID)]
Serial = Annotated[str, Field(max_length=128)]  # the service parses it (hex, colons, 0x) and names a bad one
Text = Annotated[str, Field(max_length=500)]
Name = Annotated[str, Field(min_length=1, max_length=128)]
# A file carried in JSON (a CSV, a CSR, a scan): base64; the API's body limit bounds it.
FileData = Base64Bytes


# A file in an answer (an export): raw bytes in, base64 in the JSON document.
FileOut = Annotated[
    bytes,
    PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64"}),
]


class Document(BaseModel):
    model_config = ConfigDict(from_attributes=True)


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
