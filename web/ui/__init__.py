"""The clerks' web UI (受理点): log-in, requests, certificates, dashboard, user administration. Chinese
throughout.

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
from pki.ca.keys import key_algorithm_label
from pki.clock import CHINA_TZ
from pki.enums import (
    CERTIFICATE_STATUS_LABELS_ZH,
    DAMAGED_KEY_FATES,
    DEAL_LABELS_ZH,
    REVOCATION_REASON_LABELS_ZH,
    REVOKE_REASONS,
    ROLE_LABELS_ZH,
    STATE_LABELS_ZH,
    TOKEN_STATE_LABELS_ZH,
    Deal,
    Role,
)
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
    from web.ui import admin, auth, certificates, dashboard, requests
    from web.ui.history import history_details, history_label
    from web.ui.people import known, person

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
        found = svc.users.active_person(username)
        if found is None:
            return None
        known(username, found[1])  # the header shows the name: no second query for it
        return WebUser(found[0])

    login_manager.user_loader(load_user)

    for bp in (auth.bp, requests.bp, certificates.bp, dashboard.bp, admin.bp):
        app.register_blueprint(bp)
    app.before_request(_guard)

    app.jinja_env.globals.update(
        FIELD_LABELS=FIELD_LABELS,
        CHOICE_LABELS=CHOICE_LABELS,
        FORM_GROUPS=FORM_GROUPS,
        STATE_LABELS=STATE_LABELS_ZH,
        ACTION_LABELS=ACTION_LABELS_ZH,
        ROLE_LABELS={r.value: label for r, label in ROLE_LABELS_ZH.items()},
        REVOCATION_LABELS={r.value: label for r, label in REVOCATION_REASON_LABELS_ZH.items()},
        CERTIFICATE_STATUS_LABELS=CERTIFICATE_STATUS_LABELS_ZH,
        DEAL_LABELS={d.value: label for d, label in DEAL_LABELS_ZH.items()},
        REVOKE_REASONS=[r.value for r in REVOKE_REASONS],
        DAMAGED_KEY_FATES=DAMAGED_KEY_FATES,
        TOKEN_STATE_LABELS={s.value: label for s, label in TOKEN_STATE_LABELS_ZH.items()},
        Deal=Deal,
        Role=Role,
        SELECTS=SELECTS,
        RADIOS=RADIOS,
        DATES=DATES,
        history_label=history_label,
        history_details=history_details,
    )
    app.jinja_env.filters["beijing"] = _beijing
    app.jinja_env.filters["person"] = person
    app.jinja_env.filters["waited"] = _waited
    app.jinja_env.filters["remaining"] = _remaining
    app.jinja_env.filters["key_algorithm"] = key_algorithm_label


_SIGNED_IN = frozenset({"requests", "certificates", "dashboard", "admin"})
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


def _waited(since: Any) -> str:
    """How long since ``since`` (aware), on the service's clock, in the clerks' words: 3天4小时, 25分钟."""
    return "" if since is None else _span(service().ctx.now() - since)


def _remaining(until: Any) -> str:
    """How long until ``until`` (aware), on the service's clock: 12天3小时."""
    return "" if until is None else _span(until - service().ctx.now())


def _span(delta: Any) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}天{hours}小时" if hours else f"{days}天"
    if hours:
        return f"{hours}小时{minutes}分钟" if minutes else f"{hours}小时"
    return f"{minutes}分钟" if minutes else "不到1分钟"


def _beijing(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Aware UTC from storage -> Beijing time on screen."""
    if value is None:
        return ""
    if hasattr(value, "astimezone") and getattr(value, "tzinfo", None) is not None:
        return str(value.astimezone(CHINA_TZ).strftime(fmt))
    return str(value)


__all__ = ["WebUser", "actor", "register_ui", "service"]
