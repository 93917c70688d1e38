"""The one mapping of service errors to HTTP for this adapter: JSON for the public endpoints, Chinese pages
for the clerks' UI."""

from __future__ import annotations

import logging
from html import escape

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
UI_BLUEPRINTS = frozenset({"auth", "requests", "certificates", "dashboard", "admin"})
# What programs ask for (CRLs, CA certificates, OCSP, the access check, health): short plain-text refusals.
# Every other path is a person's: a Chinese page for every status, never Werkzeug's English one.
PROGRAM_BLUEPRINTS = frozenset({"public", "access_check"})
PROGRAM_PREFIXES = ("/crl/", "/ca/", "/ocsp", "/access-check", "/healthz")
UNAVAILABLE_ZH = "服务暂不可用，请联系管理员"
# status -> (page title, what the person is told)
STATUS_PAGES_ZH: dict[int, tuple[str, str]] = {
    400: ("请求无效", "请求无效，请返回上一页重新操作"),
    401: ("请先登录", "请先登录"),
    403: ("无权操作", "当前用户无权执行该操作"),
    404: ("页面不存在", "页面不存在，请检查地址或从菜单进入"),
    405: ("不能这样打开", "该地址只接受页面上的按钮提交，不能直接打开：请返回上一页，用页面上的按钮操作"),
    409: ("操作冲突", "操作与当前数据冲突，请刷新页面后重试"),
    413: ("内容过大", "上传的内容过大"),
    415: ("格式不支持", "不支持该内容格式"),
    429: ("操作过于频繁", "操作过于频繁，请稍后再试"),
    500: ("服务器出错", "服务器内部错误，已记录，请联系管理员"),
    503: ("服务暂不可用", UNAVAILABLE_ZH),
}
FALLBACK_PAGE_ZH = ("无法完成操作", "无法完成操作，请返回上一页重试")
CSRF_EXPIRED_ZH = "表单已失效，请刷新页面后重试"


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


def _for_people() -> bool:
    """A person's page, not an API or program endpoint (known even when routing failed: 404, 405)."""
    if _is_api() or request.blueprint in PROGRAM_BLUEPRINTS:
        return False
    return not request.path.startswith(PROGRAM_PREFIXES)


def person_page(status: int, message: str | None = None, headers: dict[str, str] | None = None) -> Response:
    """The Chinese error page for ``status``. Should the page itself fail (the database gone while looking
    up the signed-in user), a bare Chinese page still goes out, never Werkzeug's English one."""
    title, text = STATUS_PAGES_ZH.get(status, FALLBACK_PAGE_ZH)
    try:
        body = render_template("error.html", title=title, message=message or text, status=status)
    except Exception:
        log.exception("error page for %s failed", status)
        shown = escape(message or text)
        body = f'<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>{title}</title><p>{shown}</p>'
    return Response(body, status=status, mimetype="text/html", headers=headers)


def _problem(document: dict[str, object], status: int) -> tuple[Response, int]:
    import json

    from web.api.problems import PROBLEM_TYPE

    body = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status=status, mimetype=PROBLEM_TYPE, headers={"Cache-Control": "no-store"}), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(PkiError)
    def pki_error(error: PkiError) -> tuple[Response, int] | Response:
        if isinstance(error, _INTERNAL):
            log.error("service unavailable: %s", error.message)
        status = 503 if isinstance(error, _INTERNAL) else status_for(error)
        if _is_api():
            from web.api.problems import problem

            if type(error).__name__ == "InsecureTransportError":
                status = 403
            return _problem(problem(error, status), status)
        if request.blueprint in UI_BLUEPRINTS:
            return person_page(status, message_zh(error))
        if isinstance(error, _INTERNAL):
            body = {"error": "unavailable", "message": "service unavailable", "message_zh": "服务暂不可用"}
            return jsonify(body), 503
        body = {"error": error.code, "message": error.message, "message_zh": error.message_zh}
        return jsonify(body), status_for(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int] | Response:
        """Routing and protocol refusals (unknown path, wrong method, body too large, bad CSRF token, …):
        problem+json under /api/v1, a Chinese page for people, a short plain text for programs."""
        if _is_api():
            return _api_http(error)
        status = error.code or 500
        if _for_people():
            from flask_wtf.csrf import CSRFError

            kept = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}  # Allow, Retry-After
            return person_page(status, CSRF_EXPIRED_ZH if isinstance(error, CSRFError) else None, kept)
        name = (error.name or "error").lower()
        return Response(f"{name}\n", status=status, mimetype="text/plain"), status

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int] | Response:
        """A bug or an unreachable database: logged with its traceback; the client gets no detail."""
        if isinstance(error, HTTPException):
            return http_error(error)
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
        if _for_people():
            return person_page(500, UNAVAILABLE_ZH if reason is not None else None)
        return Response("internal error\n", status=500, mimetype="text/plain"), 500


def _api_http(error: Exception) -> tuple[Response, int]:
    """Routing and protocol refusals (unknown path, wrong method, body too large) under /api/v1."""
    from web.api.problems import plain

    status = error.code if isinstance(error, HTTPException) and error.code else 400
    name = error.name if isinstance(error, HTTPException) else "bad request"
    description = error.description if isinstance(error, HTTPException) else None
    title = name.lower()
    return _problem(plain(status, title, description or title, "请求无效"), status)
