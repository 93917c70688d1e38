"""The value types of the desk's documents and inputs, light enough for a desk to import without the
database layer (pki/desk/schemas.py builds the record documents from the tables, for the center's side)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from pydantic import Base64Bytes, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from pki.ids import MAX_ID

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
