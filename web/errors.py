"""The one mapping of service errors to HTTP for this adapter: JSON for the public endpoints, Chinese pages
for the clerks' UI."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request

from pki.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InvalidTransitionError,
    KeyAccessError,
    LoginThrottledError,
    NotFoundError,
    PermissionDeniedError,
    PkiError,
    TokenError,
    ValidationError,
)

log = logging.getLogger(__name__)
# Faults of the server itself: their text (paths, CKR codes, setup hints) is for the log, not for clients.
_INTERNAL = (KeyAccessError, TokenError, ConfigurationError)

_STATUS: list[tuple[type[PkiError], int]] = [
    (NotFoundError, 404),
    (AuthenticationError, 401),
    (LoginThrottledError, 429),
    (PermissionDeniedError, 403),
    (ValidationError, 400),
    (ConflictError, 409),
    (InvalidTransitionError, 409),
]
# Blueprints that answer people (HTML) rather than programs.
UI_BLUEPRINTS = frozenset({"auth", "requests", "certificates", "dashboard"})
UI_PREFIXES = ("/requests/", "/certificates/")  # unknown paths there get the Chinese page too
UNAVAILABLE_ZH = "服务暂不可用，请联系管理员"


def status_for(error: PkiError) -> int:
    return next((code for cls, code in _STATUS if isinstance(error, cls)), 422)


def field_errors(error: ValidationError) -> dict[str, list[str]]:
    """Chinese messages per field, for showing each beside its field."""
    out: dict[str, list[str]] = {}
    for item in error.errors:
        out.setdefault(item.field, []).append(item.message_zh)
    return out


def message_zh(error: PkiError) -> str:
    """What a clerk is told: the service's Chinese message, or a neutral one for server faults."""
    return UNAVAILABLE_ZH if isinstance(error, _INTERNAL) else error.message_zh


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(PkiError)
    def pki_error(error: PkiError) -> tuple[Response | str, int]:
        if isinstance(error, _INTERNAL):
            log.error("service unavailable: %s", error.message)
        if request.blueprint in UI_BLUEPRINTS:
            status = 503 if isinstance(error, _INTERNAL) else status_for(error)
            return render_template("error.html", message=message_zh(error), status=status), status
        if isinstance(error, _INTERNAL):
            body = {"error": "unavailable", "message": "service unavailable", "message_zh": "服务暂不可用"}
            return jsonify(body), 503
        body = {"error": error.code, "message": error.message, "message_zh": error.message_zh}
        return jsonify(body), status_for(error)

    @app.errorhandler(400)
    def bad_request(error: Exception) -> tuple[Response | str, int]:
        from flask_wtf.csrf import CSRFError

        if request.blueprint in UI_BLUEPRINTS:
            text = "表单已失效，请刷新页面后重试" if isinstance(error, CSRFError) else "请求无效"
            return render_template("error.html", message=text, status=400), 400
        return Response("bad request\n", status=400, mimetype="text/plain"), 400

    @app.errorhandler(403)
    def forbidden(error: Exception) -> tuple[Response | str, int]:
        if request.blueprint in UI_BLUEPRINTS:
            return render_template("error.html", message="当前用户无权执行该操作", status=403), 403
        return Response("forbidden\n", status=403, mimetype="text/plain"), 403

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[Response | str, int]:
        if request.blueprint in UI_BLUEPRINTS or request.path.startswith(UI_PREFIXES):
            return render_template("error.html", message="页面不存在", status=404), 404
        return Response("not found\n", status=404, mimetype="text/plain"), 404

    @app.errorhandler(413)
    def too_large(error: Exception) -> tuple[Response | str, int]:
        if request.blueprint in UI_BLUEPRINTS:
            return render_template("error.html", message="上传的内容过大", status=413), 413
        return Response("too large\n", status=413, mimetype="text/plain"), 413
