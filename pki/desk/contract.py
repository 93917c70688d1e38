"""The desk's operations: one table that the API, its OpenAPI document and both desks are built from.

An :class:`Operation` names what a desk may ask of the center (``request.new``), where the API serves it
(method and path under /api/v1), the typed input it takes and the typed output it returns, and the one
service call it makes. The API's handlers validate a request body against ``input``, call ``run`` and dump
the result through ``output``; the local desk (the CLI on the center's host) calls the same ``run`` with the
same models; the remote desk sends ``input`` over HTTP. So a rule cannot live in one path and not the other,
and ``--json`` prints the same document whichever side a command ran on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

if TYPE_CHECKING:
    from pki.services import Actor, Service

Method = Literal["GET", "POST", "PUT", "DELETE"]
_PARAM = re.compile(r"\{(\w+)\}")


class Input(BaseModel):
    """Base of every operation's input: unknown fields are refused, strings are not coerced from numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoInput(Input):
    pass


Runner = Callable[["Service", "Actor | None", Any], Any]
Sink = Callable[[Any], None]
# An operation whose document carries a long list (``rows``): the service hands the rows to a sink one at a
# time and returns the rest of the document, so a desk on the center's host never holds them all.
Streamer = Callable[["Service", "Actor | None", Any, Sink], Any]


@dataclass(frozen=True)
class Later:
    """An output type built on first use: the record documents import the database models, which a remote
    desk (it only sends inputs and reads JSON back) never needs to load."""

    build: Callable[[], Any]


def later(build: Callable[[], Any]) -> Later:
    return Later(build)


@dataclass(frozen=True)
class Operation:
    name: str  # "request.new": the CLI's word, the OpenAPI operationId
    method: Method
    path: str  # "/requests/{request_id}/accept", under /api/v1; path parameters are fields of ``input``
    input: type[Input]
    output: Any  # a type pydantic can dump: a model, list[Model], …
    run: Runner
    summary: str
    tag: str
    needs_actor: bool = True  # the operator acting (locally: --as USER and a password)
    status: int = 200
    # Operations that change something: the API takes an Idempotency-Key for them (but for those whose input or
    # answer carries secrets, which are safe to repeat and never kept for a replay: see ``secrets``).
    writes: bool = field(default=False)
    rows: str | None = None  # the list field a desk may take one row at a time (see :data:`Streamer`)
    stream: Streamer | None = None

    @cached_property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PARAM.findall(self.path))

    @cached_property
    def adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.output.build() if isinstance(self.output, Later) else self.output)

    def dump(self, result: Any) -> Any:
        """The JSON-ready document of ``result`` (an ORM row, a dataclass or a dict), through ``output``."""
        return self.adapter.dump_python(
            self.adapter.validate_python(result, from_attributes=True), mode="json", by_alias=True
        )

    @cached_property
    def row_adapter(self) -> TypeAdapter[Any]:
        """The adapter of one row of the ``rows`` list."""
        from typing import get_args

        model = self.output.build() if isinstance(self.output, Later) else self.output
        (row,) = get_args(model.model_fields[self.rows].annotation)
        return TypeAdapter(row)

    def call(self, service: Service, actor: Actor | None, data: Input, sink: Sink | None = None) -> Any:
        """The operation's document; with ``sink`` (an operation with ``rows``), each row goes to the sink as
        its JSON document while the service makes it, and the document comes back without them."""
        if sink is None or self.stream is None or self.rows is None:
            return self.dump(self.run(service, actor, data))
        rows = self.row_adapter

        def each(row: Any) -> None:
            sink(
                rows.dump_python(rows.validate_python(row, from_attributes=True), mode="json", by_alias=True)
            )

        document = self.dump({**self.stream(service, actor, data, each), self.rows: []})
        del document[self.rows]
        return document


def to_json(fields: dict[str, Any]) -> str:
    """A desk's arguments as the JSON the API takes (bytes as base64, enums by value, instants ISO 8601)."""
    import base64
    import json
    from datetime import date, datetime
    from enum import Enum

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return base64.b64encode(value).decode("ascii")
        if isinstance(value, Enum):
            return value.value
        if isinstance(value, datetime | date):
            return value.isoformat()
        raise TypeError(f"cannot send {type(value).__name__}")

    return json.dumps({k: v for k, v in fields.items() if v is not None}, default=plain, ensure_ascii=False)


def validate(op: Operation, fields: dict[str, Any]) -> Input:
    """``fields`` validated by ``op``'s input model exactly as the API validates a request body."""
    return parsed(op, to_json(fields))


def parsed(op: Operation, raw: str | dict[str, Any]) -> Input:
    """``op``'s input from JSON text (a desk) or decoded JSON, query and path values (the API). Raises
    ValidationError naming each bad field, or NotFoundError when an identifier in the path can name no
    record (as the service says for an id beyond any row: pki/ids.py)."""
    import pydantic

    from pki.errors import FieldError, ValidationError
    from pki.ids import known_id

    nul = _nul_field(raw)
    if nul is not None:  # PostgreSQL text cannot hold one, and no field of ours means one
        raise ValidationError([FieldError(nul, "contains a NUL character", f"{nul}：含有非法字符")])
    try:
        return op.input.model_validate_json(raw) if isinstance(raw, str) else op.input.model_validate(raw)
    except pydantic.ValidationError as e:
        for item in e.errors(include_url=False):
            name = item["loc"][0] if item["loc"] else None
            if name in op.path_params and item["type"] in ("less_than_equal", "greater_than_equal"):
                known_id(int(item["input"]), str(name).removesuffix("_id"))  # raises NotFoundError
        raise ValidationError(field_errors(e)) from None


def _nul_field(raw: str | dict[str, Any]) -> str | None:
    """The first field (dotted path) whose text holds U+0000, if any (JSON text: its escape, too)."""
    data: Any = raw
    if isinstance(raw, str):
        import json

        if "\\u0000" not in raw and "\x00" not in raw:
            return None
        data = json.loads(raw)
    if not isinstance(data, dict):
        return None
    stack: list[tuple[str, Any]] = list(data.items())
    while stack:
        name, value = stack.pop()
        if isinstance(value, str) and "\x00" in value:
            return name
        if isinstance(value, dict):
            stack.extend((f"{name}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{name}.{i}", v) for i, v in enumerate(value))
    return None


def field_errors(error: Any) -> list[Any]:
    """pydantic's errors as the hierarchy's FieldErrors, each naming its field."""
    from pki.errors import FieldError

    out = []
    for item in error.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in item["loc"]) or "body"
        out.append(FieldError(name, item["msg"], f"{name}：输入无效"))
    return out


OPERATIONS: dict[str, Operation] = {}


def acting(actor: Actor | None) -> Actor:
    """The operator of an operation registered with ``needs_actor`` (every desk and the API give one)."""
    if actor is None:
        raise TypeError("this operation needs the acting operator")
    return actor


def operation(
    name: str,
    method: Method,
    path: str,
    input: type[Input],
    output: Any,
    *,
    summary: str,
    tag: str,
    needs_actor: bool = True,
    status: int = 200,
    reads_only: bool = False,
    secrets: bool = False,
    rows: str | None = None,
) -> Callable[[Any], Any]:
    """Register ``run`` as the operation ``name`` (see :class:`Operation`). ``reads_only``: a POST that
    changes nothing (its input is too large or too private for a query string): no Idempotency-Key.
    ``secrets``: a write whose input or answer carries secrets (a USB key's SO PINs): no Idempotency-Key
    either, so the API keeps neither the answer nor a hash of the request (a short PIN could be found from
    it); repeating the call must be harmless.
    ``rows``: the decorated function is a :data:`Streamer` and ``rows`` the list field it streams."""

    def register(run: Any) -> Any:
        if name in OPERATIONS:
            raise ValueError(f"operation {name!r} registered twice")
        stream: Streamer | None = run if rows is not None else None
        OPERATIONS[name] = Operation(
            name=name,
            method=method,
            path=path,
            input=input,
            output=output,
            run=run if stream is None else _collected(stream, rows),
            summary=summary,
            tag=tag,
            needs_actor=needs_actor,
            status=status,
            writes=method != "GET" and not reads_only and not secrets,
            rows=rows,
            stream=stream,
        )
        return run

    return register


def _collected(stream: Streamer, rows: str | None) -> Runner:
    """A streamer as a plain runner: its rows gathered into the document (the API answers with all of them)."""

    def run(service: Service, actor: Actor | None, data: Any) -> Any:
        gathered: list[Any] = []
        return {**stream(service, actor, data, gathered.append), str(rows): gathered}

    return run


def operations() -> dict[str, Operation]:
    """Every operation, once the modules that register them are imported."""
    from pki.desk import ops  # noqa: F401 - registers

    return OPERATIONS
