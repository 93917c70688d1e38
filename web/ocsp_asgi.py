"""A dedicated OCSP responder as a bare ASGI app (RFC 6960 over HTTP, Appendix A.1), for uvicorn.

OCSP is the high-traffic endpoint; served alone it needs nothing of a web framework. The answer itself comes
from the same service as everywhere (`service.ocsp.respond`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pki.services import Service

MAX_REQUEST = 64 * 1024
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_OCSP_HEADERS = [(b"content-type", b"application/ocsp-response"), (b"cache-control", b"no-store")]


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
        if not (path == "/ocsp" or path.startswith("/ocsp/")):
            await reply(send, 404, b"")
            return
        if scope["method"] == "GET":
            encoded = path.removeprefix("/ocsp").lstrip("/")
            if not encoded.startswith("M") and "/" in encoded:
                encoded = encoded.split("/", 1)[1]
            try:
                data = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
            except (binascii.Error, ValueError):
                await reply(send, 400, b"")
                return
            await reply(send, 200, respond(data), _OCSP_HEADERS)
            return
        if scope["method"] != "POST":
            await reply(send, 405, b"")
            return
        headers = dict(scope["headers"])
        if headers.get(b"content-type", b"").split(b";")[0].strip().lower() != b"application/ocsp-request":
            await reply(send, 415, b"")
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_REQUEST:
                await reply(send, 413, b"")
                return
            if not message.get("more_body"):
                break
        if not body:
            await reply(send, 400, b"")
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
