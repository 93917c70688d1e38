"""Session lifetime (access.toml [session]): an idle limit and an absolute limit, on the service's clock."""

from __future__ import annotations

from datetime import datetime

from flask import flash, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response


def start(user: object) -> None:
    """A fresh session for a successful login (nothing carried over from before: no fixation)."""
    from web.ui import service

    session.clear()
    now = service().ctx.now().isoformat()
    login_user(user)
    session.permanent = True
    session["login_at"] = session["seen_at"] = now


def end() -> None:
    logout_user()
    session.clear()


def enforce_expiry() -> Response | None:
    """Before every signed-in request: end a session idle or old beyond the policy, else mark it used."""
    from web.ui import service

    if not current_user.is_authenticated:
        return None
    svc = service()
    now = svc.ctx.now()
    access = svc.ctx.policies.access
    try:
        login_at = datetime.fromisoformat(session["login_at"])
        seen_at = datetime.fromisoformat(session["seen_at"])
    except (KeyError, ValueError):
        login_at = seen_at = datetime.min.replace(tzinfo=now.tzinfo)
    if now - seen_at > access.session_idle or now - login_at > access.session_absolute:
        end()
        flash("会话已过期，请重新登录", "error")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    session["seen_at"] = now.isoformat()
    return None
