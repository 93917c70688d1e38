"""Log-in, throttling, session expiry, CSRF, escaping and headers of the clerks' UI."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import select

from pki.application import FIELD_LABELS
from pki.clock import FixedClock
from pki.enums import Action
from pki.models import AuditRecord
from pki.services import Actor, Service
from tests.support.data import application
from tests.web.conftest import create, csrf_token, post, sign_in

PASSWORD = "correct-horse-battery"
HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'


@pytest.fixture
def clerk_with_password(service: Service, people: dict[str, Actor]) -> str:
    service.users.add("web-clerk", PASSWORD, ["entry"], actor=people["admin"])
    return "web-clerk"


def _login(client: FlaskClient, username: str, password: str, address: str = "10.0.0.1", **form: str):
    return post(
        client,
        "/login",
        {"username": username, "password": password, **form},
        environ_base={"REMOTE_ADDR": address},
    )


def _actions(service: Service, name: str) -> list[str]:
    with service.ctx.read() as s:
        return list(s.exec(select(AuditRecord.action).where(AuditRecord.subject_id == name)).all())


def test_pages_need_a_login_and_public_endpoints_do_not(app: Flask) -> None:
    client = app.test_client()
    for path in ("/", "/requests/", "/requests/queue", "/requests/new", "/requests/1", "/certificates/"):
        got = client.get(path)
        assert got.status_code == 302 and got.headers["Location"].startswith("/login?next="), path
    assert client.get("/healthz").status_code == 200
    assert client.get("/crl/test.crl").status_code == 503  # no login asked: no CA here yet, JSON refusal
    assert client.get("/crl/test.crl").is_json


def test_login_logout_and_the_audit(app: Flask, service: Service, clerk_with_password: str) -> None:
    client = app.test_client()
    bad = _login(client, clerk_with_password, "wrong-password-1")
    assert bad.status_code == 401 and "用户名或密码错误" in bad.get_data(as_text=True)
    ok = _login(client, clerk_with_password, PASSWORD, next="/requests/queue")
    assert ok.status_code == 302 and ok.headers["Location"] == "/requests/queue"
    assert client.get("/requests/queue").status_code == 200
    assert _actions(service, clerk_with_password)[-2:] == ["auth.failed", "auth.login"]
    post(client, "/logout", {}, page="/")
    assert client.get("/requests/").status_code == 302


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "/\t/evil.example"]
)
def test_login_never_redirects_off_site(app: Flask, clerk_with_password: str, target: str) -> None:
    got = _login(app.test_client(), clerk_with_password, PASSWORD, next=target)
    assert got.status_code == 302 and got.headers["Location"] == "/"


def test_login_throttled_per_user_then_released(
    app: Flask, service: Service, clock: FixedClock, clerk_with_password: str
) -> None:
    policy = service.ctx.policies.access
    client = app.test_client()
    for i in range(policy.max_failures_per_user):
        assert _login(client, clerk_with_password, "nope-nope-nope", address=f"10.0.1.{i}").status_code == 401
    # Even the right password is refused now, from any address, and nothing is verified.
    refused = _login(client, clerk_with_password, PASSWORD, address="10.9.9.9")
    assert refused.status_code == 429 and "登录失败次数过多" in refused.get_data(as_text=True)
    assert _actions(service, clerk_with_password)[-1] == "auth.throttled"
    clock.advance(policy.login_window + timedelta(seconds=1))
    assert _login(client, clerk_with_password, PASSWORD).status_code == 302


def test_login_throttled_per_address(app: Flask, service: Service, clerk_with_password: str) -> None:
    policy = service.ctx.policies.access
    client = app.test_client()
    for i in range(policy.max_failures_per_address):
        assert _login(client, f"nobody{i}", "nope-nope-nope", address="10.6.6.6").status_code == 401
    assert _login(client, clerk_with_password, PASSWORD, address="10.6.6.6").status_code == 429
    assert _login(client, clerk_with_password, PASSWORD, address="10.7.7.7").status_code == 302


def test_a_success_clears_the_users_count(app: Flask, service: Service, clerk_with_password: str) -> None:
    client = app.test_client()
    limit = service.ctx.policies.access.max_failures_per_user
    for _ in range(limit - 1):
        _login(client, clerk_with_password, "nope-nope-nope")
    assert _login(client, clerk_with_password, PASSWORD).status_code == 302
    for _ in range(limit - 1):
        assert _login(client, clerk_with_password, "nope-nope-nope").status_code == 401
    assert _login(client, clerk_with_password, PASSWORD).status_code == 302


def test_session_expires_when_idle_and_at_the_absolute_limit(
    app: Flask, service: Service, clock: FixedClock, people: dict[str, Actor]
) -> None:
    access = service.ctx.policies.access
    client = app.test_client()
    sign_in(client, service, "clerk")
    clock.advance(access.session_idle - timedelta(seconds=1))
    assert client.get("/requests/").status_code == 200  # used just in time: the idle clock restarts
    clock.advance(access.session_idle - timedelta(seconds=1))
    assert client.get("/requests/").status_code == 200
    clock.advance(access.session_idle + timedelta(seconds=1))
    expired = client.get("/requests/")
    assert expired.status_code == 302 and expired.headers["Location"].startswith("/login")
    assert "会话已过期" in client.get("/login").get_data(as_text=True)
    assert client.get("/requests/").status_code == 302  # really signed out

    sign_in(client, service, "clerk")
    steps = int(access.session_absolute / (access.session_idle / 2)) + 1
    codes = []
    for _ in range(steps):
        clock.advance(access.session_idle / 2)
        codes.append(client.get("/requests/").status_code)
    assert codes[0] == 200 and codes[-1] == 302  # kept busy, yet ended at the absolute limit


def test_a_deactivated_user_is_signed_out(app: Flask, service: Service, people: dict[str, Actor]) -> None:
    client = app.test_client()
    sign_in(client, service, "clerk")
    assert client.get("/requests/").status_code == 200
    service.users.update("clerk", actor=people["admin"], active=False)
    assert client.get("/requests/").status_code == 302


def test_forms_without_a_valid_csrf_token_are_refused(
    app: Flask, service: Service, people: dict[str, Actor], clerk_with_password: str
) -> None:
    client = app.test_client()
    no_token = client.post("/login", data={"username": clerk_with_password, "password": PASSWORD})
    assert no_token.status_code == 400 and "表单已失效" in no_token.get_data(as_text=True)
    sign_in(client, service, "clerk")
    form = {k: str(v) for k, v in application().items()}
    assert client.post("/requests/new", data=form).status_code == 400
    assert client.post("/requests/new", data={**form, "csrf_token": "forged"}).status_code == 400
    req = service.requests.create(application(), actor=people["clerk"])
    other = app.test_client()
    sign_in(other, service, "acceptor")
    stolen = csrf_token(client, "/")  # a token from another session
    got = other.post(
        f"/requests/{req.id}/accept", data={"opinion": "agree", "usbkey": "ePass3003", "csrf_token": stolen}
    )
    assert got.status_code == 400
    assert service.requests.find() == [service.requests.get(req.id or 0)]
    assert service.requests.get(req.id or 0).accepted_by is None


def test_security_headers_and_cookie_flags(service: Service, clerk_with_password: str) -> None:
    app = create(service, SESSION_COOKIE_SECURE=True)
    client = app.test_client()
    page = client.get("/login")
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Lax" in cookie
    assert "<script>" not in page.get_data(as_text=True)  # no inline script anywhere


def test_secret_key_is_made_once_in_the_home_owner_only(service: Service, tmp_path) -> None:
    home = tmp_path / "home"
    first = create(service, PKI_HOME=str(home)).secret_key
    second = create(service, PKI_HOME=str(home)).secret_key
    assert first == second and len(first) == 32
    assert (home / "web-secret-key").stat().st_mode & 0o777 == 0o600


def _hostile_application() -> dict[str, object]:
    free_text = (
        "unit_name",
        "legal_representative",
        "address",
        "county",
        "township",
        "postal_address",
        "target_system",
        "industry",
        "location",
        "ownership_type",
        "energy_consumption",
        "main_energy_types",
    )
    return application(**{k: HOSTILE[:30] for k in free_text})


def _assert_escaped(html: str) -> None:
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html


def test_hostile_input_is_escaped_in_a_refused_form(
    app: Flask, service: Service, client_as: Callable[[str], FlaskClient], people: dict[str, Actor]
) -> None:
    client = client_as("clerk")
    typed = {key: HOSTILE for key in FIELD_LABELS}
    got = post(client, "/requests/new", typed, page="/requests/new")
    html = got.get_data(as_text=True)
    assert got.status_code == 400
    _assert_escaped(html)
    # every field comes back as typed (escaped) in its input or as a chosen option; none unescaped
    assert html.count('value="&lt;script&gt;') >= 10


def test_hostile_input_is_escaped_wherever_it_is_shown(
    app: Flask, service: Service, client_as: Callable[[str], FlaskClient], people: dict[str, Actor]
) -> None:
    req = service.requests.create(_hostile_application(), actor=people["clerk"])
    rid = req.id or 0
    # The USBKEY model is one of tokens.toml's now (services/stock.py): the comment carries the hostile text.
    service.requests.accept(
        rid, actor=people["acceptor"], agree=True, usbkey_model="ePass3003", comment=HOSTILE
    )
    service.requests.countersign(rid, actor=people["head"])
    service.requests.review(rid, actor=people["reviewer"], decision=Action.RETURN, reason=HOSTILE)
    service.attachments.add(
        rid,
        kind="credential",
        filename=HOSTILE + ".png",
        data=b"\x89PNG\r\n\x1a\n0000",
        actor=people["acceptor"],
    )
    client = client_as("acceptor")
    for path in (
        f"/requests/{rid}",
        f"/requests/{rid}/print",
        "/requests/",
        "/requests/?q=%3Cscript",
        f"/requests/?q={HOSTILE[:20]}",
    ):
        got = client.get(path)
        assert got.status_code == 200, path
        html = got.get_data(as_text=True)
        assert "<script>" not in html and "<img src=x" not in html, path
    detail = client.get(f"/requests/{rid}").get_data(as_text=True)
    assert detail.count("&lt;script&gt;") >= 12


def test_attachment_is_served_inert(
    app: Flask, service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    row = service.attachments.add(
        req.id or 0,
        kind="signed_form",
        filename="a.pdf",
        data=b"%PDF-1.4\n<script>alert(1)</script>",
        actor=people["clerk"],
    )
    got = client_as("reviewer").get(f"/requests/{req.id}/attachments/{row.id}")
    assert got.status_code == 200 and got.mimetype == "application/pdf"
    assert "sandbox" in got.headers["Content-Security-Policy"]
    assert client_as("distributor").get(f"/requests/{req.id}/attachments/{row.id}").status_code == 403
    assert re.search(r"attachment-\d+", got.headers["Content-Disposition"])
    _ = io
