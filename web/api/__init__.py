"""The desks' API under /api/v1: one route per operation of pki.desk.contract, no rule of its own.

Each handler reads the operator's bearer token, validates the input model (path, query or JSON body), runs
the operation and answers its output model as JSON. Writes take an Idempotency-Key (services/idempotency.py):
a retry gets the first answer. Errors are problem+json (web/errors.py). Bearer tokens and passwords are
taken only over HTTPS, or over plain HTTP from a loopback address (a reverse proxy on the same host, or a
desk on the server itself).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from pki.desk.contract import Operation, operations
from pki.desk.ops.sessions import Credentials
from pki.errors import ConflictError, FieldError, PkiError, ValidationError
from pki.services import Actor, Service
from pki.services.idempotency import Claim, claiming, request_hash
from web.api.inputs import MAX_BODY, parse_input
from web.api.problems import InsecureTransportError, MissingSessionError

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
JSON_TYPE = "application/json"
KEY_HEADER = "Idempotency-Key"
# How long a retry waits for the answer of a first attempt that has committed but not yet stored it.
ANSWER_WAIT_STEP, ANSWER_WAIT_STEPS = 0.05, 20


def service() -> Service:
    svc: Service = current_app.extensions["pki_service"]
    return svc


def make_api() -> Blueprint:
    api = Blueprint("api", __name__, url_prefix=PREFIX)
    for op in operations().values():
        api.add_url_rule(
            op.path.replace("{", "<").replace("}", ">"),
            endpoint=op.name.replace(".", "_"),
            view_func=_view(op),
            methods=[op.method],
        )

    @api.get("/openapi.json")
    def openapi() -> Response:
        from web.api.openapi import document

        return _json(document(), 200)

    @api.before_request
    def limits() -> None:
        request.max_content_length = MAX_BODY

    return api


def register_api(app: Flask) -> None:
    from web.ui import csrf

    api = make_api()
    csrf.exempt(api)  # bearer tokens, not cookies: nothing a browser sends on its own
    app.register_blueprint(api)


def _json(document: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    response = Response(body, status=status, mimetype=JSON_TYPE)
    response.headers["Cache-Control"] = "no-store"
    response.headers.update(headers or {})
    return response


def _secure_transport() -> None:
    """Refuse secrets over plain HTTP unless the client is this host (RFC 6750 §5.3: bearer tokens need TLS).

    A request a proxy forwarded (X-Forwarded-Proto, X-Forwarded-For or Forwarded present) is the proxy's
    client's, not this host's: from loopback it counts as HTTPS only when the proxy says so, and is refused
    otherwise, so a proxy listening on plain HTTP cannot relay passwords and tokens."""
    if request.scheme == "https":
        return
    if current_app.config.get("PKI_BEHIND_PROXY"):  # everything arrives through the proxy: HTTPS or nothing
        raise InsecureTransportError()
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    relayed = forwarded or "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    if relayed:
        if forwarded == "https" and _loopback():
            return
        raise InsecureTransportError()
    if _loopback():
        return
    raise InsecureTransportError()


def _loopback() -> bool:
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _actor(svc: Service) -> Actor:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingSessionError()
    return svc.sessions.resolve(token.strip())


def _view(op: Operation) -> Any:
    def view(**path: str) -> Response:
        _secure_transport()
        svc = service()
        if op.name == "session.open":
            credentials = parse_input(op, path)
            assert isinstance(credentials, Credentials)
            opened = svc.sessions.login(
                credentials.username, credentials.password, address=request.remote_addr or ""
            )
            return _json(op.dump(opened), op.status)
        actor = _actor(svc)
        if op.name == "session.close":
            svc.sessions.logout(request.headers["Authorization"].partition(" ")[2].strip())
            return _json(op.dump({"closed": True}), op.status)
        data = parse_input(op, path)
        key = request.headers.get(KEY_HEADER, "").strip()
        if not (op.writes and key):
            return _json(op.call(svc, actor, data), op.status)
        return _idempotent(op, svc, actor, data, key)

    view.__name__ = op.name.replace(".", "_")
    return view


def _idempotent(op: Operation, svc: Service, actor: Actor, data: Any, key: str) -> Response:
    if len(key) > 128 or not key.isprintable():
        raise ValidationError([FieldError(KEY_HEADER, "at most 128 printable characters", "幂等键无效")])
    # The request as sent: method, path (its identifiers) and body; the same key for another one is refused.
    sent = f"{request.method} {request.path}\n".encode() + request.get_data()
    claim = Claim(actor.username, key, op.name, request_hash(op.name, sent))
    # No look-up first: a first attempt (nearly every call) pays nothing for the key. A retry of work already
    # done either fails on its own (already issued, already revoked …) or fails to claim the key at its
    # commit (the key is unique per operator), and its transaction rolls back; then the first answer is
    # what it gets.
    try:
        with claiming(claim):
            document = op.call(svc, actor, data)
    except Exception as failure:
        replay = _replay(svc, claim) if _may_be_a_race(failure) else None
        if replay is not None:
            return replay
        raise
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    try:
        svc.idempotency.store(claim, op.status, body)
    except Exception:  # the work is committed: its answer goes out; a retry is told it was carried out
        log.exception("answer to %s (Idempotency-Key %r) not kept", op.name, claim.key)
    return _json(document, op.status)


def _may_be_a_race(failure: Exception) -> bool:
    return isinstance(failure, PkiError) or type(failure).__name__ == "IntegrityError"


def _replay(svc: Service, claim: Claim) -> Response | None:
    found = svc.idempotency.find(claim.username, claim.key)
    for _ in range(ANSWER_WAIT_STEPS):  # the first attempt committed and is storing its answer right now
        if found is None or found.status is not None:
            break
        time.sleep(ANSWER_WAIT_STEP)
        found = svc.idempotency.find(claim.username, claim.key)
    if found is None:
        return None
    if (found.operation, found.request_hash) != (claim.operation, claim.request_hash):
        raise ConflictError(
            f"Idempotency-Key {claim.key!r} was used for a different request: use a new key",
            message_zh="幂等键已用于其他请求",
        )
    if found.status is None or found.response is None:
        raise ConflictError(
            f"the request with Idempotency-Key {claim.key!r} was carried out, but its answer was not kept "
            "(the server stopped meanwhile): look up the result",
            message_zh="该请求已执行，但结果未保存，请查询结果",
        )
    response = Response(found.response, status=found.status, mimetype=JSON_TYPE)
    response.headers["Idempotent-Replayed"] = "true"
    response.headers["Cache-Control"] = "no-store"
    return response
