"""The one mapping of service errors to HTTP for this adapter: JSON for the public endpoints, Chinese pages
for the clerks' UI."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

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
    SessionExpiredError,
    TokenError,
    ValidationError,
    database_unavailable,
)

log = logging.getLogger(__name__)
# Faults of the server itself: their text (paths, CKR codes, setup hints) is for the log, not for clients.
_INTERNAL = (KeyAccessError, TokenError, ConfigurationError)

_STATUS: list[tuple[type[PkiError], int]] = [
    (NotFoundError, 404),
    (AuthenticationError, 401),
    (SessionExpiredError, 401),
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


def _is_api() -> bool:
    from web.api import PREFIX

    return request.blueprint == "api" or request.path == PREFIX or request.path.startswith(PREFIX + "/")


def _problem(document: dict[str, object], status: int) -> tuple[Response, int]:
    import json

    from web.api.problems import PROBLEM_TYPE

    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=status, mimetype=PROBLEM_TYPE, headers={"Cache-Control": "no-store"}), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(PkiError)
    def pki_error(error: PkiError) -> tuple[Response | str, int]:
        if isinstance(error, _INTERNAL):
            log.error("service unavailable: %s", error.message)
        if _is_api():
            from web.api.problems import problem

            status = 503 if isinstance(error, _INTERNAL) else status_for(error)
            if type(error).__name__ == "InsecureTransportError":
                status = 403
            return _problem(problem(error, status), status)
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
        if _is_api():
            return _api_http(error)
        from flask_wtf.csrf import CSRFError

        if request.blueprint in UI_BLUEPRINTS:
            text = "表单已失效，请刷新页面后重试" if isinstance(error, CSRFError) else "请求无效"
            return render_template("error.html", message=text, status=400), 400
        return Response("bad request\n", status=400, mimetype="text/plain"), 400

    @app.errorhandler(403)
    def forbidden(error: Exception) -> tuple[Response | str, int]:
        if _is_api():
            return _api_http(error)
        if request.blueprint in UI_BLUEPRINTS:
            return render_template("error.html", message="当前用户无权执行该操作", status=403), 403
        return Response("forbidden\n", status=403, mimetype="text/plain"), 403

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[Response | str, int]:
        if _is_api():
            return _api_http(error)
        if request.blueprint in UI_BLUEPRINTS or request.path.startswith(UI_PREFIXES):
            return render_template("error.html", message="页面不存在", status=404), 404
        return Response("not found\n", status=404, mimetype="text/plain"), 404

    @app.errorhandler(413)
    def too_large(error: Exception) -> tuple[Response | str, int]:
        if _is_api():
            return _api_http(error)
        if request.blueprint in UI_BLUEPRINTS:
            return render_template("error.html", message="上传的内容过大", status=413), 413
        return Response("too large\n", status=413, mimetype="text/plain"), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response | str, int] | HTTPException:
        """Other routing and protocol refusals (wrong method, …): problem+json under /api/v1."""
        return _api_http(error) if _is_api() else error

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response | str, int]:
        """A bug or an unreachable database: logged with its traceback; the client gets no detail."""
        if isinstance(error, HTTPException):
            return error  # type: ignore[return-value]
        reason = database_unavailable(error)
        if reason is not None:
            log.error("database unavailable: %s", reason)
        else:
            log.exception("unexpected error on %s %s", request.method, request.path)
        if _is_api():
            from web.api.problems import plain, unavailable

            if reason is not None:
                return _problem(unavailable(), 503)
            return _problem(plain(500, "internal error", "internal error (logged)", "服务器内部错误"), 500)
        if request.blueprint in UI_BLUEPRINTS:
            return render_template("error.html", message=UNAVAILABLE_ZH, status=500), 500
        return Response("internal error\n", status=500, mimetype="text/plain"), 500


def _api_http(error: Exception) -> tuple[Response, int]:
    """Routing and protocol refusals (unknown path, wrong method, body too large) under /api/v1."""
    from web.api.problems import plain

    status = error.code if isinstance(error, HTTPException) and error.code else 400
    name = error.name if isinstance(error, HTTPException) else "bad request"
    description = error.description if isinstance(error, HTTPException) else None
    title = name.lower()
    return _problem(plain(status, title, description or title, "请求无效"), status)
