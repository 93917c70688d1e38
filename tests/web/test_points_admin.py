"""Acceptance points in the admin pages and the entry form (Flask's test client): the points page (list, add,
each refusal beside its field in Chinese, admins only), a user's point on the users pages (column, select, 中心
for a center user), the point a new request goes to (a choice only for a clerk with more than one point), the
CSV export within the clerk's points."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import select

from pki.enums import Role
from pki.models import AuditRecord, CertificateRequest
from pki.models.point import DEFAULT_POINT
from pki.services import Actor, Service
from tests.support.data import application
from tests.support.points import CHANGSHA, PROVINCIAL, WUHAN, add_points, point_id, staff_at, uscc
from tests.web.conftest import post

PASSWORD = "new-user-password-1"


def _options(html: str, select_id: str) -> list[str]:
    found = re.search(rf'<select id="{select_id}" name="\w+"[^>]*>(.*?)</select>', html, re.S)
    assert found, f"no select {select_id}"
    return re.findall(r'<option value="([^"]*)"', found.group(1))


def _selected(html: str, select_id: str) -> str:
    found = re.search(rf'<select id="{select_id}" name="\w+"[^>]*>(.*?)</select>', html, re.S)
    assert found
    chosen = re.findall(r'<option value="([^"]*)"[^>]* selected', found.group(1))
    assert len(chosen) <= 1
    return chosen[0] if chosen else ""


def _row(html: str, attr: str, key: str) -> str:
    found = re.search(rf'<tr {attr}="{re.escape(key)}">(.*?)</tr>', html, re.S)
    assert found, key
    return found.group(1)


def _add_point(client: FlaskClient, **form: str):  # type: ignore[no-untyped-def]
    data = {"name": "宜昌受理点", "province": "湖北", "parent": PROVINCIAL} | form
    return post(client, "/admin/points", data, page="/admin/points")


# -- the points page ----------------------------------------------------------------------------------------


def test_the_points_page_lists_and_adds_points(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    add_points(service, people["admin"])
    staff_at(service, WUHAN)
    admin = client_as("admin")
    html = admin.get("/admin/points").get_data(as_text=True)
    # The default point first, each provincial point followed by the points under it.
    assert re.findall(r'<tr data-point="([^"]+)">', html) == [DEFAULT_POINT, PROVINCIAL, WUHAN, CHANGSHA]
    wuhan = _row(html, "data-point", WUHAN)
    assert '<td class="province">湖北</td>' in wuhan and f'<td class="parent">{PROVINCIAL}</td>' in wuhan
    assert f'<td class="users">{len(Role)}</td>' in wuhan
    assert '<td class="users">0</td>' in _row(html, "data-point", CHANGSHA)
    # Provinces in the standard order; only points under none may be a parent.
    assert _options(html, "p-province") == ["", *service.ctx.policies.provinces.names]
    assert _options(html, "p-parent") == ["", DEFAULT_POINT, PROVINCIAL, CHANGSHA]
    assert "受理点管理" in admin.get("/").get_data(as_text=True)

    got = _add_point(admin)
    assert got.status_code == 302 and got.headers["Location"].endswith("/admin/points")
    added = next(p for p in service.points.list() if p.name == "宜昌受理点")
    assert (added.province, added.parent) == ("湖北", PROVINCIAL)
    page = admin.get("/admin/points").get_data(as_text=True)
    assert "受理点 宜昌受理点 已添加" in page
    assert re.findall(r'<tr data-point="([^"]+)">', page).index("宜昌受理点") == 3  # under 湖北
    with service.ctx.read() as s:
        record = s.exec(select(AuditRecord).where(AuditRecord.action == "point.add")).all()[-1]
    assert record.actor == "admin" and "宜昌受理点" in record.details


@pytest.mark.parametrize(
    ("form", "field", "words", "status"),
    [
        ({"name": " "}, "name", "名称：1–64个字，单行", 400),
        ({"name": "名" * 65}, "name", "名称：1–64个字，单行", 400),
        ({"province": ""}, "province", "省份名称无效", 400),
        ({"province": "火星"}, "province", "省份名称无效", 400),
        ({"parent": "不存在的受理点"}, "parent", "受理点不存在", 400),
        ({"parent": WUHAN}, "parent", "上级受理点不能是下级受理点", 400),
        ({"name": CHANGSHA, "province": "湖南", "parent": ""}, "name", f"受理点“{CHANGSHA}”已存在", 409),
    ],
    ids=["blank-name", "long-name", "no-province", "unknown-province", "unknown-parent", "nested", "taken"],
)
def test_a_refused_point_is_named_beside_its_field(
    service: Service,
    people: dict[str, Actor],
    client_as: Callable[[str], FlaskClient],
    form: dict[str, str],
    field: str,
    words: str,
    status: int,
) -> None:
    add_points(service, people["admin"])
    before = [p.name for p in service.points.list()]
    got = _add_point(client_as("admin"), **form)
    html = got.get_data(as_text=True)
    assert got.status_code == status
    found = re.search(rf'id="err-{field}">([^<]+)<', html)
    assert found and words in found.group(1), html
    assert [p.name for p in service.points.list()] == before
    kept = {"name": "宜昌受理点", "province": "湖北", "parent": PROVINCIAL} | form
    if field != "province" and kept["province"]:
        assert _selected(html, "p-province") == kept["province"]  # kept as chosen


@pytest.mark.parametrize("role", ["clerk", "acceptor", "head", "reviewer", "distributor", "ops"])
def test_only_admins_manage_points(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient], role: str
) -> None:
    client = client_as(role)
    assert client.get("/admin/points").status_code == 403
    refused = _add_point(client, parent="")
    assert refused.status_code == 403 and "无权" in refused.get_data(as_text=True)
    assert "宜昌受理点" not in {p.name for p in service.points.list()}
    assert "受理点管理" not in client.get("/").get_data(as_text=True)  # not offered
    with service.ctx.read() as s:
        denied = s.exec(
            select(AuditRecord).where(AuditRecord.action == "security.denied", AuditRecord.actor == role)
        ).all()
    assert {d.details.split('"attempted":"')[1].split('"')[0] for d in denied} >= {"point.list", "point.add"}


# -- a user's point on the users pages ---------------------------------------------------------------------


def _add_user(client: FlaskClient, **form: object):  # type: ignore[no-untyped-def]
    data = {"username": "wang", "display_name": "王小明", "roles": ["entry"], "password": PASSWORD}
    data |= {"password_again": PASSWORD} | form
    return post(client, "/admin/users", data, page="/admin/users")


def test_users_are_listed_and_added_with_their_point(
    app: Flask, service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    add_points(service, people["admin"])
    admin = client_as("admin")
    page = admin.get("/admin/users").get_data(as_text=True)
    assert _options(page, "u-point") == ["", DEFAULT_POINT, PROVINCIAL, WUHAN, CHANGSHA]
    assert _selected(page, "u-point") == ""  # 中心 unless chosen
    assert "中心（可见所有受理点）" in page
    assert '<td class="point">中心</td>' in _row(page, "data-user", "clerk")

    assert _add_user(admin, point=WUHAN).status_code == 302
    assert _add_user(admin, username="zhou", point="").status_code == 302
    users = {u.username: u for u in service.users.list()}
    assert users["wang"].point_id == point_id(service, WUHAN) and users["zhou"].point_id is None
    page = admin.get("/admin/users").get_data(as_text=True)
    assert f'<td class="point">{WUHAN}</td>' in _row(page, "data-user", "wang")
    assert '<td class="point">中心</td>' in _row(page, "data-user", "zhou")

    refused = _add_user(admin, username="li", point="不存在的受理点")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and re.search(r'id="err-point">受理点不存在<', html)
    assert "li" not in {u.username for u in service.users.list()}
    assert 'value="li"' in html and PASSWORD not in html


def test_a_users_point_is_changed_and_made_the_center(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    add_points(service, people["admin"])
    service.users.add("li", PASSWORD, ["entry"], actor=people["admin"], point=WUHAN)
    admin = client_as("admin")
    page = admin.get("/admin/users/li").get_data(as_text=True)
    assert _selected(page, "u-point") == WUHAN

    def change(point: str):  # type: ignore[no-untyped-def]
        form = {"display_name": "李四", "roles": ["entry"], "active": "yes", "point": point}
        return post(admin, "/admin/users/li", form, page="/admin/users/li")

    def placed() -> int | None:
        return next(u for u in service.users.list() if u.username == "li").point_id

    assert change(CHANGSHA).status_code == 302 and placed() == point_id(service, CHANGSHA)
    assert _selected(admin.get("/admin/users/li").get_data(as_text=True), "u-point") == CHANGSHA
    assert change("").status_code == 302 and placed() is None
    assert _selected(admin.get("/admin/users/li").get_data(as_text=True), "u-point") == ""
    refused = change("不存在的受理点")
    assert refused.status_code == 400 and re.search(
        r'id="err-point">受理点不存在<', refused.get_data(as_text=True)
    )
    assert _selected(refused.get_data(as_text=True), "u-point") == ""  # nothing matches: 中心 shown
    assert placed() is None
    changes = [r.details for r in service.audit.recent(limit=5, subject_type="user", subject_id="li")]
    assert any(CHANGSHA in d for d in changes)


# -- the point a new request goes to -------------------------------------------------------------------


def _enter(client: FlaskClient, point: str | None, **fields: object):  # type: ignore[no-untyped-def]
    data: dict[str, object] = {
        k: ("true" if v is True else "false" if v is False else v)
        for k, v in application(credential_number=uscc(), **fields).items()
    }
    if point is not None:
        data["point"] = point
    return post(client, "/requests/new", data, page="/requests/new")


def _point_of(service: Service, unit_name: str) -> str | None:
    with service.ctx.read() as s:
        found = s.exec(select(CertificateRequest).where(CertificateRequest.unit_name == unit_name)).one()
    return service.points.name_of(found.point_id)


def test_a_center_clerk_chooses_the_point_of_a_new_request(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    add_points(service, people["admin"])
    clerk = client_as("clerk")
    form = clerk.get("/requests/new").get_data(as_text=True)
    assert _options(form, "f-point") == [DEFAULT_POINT, PROVINCIAL, WUHAN, CHANGSHA]
    assert "录入到受理点" in form
    assert _enter(clerk, CHANGSHA, unit_name="长沙某单位").status_code == 302
    assert _point_of(service, "长沙某单位") == CHANGSHA
    assert _enter(clerk, None, unit_name="没选受理点的单位").status_code == 302
    assert _point_of(service, "没选受理点的单位") == DEFAULT_POINT
    # A refused record keeps the chosen point.
    refused = _enter(clerk, WUHAN, unit_name="武汉某单位", postal_code="12")
    assert refused.status_code == 400 and _selected(refused.get_data(as_text=True), "f-point") == WUHAN
    # The edit form offers no point: a request stays at its point.
    rid = service.requests.find(actor=people["clerk"])[0].id
    edit = clerk.get(f"/requests/{rid}/edit")
    assert edit.status_code == 200 and 'id="f-point"' not in edit.get_data(as_text=True)


def test_a_point_clerk_enters_for_their_points_only(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    add_points(service, people["admin"])
    wuhan = staff_at(service, WUHAN)[Role.ENTRY]
    provincial = staff_at(service, PROVINCIAL)[Role.ENTRY]
    staff_at(service, CHANGSHA)
    # One point: no choice shown, the request goes there.
    client = client_as(wuhan.username)
    assert 'id="f-point"' not in client.get("/requests/new").get_data(as_text=True)
    assert _enter(client, None, unit_name="武汉某单位").status_code == 302
    assert _point_of(service, "武汉某单位") == WUHAN
    forced = _enter(client, CHANGSHA, unit_name="冒充长沙的单位")
    assert forced.status_code == 400 and re.search(
        r'id="err-point">受理点不存在<', forced.get_data(as_text=True)
    )
    with service.ctx.read() as s:
        assert (
            s.exec(select(CertificateRequest).where(CertificateRequest.unit_name == "冒充长沙的单位")).all()
            == []
        )
        denied = s.exec(
            select(AuditRecord).where(
                AuditRecord.action == "security.denied", AuditRecord.actor == wuhan.username
            )
        ).all()
    assert denied and "out_of_scope" in denied[-1].details
    # A provincial point: its own and the points under it, its own first.
    client = client_as(provincial.username)
    assert _options(client.get("/requests/new").get_data(as_text=True), "f-point") == [PROVINCIAL, WUHAN]
    assert _enter(client, WUHAN, unit_name="省里替武汉录入的单位").status_code == 302
    assert _point_of(service, "省里替武汉录入的单位") == WUHAN


def test_the_csv_export_keeps_to_the_clerks_points(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    add_points(service, people["admin"])
    staff_at(service, WUHAN)
    for point, name in ((WUHAN, "武汉某单位"), (CHANGSHA, "长沙某单位")):
        service.requests.create(
            application(unit_name=name, credential_number=uscc()), actor=people["clerk"], point=point
        )
    mine = client_as(f"wh-{Role.REVIEWER.value}").get("/requests/export.csv").get_data(as_text=True)
    assert "武汉某单位" in mine and "长沙某单位" not in mine
    everything = client_as("reviewer").get("/requests/export.csv").get_data(as_text=True)
    assert "武汉某单位" in everything and "长沙某单位" in everything
