"""The web app: an application factory over the same service as the CLI. No rule lives in a view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask

from web.ocsp_http import MAX_REQUEST, RESPONSE_TYPE, is_ocsp_path, post_refusal

if TYPE_CHECKING:
    from pki.services import Service


# Everything from this origin only; no inline script; the charts are inline SVG (no styles needed).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def create_app(service: Service, settings: dict[str, Any] | None = None) -> Flask:
    """Build the app for ``service``; ``settings`` override Flask config (tests pass TESTING etc.)."""
    from web.access_check import access_check
    from web.api import register_api
    from web.errors import register_error_handlers
    from web.public import public
    from web.ui import register_ui

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=MAX_REQUEST, JSON_AS_ASCII=False)
    app.config.update(settings or {})
    app.extensions["pki_service"] = service
    app.register_blueprint(public)
    app.register_blueprint(access_check)
    register_ui(app, service)
    register_api(app)
    register_error_handlers(app)

    app.wsgi_app = ocsp_fast_path(service, app.wsgi_app)  # type: ignore[method-assign]

    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if app.config.get("SESSION_COOKIE_SECURE"):
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if response.mimetype == "text/html":
            response.headers.setdefault("Cache-Control", "no-store")  # pages show personal data
        return response

    return app


def ocsp_fast_path(service: Service, app: Any) -> Any:
    """POST /ocsp[/CA] answered without Flask's request machinery (it is most of the traffic, and RFC 6960
    needs nothing of Flask: DER in, DER out). Everything else, OCSP GET included, goes to ``app``."""
    statuses = {400: "400 Bad Request", 413: "413 Content Too Large", 415: "415 Unsupported Media Type"}

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") != "POST" or not is_ocsp_path(environ.get("PATH_INFO", "")):
            return app(environ, start_response)
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = -1
        refusal = post_refusal(environ.get("CONTENT_TYPE", ""), size)
        if refusal is not None:
            start_response(statuses[refusal], [("Content-Type", "text/plain"), ("Content-Length", "0")])
            return [b""]
        body = service.ocsp.respond(environ["wsgi.input"].read(size))
        start_response(
            "200 OK",
            [
                ("Content-Type", RESPONSE_TYPE),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),  # a revocation shows in the very next response
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [body]

    return wsgi
