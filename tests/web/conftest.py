"""The clerks' UI through Flask's test client: an app over the test service, sign-in without Argon2, and
CSRF tokens read from the pages as a browser would."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session

from pki.enums import Role
from pki.models import User
from pki.services import Service
from tests.conftest import T0

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def app(service: Service) -> Flask:
    return create(service)


def create(service: Service, **settings: object) -> Flask:
    from web import create_app

    return create_app(service, {"TESTING": True, "SESSION_COOKIE_SECURE": False, **settings})


def sign_in(client: FlaskClient, service: Service, username: str) -> None:
    """What a successful log-in leaves in the session (the log-in itself is tested with real passwords)."""
    now = service.ctx.now().isoformat()
    with client.session_transaction() as sess:
        sess.clear()
        sess["_user_id"] = username
        sess["_fresh"] = True
        sess["login_at"] = sess["seen_at"] = now
        sess.permanent = True


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path).get_data(as_text=True)
    found = _TOKEN.search(page)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def post(client: FlaskClient, path: str, data: dict[str, object], *, page: str = "/login", **kw: object):
    """POST a form with a CSRF token fetched from ``page`` (as the browser had the page first)."""
    return client.post(path, data={**data, "csrf_token": csrf_token(client, page)}, **kw)  # type: ignore[arg-type]


@pytest.fixture
def role_users(service: Service, people: dict[str, object]) -> dict[Role, str]:
    """One fresh user per role, who has done nothing yet (no separation-of-duties history)."""
    names = {role: f"only-{role.value}" for role in Role}
    with Session(service.ctx.engine) as s:
        for role, name in names.items():
            s.add(User(username=name, password_hash="!", roles=role.value, created_at=T0))
        s.commit()
    return names


@pytest.fixture
def client_as(app: Flask, service: Service) -> Callable[[str], FlaskClient]:
    def make(username: str) -> FlaskClient:
        client = app.test_client()
        sign_in(client, service, username)
        return client

    return make
