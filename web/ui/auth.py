"""Log in and log out. Throttling and auditing are the service's (UserService.authenticate)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from pki.errors import AuthenticationError, LoginThrottledError
from web.ui import WebUser, service
from web.ui import session as web_session

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute or scheme-relative URL (open redirect)."""
    if (
        target
        and target.isprintable()  # browsers drop tabs: "/\t/evil" would become "//evil"
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
    ):
        return target
    return url_for("dashboard.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")
    try:
        found = service().users.authenticate(
            username, password, source="web", address=(request.remote_addr or "")[:64]
        )
    except (AuthenticationError, LoginThrottledError) as e:
        status = 429 if isinstance(e, LoginThrottledError) else 401
        return render_template(
            "login.html", next=request.form.get("next", ""), username=username, error=e.message_zh
        ), status
    web_session.start(WebUser(found))
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Response:
    web_session.end()
    return redirect(url_for("auth.login"))
