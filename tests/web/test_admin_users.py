"""User administration in the UI, for admins: the list, adding a user (who then logs in), display names,
roles, deactivation and activation, a new password; every refusal beside its field, in Chinese, from
UserService."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import select

from pki.errors import AuthenticationError
from pki.models import AuditRecord
from pki.services import Actor, Service
from tests.web.conftest import post

PASSWORD = "new-user-password-1"


def _add(client: FlaskClient, **form: object):  # type: ignore[no-untyped-def]
    data = {"username": "wang", "display_name": "王小明", "roles": ["entry"], "password": PASSWORD}
    data |= {"password_again": data["password"]} | form
    return post(client, "/admin/users", data, page="/admin/users")


def _login(app: Flask, username: str, password: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    return client, post(client, "/login", {"username": username, "password": password})


def test_the_list_shows_names_roles_and_state(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    service.users.update("ops", actor=people["admin"], display_name="周运维", active=False)
    html = client_as("admin").get("/admin/users").get_data(as_text=True)
    row = re.search(r'<tr data-user="ops">(.*?)</tr>', html, re.DOTALL)
    assert row and "周运维" in row.group(1) and "运维" in row.group(1) and "已停用" in row.group(1)
    assert "用户管理" in client_as("admin").get("/").get_data(as_text=True)
    assert ">用户管理<" not in client_as("clerk").get("/").get_data(as_text=True)  # not offered


def test_an_admin_adds_a_user_who_then_logs_in(
    app: Flask, service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    got = _add(client_as("admin"), roles=["entry", "acceptor"])
    assert got.status_code == 302
    client, login = _login(app, "wang", PASSWORD)
    assert login.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert '<span class="who">王小明（受理人、录入员）</span>' in page
    with service.ctx.read() as s:
        record = s.exec(select(AuditRecord).where(AuditRecord.action == "user.add")).all()[-1]
    assert record.actor == "admin" and "王小明" in record.details and PASSWORD not in record.details


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"username": "王"}, "username", "用户名格式无效"),
        ({"password": "short", "password_again": "short"}, "password", "密码至少10位"),
        ({"password_again": "something-else-1"}, "password_again", "两次输入的密码不一致"),
        ({"roles": []}, "roles", "角色无效"),
        ({"display_name": "名" * 65}, "display_name", "姓名：不能超过64个字"),
        ({"display_name": "王\n小明"}, "display_name", "姓名：不能包含换行"),
    ],
    ids=["username", "short-password", "passwords-differ", "no-role", "long-name", "two-lines"],
)
def test_a_refused_user_is_named_beside_its_field(
    service: Service,
    people: dict[str, Actor],
    client_as: Callable[[str], FlaskClient],
    form: dict[str, object],
    field: str,
    words: str,
) -> None:
    got = _add(client_as("admin"), **form)
    html = got.get_data(as_text=True)
    assert got.status_code == 400
    found = re.search(rf'id="err-{field}">([^<]+)<', html)
    assert found and words in found.group(1), html
    assert "wang" not in {u.username for u in service.users.list()}
    if field != "username":
        assert 'value="wang"' in html  # kept as typed (never the password)
    assert PASSWORD not in html


def test_an_existing_name_is_refused(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    got = _add(client_as("admin"), username="clerk")
    assert got.status_code == 409 and re.search(
        r'id="err-username">用户“clerk”已存在<', got.get_data(as_text=True)
    )


def test_display_name_roles_and_deactivation(
    app: Flask, service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    service.users.add("li", PASSWORD, ["entry"], actor=people["admin"])
    admin = client_as("admin")
    page = admin.get("/admin/users/li").get_data(as_text=True)
    assert 'name="roles" value="entry" checked' in page and 'value="yes" checked' in page
    got = post(
        admin,
        "/admin/users/li",
        {"display_name": "李四", "roles": ["acceptor", "head"], "active": "yes"},
        page="/admin/users/li",
    )
    assert got.status_code == 302
    user = next(u for u in service.users.list() if u.username == "li")
    assert user.display_name == "李四" and user.role_set() == {"acceptor", "head"} and user.active
    client, _ = _login(app, "li", PASSWORD)
    assert client.get("/requests/queue").status_code == 200
    off = post(
        admin, "/admin/users/li", {"display_name": "李四", "roles": ["acceptor", "head"], "active": "no"}
    )
    assert off.status_code == 302
    assert client.get("/requests/queue").status_code == 302  # signed out at once
    _, refused = _login(app, "li", PASSWORD)
    assert refused.status_code == 401
    on = post(admin, "/admin/users/li", {"display_name": "李四", "roles": ["acceptor"], "active": "yes"})
    assert on.status_code == 302
    assert _login(app, "li", PASSWORD)[1].status_code == 302
    same = post(admin, "/admin/users/li", {"display_name": "李四", "roles": ["acceptor"], "active": "yes"})
    assert same.status_code == 400 and "没有修改任何内容" in same.get_data(as_text=True)


def test_the_last_admin_stays(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    service.users.update("omni", actor=people["admin"], active=False)  # omni holds admin too
    got = post(
        client_as("admin"), "/admin/users/admin", {"display_name": "", "roles": ["admin"], "active": "no"}
    )
    assert got.status_code == 409 and "不能移除最后一个管理员" in got.get_data(as_text=True)
    assert next(u for u in service.users.list() if u.username == "admin").active


def test_a_new_password(
    app: Flask, service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    service.users.add("li", PASSWORD, ["entry"], actor=people["admin"])
    admin = client_as("admin")
    short = post(admin, "/admin/users/li/password", {"password": "short", "password_again": "short"})
    assert short.status_code == 400 and re.search(
        r'id="err-password">密码至少10位<', short.get_data(as_text=True)
    )
    differ = post(
        admin, "/admin/users/li/password", {"password": "another-password-2", "password_again": "x"}
    )
    assert differ.status_code == 400 and "两次输入的密码不一致" in differ.get_data(as_text=True)
    done = post(
        admin,
        "/admin/users/li/password",
        {"password": "another-password-2", "password_again": "another-password-2"},
    )
    assert done.status_code == 302
    assert service.users.authenticate("li", "another-password-2").username == "li"
    with pytest.raises(AuthenticationError):
        service.users.authenticate("li", PASSWORD)


@pytest.mark.parametrize("role", ["clerk", "acceptor", "head", "reviewer", "distributor", "ops"])
def test_only_admins_manage_users(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient], role: str
) -> None:
    client = client_as(role)
    assert client.get("/admin/users").status_code == 403
    assert client.get("/admin/users/clerk").status_code == 403
    assert _add(client).status_code == 403
    forced = post(client, "/admin/users/clerk", {"display_name": "x", "roles": ["admin"], "active": "yes"})
    assert forced.status_code == 403
    assert next(u for u in service.users.list() if u.username == "clerk").role_set() == {"entry"}
    with service.ctx.read() as s:
        denied = s.exec(
            select(AuditRecord).where(AuditRecord.action == "security.denied", AuditRecord.actor == role)
        ).all()
    assert {d.details.split('"attempted":"')[1].split('"')[0] for d in denied} >= {"user.list", "user.update"}


def test_unknown_user_is_a_chinese_404(
    people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    got = client_as("admin").get("/admin/users/nobody")
    assert got.status_code == 404 and "用户不存在" in got.get_data(as_text=True)
