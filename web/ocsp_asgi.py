"""A dedicated OCSP responder as a bare ASGI app (RFC 6960 over HTTP, Appendix A.1), for uvicorn.

OCSP is the high-traffic endpoint; served alone it needs nothing of a web framework. The answer itself comes
from the same service as everywhere (`service.ocsp.respond`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from web.ocsp_http import MAX_REQUEST, RESPONSE_TYPE, decode_get, is_ocsp_path, post_refusal

if TYPE_CHECKING:
    from pki.services import Service

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_OCSP_HEADERS = [(b"content-type", RESPONSE_TYPE.encode()), (b"cache-control", b"no-store")]


def ocsp_app(service: Service) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    # One driver connection per process, opened at startup: the event loop is the only thread using it.
    state: dict[str, Any] = {}

    def respond(data: bytes) -> bytes:
        return service.ocsp.respond(data, connection=state.get("db"))

    async def reply(
        send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        head = [
            *(headers or [(b"content-type", b"text/plain")]),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    service.ocsp.warm()
                    state["db"] = service.ocsp.driver_connection()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if "db" in state:
                        state.pop("db").close()
                    service.ctx.engine.dispose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/healthz":
            await reply(send, 200, b"ok\n")
            return
        if not is_ocsp_path(path):
            await reply(send, 404, b"")
            return
        if scope["method"] == "GET":
            data = decode_get(path.removeprefix("/ocsp").lstrip("/"))
            if data is None:
                await reply(send, 400, b"")
                return
            await reply(send, 200, respond(data), _OCSP_HEADERS)
            return
        if scope["method"] != "POST":
            await reply(send, 405, b"")
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
        body = bytearray()
        if post_refusal(content_type, 1) is None:  # read only a well-typed body, and never past the limit
            while True:
                message = await receive()
                body += message.get("body", b"")
                if len(body) > MAX_REQUEST or not message.get("more_body"):
                    break
        refusal = post_refusal(content_type, len(body))
        if refusal is not None:
            await reply(send, refusal, b"")
            return
        await reply(send, 200, respond(bytes(body)), _OCSP_HEADERS)

    return app


def from_env() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """App factory for uvicorn worker processes: each opens its own service from the environment
    (PKI_HOME, PKI_DATABASE_URL, and PKI_CA_PASSPHRASE or PKI_HSM_PIN for the OCSP signer keys)."""
    import os

    from pki.bootstrap import open_service
    from pki.config import Settings

    secret = os.environ.get("PKI_CA_PASSPHRASE") or os.environ.get("PKI_HSM_PIN") or ""
    return ocsp_app(open_service(Settings.from_env(), passphrase=lambda: secret))
