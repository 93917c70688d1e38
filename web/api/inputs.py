"""An operation's input from an HTTP request: path parameters, then the query string (GET) or a JSON
object (other methods), validated by the operation's model before the service sees anything."""

from __future__ import annotations

import json
from typing import Any

import pydantic
from flask import request

from pki.desk.contract import Input, Operation, field_errors
from pki.errors import FieldError, ValidationError

MAX_DEPTH = 32  # an application is two levels deep; nothing we take needs more


def parse_input(op: Operation, path: dict[str, str]) -> Input:
    raw: dict[str, Any]
    if op.method == "GET":
        raw = {k: v for k, v in request.args.items()}
    else:
        raw = _json_object(request.get_data(cache=True))
    raw.update(path)
    try:
        return op.input.model_validate(raw)
    except pydantic.ValidationError as e:
        raise ValidationError(field_errors(e)) from None


def _json_object(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    if request.mimetype != "application/json":
        raise ValidationError(
            [FieldError("body", "send JSON (Content-Type: application/json)", "请求体应为JSON")]
        )
    try:
        data = json.loads(body)
    except RecursionError:
        raise _too_deep() from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValidationError([FieldError("body", f"not valid JSON ({e})", "请求体不是有效的JSON")]) from None
    if not isinstance(data, dict):
        raise ValidationError([FieldError("body", "expected a JSON object", "请求体应为JSON对象")])
    if _depth(data) > MAX_DEPTH:
        raise _too_deep()
    return data


def _too_deep() -> ValidationError:
    return ValidationError(
        [FieldError("body", f"JSON nested more than {MAX_DEPTH} levels deep", "JSON嵌套层数过多")]
    )


def _depth(value: Any) -> int:
    """Nesting depth, without recursion (json.loads already refused what Python's stack cannot hold)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest
