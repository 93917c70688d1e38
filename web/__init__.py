"""The web app: an application factory over the same service as the CLI. No rule lives in a view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask

if TYPE_CHECKING:
    from pki.services import Service

MAX_REQUEST = 64 * 1024  # bytes; an OCSP request is a few hundred


def create_app(service: Service, settings: dict[str, Any] | None = None) -> Flask:
    """Build the app for ``service``; ``settings`` override Flask config (tests pass TESTING etc.)."""
    from web.errors import register_error_handlers
    from web.public import public

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=MAX_REQUEST, JSON_AS_ASCII=False)
    app.config.update(settings or {})
    app.extensions["pki_service"] = service
    app.register_blueprint(public)
    register_error_handlers(app)

    app.wsgi_app = ocsp_fast_path(service, app.wsgi_app)  # type: ignore[method-assign]

    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return app


def ocsp_fast_path(service: Service, app: Any) -> Any:
    """POST /ocsp[/CA] answered without Flask's request machinery (it is most of the traffic, and RFC 6960
    needs nothing of Flask: DER in, DER out). Everything else, OCSP GET included, goes to ``app``."""
    limit = MAX_REQUEST

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not (path == "/ocsp" or path.startswith("/ocsp/")):
            return app(environ, start_response)
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = -1
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type != "application/ocsp-request":  # RFC 6960 Appendix A.1
            start_response(
                "415 Unsupported Media Type", [("Content-Type", "text/plain"), ("Content-Length", "0")]
            )
            return [b""]
        if not 0 < size <= limit:
            start_response(
                "413 Content Too Large" if size > limit else "400 Bad Request",
                [("Content-Type", "text/plain"), ("Content-Length", "0")],
            )
            return [b""]
        body = service.ocsp.respond(environ["wsgi.input"].read(size))
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/ocsp-response"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),  # a revocation shows in the very next response
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [body]

    return wsgi
