"""The OpenAPI 3.1 document of /api/v1, built from the operations' own input and output models (pydantic's
JSON Schema 2020-12, which OpenAPI 3.1 takes as it is): the contract cannot drift from the handlers."""

from __future__ import annotations

from functools import cache
from typing import Any

from pki.desk.contract import Operation, operations
from web.api import PREFIX

REF = "#/components/schemas/{model}"
PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details; `code` is the error's kind, `detail_zh` its Chinese message",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "detail_zh": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                    "message_zh": {"type": "string"},
                },
            },
        },
        "total": {"type": "integer"},
        "rows": {"type": "array", "items": {"type": "object"}},
    },
}


@cache
def document() -> dict[str, Any]:
    schemas: dict[str, Any] = {"Problem": PROBLEM}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations().values():
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pkictl center API",
            "version": "1",
            "description": "What an acceptance point's desk asks of the certificate center. Writes take an "
            "Idempotency-Key header: a retry with the same key gets the first answer.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"session": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"session": []}],
    }


def _collect(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without its $defs, which go to the components."""
    schemas.update(schema.pop("$defs", {}))
    return schema


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    model = _collect(op.input.model_json_schema(ref_template=REF), schemas)
    properties: dict[str, Any] = model.get("properties", {})
    required = set(model.get("required", []))
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": properties[name]} for name in op.path_params
    ]
    out: dict[str, Any] = {"operationId": op.name, "summary": op.summary, "tags": [op.tag]}
    if op.method == "GET":
        parameters += [
            {"name": name, "in": "query", "required": name in required, "schema": schema}
            for name, schema in properties.items()
            if name not in op.path_params
        ]
    elif set(properties) - set(op.path_params):
        body = {
            **model,
            "properties": {k: v for k, v in properties.items() if k not in op.path_params},
            "required": sorted(required - set(op.path_params)),
        }
        name = op.input.__name__
        schemas[name] = body
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=name)}}},
        }
    if op.writes:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 128},
            }
        )
    if parameters:
        out["parameters"] = parameters
    result = _collect(op.adapter.json_schema(ref_template=REF, mode="serialization"), schemas)
    problem = {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}
    out["responses"] = {
        str(op.status): {"description": op.summary, "content": {"application/json": {"schema": result}}},
        "default": {"description": "refused or failed (problem details)", "content": problem},
    }
    if op.name == "session.open":
        out["security"] = []
    return out
