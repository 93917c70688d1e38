"""The web app: an application factory over the same service as the CLI. No rule lives in a view."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask

if TYPE_CHECKING:
    from pki.services import Service


def create_app(service: Service, settings: dict[str, Any] | None = None) -> Flask:
    """Build the app for ``service``; ``settings`` override Flask config (tests pass TESTING etc.)."""
    from web.errors import register_error_handlers
    from web.public import public

    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, JSON_AS_ASCII=False)
    app.config.update(settings or {})
    app.extensions["pki_service"] = service
    app.register_blueprint(public)
    register_error_handlers(app)

    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return app
