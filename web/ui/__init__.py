"""The clerks' web UI (受理点): log-in, requests, certificates, dashboard. Chinese throughout.

Every rule is the service's; views parse input, call one service method and render. Security plumbing lives
here: the session (secret key from the home, expiry from access.toml), Flask-Login, CSRF on every form,
cookie flags.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, current_app, redirect, request, url_for
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response

from pki.application import CHOICE_LABELS, FIELD_LABELS
from pki.clock import CHINA_TZ
from pki.enums import ROLE_LABELS_ZH, STATE_LABELS_ZH, Action, RequestState, Role
from pki.lifecycle import ACTION_LABELS_ZH
from pki.services import Actor, Service
from web.ui.form_layout import DATES, FORM_GROUPS, RADIOS, SELECTS

SECRET_FILE = "web-secret-key"  # noqa: S105 (a file name)
csrf = CSRFProtect()
login_manager = LoginManager()


class WebUser:
    """The signed-in person as Flask-Login sees them; ``actor`` is what the service is given."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    def get_id(self) -> str:
        return self.actor.username

    def has_role(self, role: str) -> bool:
        return role in self.actor.roles


def secret_key(home: Path) -> bytes:
    """The session signing key: made once in the home, owner-only, and reused on every start."""
    path = home / SECRET_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
    return path.read_bytes()


def service() -> Service:
    svc: Service = current_app.extensions["pki_service"]
    return svc


def actor() -> Actor:
    """The current user's actor (views behind the login only)."""
    user: WebUser = current_user
    return user.actor


def register_ui(app: Flask, svc: Service) -> None:
    """Add the UI blueprints and their security plumbing to ``app``.

    Settings read from app.config: SECRET_KEY, or PKI_HOME to keep one in the home (else a per-process key,
    sessions then end with the process); SESSION_COOKIE_SECURE (default true; false only for plain-HTTP
    localhost).
    """
    from web.ui import auth, certificates, dashboard, requests

    if not app.config.get("SECRET_KEY"):
        home = app.config.get("PKI_HOME")
        app.config["SECRET_KEY"] = secret_key(Path(home)) if home else secrets.token_bytes(32)
    access = svc.ctx.policies.access
    app.config.setdefault("SESSION_COOKIE_SECURE", True)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="pkictl_session",
        PERMANENT_SESSION_LIFETIME=access.session_absolute,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked on every UI blueprint (below), not on the public endpoints
        WTF_CSRF_TIME_LIMIT=int(access.session_absolute.total_seconds()),
        MAX_FORM_MEMORY_SIZE=1_000_000,
    )
    app.config["MAX_CONTENT_LENGTH"] = max(
        int(app.config.get("MAX_CONTENT_LENGTH") or 0), access.attachment_max_bytes + 65_536
    )
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "请先登录"
    login_manager.session_protection = "strong"

    def load_user(username: str) -> WebUser | None:
        found = svc.users.active_actor(username)
        return WebUser(found) if found else None

    login_manager.user_loader(load_user)

    for bp in (auth.bp, requests.bp, certificates.bp, dashboard.bp):
        app.register_blueprint(bp)
    app.before_request(_guard)

    app.jinja_env.globals.update(
        FIELD_LABELS=FIELD_LABELS,
        CHOICE_LABELS=CHOICE_LABELS,
        FORM_GROUPS=FORM_GROUPS,
        STATE_LABELS=STATE_LABELS_ZH,
        ACTION_LABELS=ACTION_LABELS_ZH,
        ROLE_LABELS={r.value: label for r, label in ROLE_LABELS_ZH.items()},
        Role=Role,
        SELECTS=SELECTS,
        RADIOS=RADIOS,
        DATES=DATES,
        history_label=history_label,
        history_details=history_details,
    )
    app.jinja_env.filters["beijing"] = _beijing


_HISTORY_LABELS = {
    "request.attach": "上传附件",
    "request.read_attachment": "查看附件",
    "security.denied": "被拒绝的操作",
}


def history_label(action: str) -> str:
    """An audit action in the clerks' words."""
    name = action.removeprefix("request.")
    try:
        return ACTION_LABELS_ZH[Action(name)]
    except ValueError:
        return _HISTORY_LABELS.get(action, action)


# Audit detail keys in the clerks' words; the rest of the record is shown as stored.
_DETAIL_LABELS = {
    "from": "原状态",
    "to": "新状态",
    "reason": "理由",
    "comment": "意见说明",
    "usbkey": "USBKEY 品牌及型号",
    "changed": "修改的栏目",
    "acceptance_voided": "受理作废",
    "serial": "证书序列号",
    "batch": "批次",
    "filename": "文件名",
    "kind": "附件类别",
    "attempted": "尝试的操作",
}


_STATE_VALUES = frozenset(s.value for s in RequestState)


def history_details(details: str) -> list[tuple[str, str]]:
    """An audit record's details (canonical JSON) as label/value pairs for the history table."""
    import json

    try:
        data = json.loads(details) if details else {}
    except ValueError:
        return [("", details)]
    out: list[tuple[str, str]] = []
    for key, label in _DETAIL_LABELS.items():
        value = data.get(key)
        if value in (None, "", [], {}):
            continue
        if key in ("from", "to") and value in _STATE_VALUES:
            value = STATE_LABELS_ZH[RequestState(value)]
        elif key == "changed" and isinstance(value, list):
            value = "、".join(FIELD_LABELS.get(str(v), str(v)) for v in value)
        elif isinstance(value, bool):
            value = "是" if value else "否"
        out.append((label, str(value)))
    return out


_SIGNED_IN = frozenset({"requests", "certificates", "dashboard"})
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _guard() -> Response | None:
    """Before every UI request: CSRF on every form post, then sign-in and session expiry."""
    from web.ui.session import enforce_expiry

    if request.blueprint not in _SIGNED_IN and request.blueprint != "auth":
        return None  # the public endpoints: no session, no forms
    if request.method in _UNSAFE:
        csrf.protect()
    if request.blueprint in _SIGNED_IN:
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return enforce_expiry()
    return None


def _beijing(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Aware UTC from storage -> Beijing time on screen."""
    if value is None:
        return ""
    if hasattr(value, "astimezone") and getattr(value, "tzinfo", None) is not None:
        return str(value.astimezone(CHINA_TZ).strftime(fmt))
    return str(value)


__all__ = ["WebUser", "actor", "register_ui", "service"]
