"""The remote desk's client on its own: retries with one Idempotency-Key through a proxy's 502/503/504,
no retry of the server's own refusals, and problem documents turned back into the service's errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pki import errors
from pki.desk import remote
from pki.desk.remote import RemoteDesk, ServerUnreachableError, error_from
from pki.errors import FieldError, ImportRowsError, RowError, ValidationError
from web.api.problems import problem


class Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next (status, content type, body) of the server's script."""

    def do_POST(self) -> None:
        server: ScriptedServer = self.server  # type: ignore[assignment]
        length = int(self.headers.get("Content-Length", 0))
        server.seen.append((self.path, dict(self.headers), self.rfile.read(length)))
        status, ctype, body = server.script.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class ScriptedServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Scripted)
        self.script: list[tuple[int, str, bytes]] = []
        self.seen: list[tuple[str, dict[str, str], bytes]] = []


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    monkeypatch.setattr(remote, "PAUSE", 0.01)
    server = ScriptedServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _base(server: ScriptedServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _request_doc() -> bytes:
    return json.dumps({"id": 7}).encode()


def test_a_proxy_going_away_is_retried_with_the_same_key(scripted: ScriptedServer) -> None:
    scripted.script = [
        (502, "text/html", b"bad gateway"),
        (503, "text/html", b"unavailable"),
        (504, "text/html", b"timeout"),
        (201, "application/json", _request_doc()),
    ]
    desk = RemoteDesk(_base(scripted), "pkis_x", "u")
    assert desk.call("request.countersign", request_id=7) == {"id": 7}
    keys = {headers["Idempotency-Key"] for _, headers, _ in scripted.seen}
    assert len(scripted.seen) == 4 and len(keys) == 1
    assert {headers["Authorization"] for _, headers, _ in scripted.seen} == {"Bearer pkis_x"}


def test_the_servers_own_refusal_is_not_retried(scripted: ScriptedServer) -> None:
    refusal = problem(errors.KeyAccessError("no key"), 503)
    scripted.script = [(503, "application/problem+json", json.dumps(refusal).encode())]
    desk = RemoteDesk(_base(scripted), "pkis_x", "u")
    with pytest.raises(errors.PkiError) as caught:
        desk.call("request.countersign", request_id=7)
    assert len(scripted.seen) == 1
    assert caught.value.message == "service unavailable"  # the server's fault stays in its log


def test_giving_up_names_the_server(scripted: ScriptedServer) -> None:
    scripted.script = [(502, "text/plain", b"")] * (remote.RETRIES + 1)
    desk = RemoteDesk(_base(scripted), "pkis_x", "u")
    with pytest.raises(ServerUnreachableError) as caught:
        desk.call("request.countersign", request_id=7)
    assert caught.value.message.startswith(f"server {_base(scripted)} unreachable")


@pytest.mark.parametrize(
    "error",
    [
        errors.NotFoundError("request 5 not found", message_zh="申请 5 不存在"),
        errors.PermissionDeniedError("no", message_zh="不可"),
        errors.SeparationOfDutiesError("you entered it", message_zh="不可"),
        errors.InvalidTransitionError("wrong state", message_zh="状态"),
        errors.ConflictError("clash", message_zh="冲突"),
        errors.IssuanceError("refused", message_zh="拒绝"),
        errors.SessionExpiredError("expired"),
        errors.LoginThrottledError(15),
        errors.AuthenticationError(),
        ValidationError([FieldError("email", "not an address", "电子邮件：格式错误")]),
        ImportRowsError([RowError(3, (FieldError("unit_name", "required", "必填"),))], total=9),
    ],
    ids=lambda e: type(e).__name__,
)
def test_problems_become_the_same_errors(error: errors.PkiError) -> None:
    back = error_from(problem(error, 400))
    assert type(back) is type(error)
    assert (back.message, back.message_zh) == (error.message, error.message_zh)
    if isinstance(error, ValidationError):
        assert isinstance(back, ValidationError) and back.errors == error.errors
    if isinstance(error, ImportRowsError):
        assert isinstance(back, ImportRowsError) and back.rows == error.rows and back.total == error.total
