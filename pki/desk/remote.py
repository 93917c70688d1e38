"""The remote desk: an acceptance point's machine working through the center's API.

It holds the server's URL and the operator's session token, nothing else: no database URL, no CA key. It
validates each call with the operation's own input model (so a bad argument is refused before a round
trip, with the same message), sends it, and turns a problem+json answer back into the PkiError the service
raised, so the CLI prints the same line and exits with the same code as on the center's host.

Writes carry an Idempotency-Key; a call that meets a network failure or a server going away is sent again
with the same key (a few times, with a pause), so it is carried out at most once.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx

from pki.desk.contract import Operation, Sink, operations, validate
from pki.errors import FieldError, ImportRowsError, PkiError, RowError, ValidationError

API = "/api/v1"
RETRIES = 4
PAUSE = 0.5  # seconds before the first retry; doubled each time
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class ServerUnreachableError(PkiError):
    code = "unreachable"

    def __init__(self, server: str, why: str) -> None:
        super().__init__(f"server {server} unreachable: {why}", message_zh=f"无法连接服务器 {server}")


class RemoteDesk:
    def __init__(self, server: str, token: str, username: str, *, verify: bool | str = True) -> None:
        self.server = server.rstrip("/")
        self.username = username
        self._client = httpx.Client(
            base_url=self.server + API,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "pkictl-desk"},
            timeout=TIMEOUT,
            verify=verify,
        )

    def close(self) -> None:
        self._client.close()

    def call(self, name: str, /, sink: Sink | None = None, **fields: Any) -> Any:
        """As LocalDesk.call: the server's answer, its ``rows`` handed to ``sink`` when one is given."""
        op = operations()[name]
        data = validate(op, fields)  # refused here exactly as the server would refuse it
        document = data.model_dump(mode="json", exclude_none=True)
        path = op.path.format(**{p: quote(str(document.pop(p)), safe="") for p in op.path_params})
        headers = {"Idempotency-Key": uuid.uuid4().hex} if op.writes else {}
        if op.method == "GET":
            answer = self._send(op, path, headers, params=document)
        else:
            answer = self._send(op, path, headers, json_body=document)
        if sink is not None and op.rows is not None:
            for row in answer.pop(op.rows):
                sink(row)
        return answer

    def _send(
        self,
        op: Operation,
        path: str,
        headers: dict[str, str],
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> Any:
        pause = PAUSE
        for attempt in range(RETRIES + 1):
            try:
                response = self._client.request(
                    op.method,
                    path,
                    params=params,
                    json=json_body if op.method != "GET" else None,
                    headers=headers,
                )
            except httpx.TransportError as e:
                if attempt == RETRIES:
                    raise ServerUnreachableError(self.server, str(e) or type(e).__name__) from None
            else:
                if not _gone(response) or attempt == RETRIES:
                    return _answer(response, self.server)
            time.sleep(pause)
            pause *= 2
        raise AssertionError("unreachable")


def _gone(response: httpx.Response) -> bool:
    """A proxy's word that the server is away (restarting, overloaded): worth the same call again. The
    server's own 503 (a problem document: its CA key or configuration) is not."""
    if response.status_code in (502, 504):
        return True
    return response.status_code == 503 and not response.headers.get("content-type", "").startswith(
        "application/problem+json"
    )


def _answer(response: httpx.Response, server: str) -> Any:
    if response.is_success:
        return response.json()
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict) or "code" not in problem:
        raise ServerUnreachableError(server, f"HTTP {response.status_code} without a problem document")
    raise error_from(problem)


def _classes(base: type[PkiError]) -> dict[str, type[PkiError]]:
    found: dict[str, type[PkiError]] = {}
    for cls in base.__subclasses__():
        found.setdefault(cls.code, cls)
        for code, sub in _classes(cls).items():
            found.setdefault(code, sub)
    return found


def error_from(problem: dict[str, Any]) -> PkiError:
    """The service's error again, from its problem document: same class (by code), same messages."""
    code = str(problem.get("code", "error"))
    detail, detail_zh = str(problem.get("detail", "")), str(problem.get("detail_zh", ""))
    if code == "invalid" and problem.get("rows") is not None:
        rows = [
            RowError(
                int(r["line"]),
                tuple(FieldError(e["field"], e["message"], e.get("message_zh", "")) for e in r["errors"]),
            )
            for r in problem["rows"]
        ]
        return ImportRowsError(rows, total=int(problem.get("total", len(rows))))
    if code == "invalid" and problem.get("errors"):
        return ValidationError(
            FieldError(e["field"], e["message"], e.get("message_zh", e["message"])) for e in problem["errors"]
        )
    cls = _classes(PkiError).get(code, PkiError)
    error = cls.__new__(cls)
    PkiError.__init__(error, detail, message_zh=detail_zh)
    return error


def open_session(server: str, username: str, password: str, *, verify: bool | str = True) -> dict[str, Any]:
    """Log in to ``server``: the session document (token, operator, roles, expiry)."""
    base = server.rstrip("/")
    try:
        with httpx.Client(base_url=base + API, timeout=TIMEOUT, verify=verify) as client:
            response = client.post("/sessions", json={"username": username, "password": password})
    except httpx.TransportError as e:
        raise ServerUnreachableError(base, str(e) or type(e).__name__) from None
    document: dict[str, Any] = _answer(response, base)
    return document
