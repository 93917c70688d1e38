"""An operation's input from an HTTP request: path parameters, then the query string (GET) or a JSON
object (other methods), validated by the operation's model before the service sees anything."""

from __future__ import annotations

from typing import Any

from flask import request

from pki.desk.contract import Input, Operation, parsed
from pki.errors import FieldError, ValidationError
from pki.json_input import parse_object

MAX_DEPTH = 20  # an application is two levels deep; nothing we take needs more
MAX_BODY = 24 * 1024 * 1024  # a 16 MiB file in base64, and the rest of the document


def parse_input(op: Operation, path: dict[str, str]) -> Input:
    raw: dict[str, Any]
    if op.method == "GET":
        raw = {k: v for k, v in request.args.items()}
    else:
        raw = _json_object(request.get_data(cache=True))
    raw.update(path)
    return parsed(op, raw)


def _json_object(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    if request.mimetype != "application/json":
        raise ValidationError(
            [FieldError("body", "send JSON (Content-Type: application/json)", "请求体应为JSON")]
        )
    return parse_object(body, source="request body", field="body", max_bytes=MAX_BODY, max_depth=MAX_DEPTH)
