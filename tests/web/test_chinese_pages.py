"""Chinese everywhere a clerk looks: every template's own text, every error page (never Werkzeug's English
one), the pages as rendered for each role; revocation reasons and subject attributes by their Chinese
names; provinces in the standard order in every list and filter."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlmodel import Session
from werkzeug.exceptions import MethodNotAllowed

from pki.enums import Action, Role
from pki.models import User
from pki.models.point import DEFAULT_POINT
from pki.services import Actor, Service
from tests.support.data import SCAN_PDF, application, attach_required_scans
from tests.support.pki import approved, csr_for, key
from tests.web.clerk_text import english_words, read_text, template_words
from tests.web.conftest import create, post, sign_in

TEMPLATES = sorted((Path(__file__).resolve().parents[2] / "web" / "templates").rglob("*.html"))
NAMES = {
    "clerk": "王录入",
    "clerk2": "赵录入",
    "acceptor": "李受理",
    "acceptor2": "钱受理",
    "head": "张负责",
    "reviewer": "陈审核",
    "distributor": "刘分发",
    "ops": "周运维",
    "admin": "吴管理",
    "omni": "全能",
}
# Values the pages show as stored: the sample application's e-mail, the key model, the login names (the
# admin page lists them, the header's tooltip has the signed-in one).
DATA = (
    "lisi@example.gov.cn",
    "飞天诚信 ePass3003",
    "盖章申请表.pdf",
    "signed_form.pdf",
    *sorted(NAMES, key=len, reverse=True),
)


@pytest.fixture
def named(service: Service, people: dict[str, Actor]) -> dict[str, Actor]:
    with Session(service.ctx.engine) as s:
        for username, name in NAMES.items():
            s.execute(update(User).where(User.username == username).values(display_name=name))  # type: ignore[arg-type]
        s.commit()
    return people


def test_the_check_finds_werkzeugs_english() -> None:
    """The check itself: Werkzeug's own 405 page is what clerks met; it must be caught."""
    assert {"Method", "Not", "Allowed"} <= english_words(MethodNotAllowed().get_body())
    assert english_words("<p>证书（PEM），<code>pkictl issue</code>，序列号 3F2AB9</p>") == set()
    assert english_words('<input placeholder="Choose a file">') == {"Choose", "file"}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_no_template_has_english_a_clerk_would_read(path: Path) -> None:
    assert template_words(path.read_text(encoding="utf-8")) == set()


def _chinese_page(got, status: int) -> str:  # type: ignore[no-untyped-def]
    html = got.get_data(as_text=True)
    assert got.status_code == status, (status, html[:300])
    assert got.mimetype == "text/html" and '<html lang="zh-CN">' in html, html[:300]
    assert english_words(html) == set(), html
    assert re.search(r"[\u4e00-\u9fff]{4,}", read_text(html))
    return html


def test_every_error_status_is_a_chinese_page(
    app: Flask, service: Service, named: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = service.requests.create(application(), actor=named["clerk"]).id
    client = client_as("acceptor")
    _chinese_page(client.get("/nowhere"), 404)
    _chinese_page(client.get("/requests/999"), 404)
    _chinese_page(client.get("/certificates/ABCDEF"), 404)
    for action_url in (
        f"/requests/{rid}/accept",
        f"/requests/{rid}/review",
        "/logout",
        "/admin/users/clerk/password",
    ):
        got = client.get(action_url)
        html = _chinese_page(got, 405)
        assert "不能直接打开" in html and "POST" in got.headers["Allow"], action_url
    _chinese_page(app.test_client().get(f"/requests/{rid}/accept"), 405)  # signed out too
    too_big = client.post(
        f"/requests/{rid}/attachments",
        data=b"0" * (11 << 20),
        content_type="multipart/form-data; boundary=x",
    )
    assert "上传的内容过大" in _chinese_page(too_big, 413)
    assert "表单已失效" in _chinese_page(client.post(f"/requests/{rid}/accept", data={}), 400)
    assert "无权" in _chinese_page(client_as("reviewer").get("/admin/users"), 403)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413, 415, 429, 500, 503])
def test_each_status_raised_anywhere_is_a_chinese_page(service: Service, status: int) -> None:
    """What a view or Werkzeug may raise, on a path outside the blueprints too."""
    app = create(service)

    @app.get("/raises/<int:code>")
    def raises(code: int) -> str:
        abort(code)

    _chinese_page(app.test_client().get(f"/raises/{status}"), status)


def test_a_bug_and_a_lost_database_are_chinese_pages(service: Service, tmp_path: Path) -> None:
    app = create(service)

    @app.get("/bug")
    def bug() -> str:
        raise RuntimeError("a bug with a path /srv/secret in it")

    html = _chinese_page(app.test_client().get("/bug"), 500)
    assert "/srv/secret" not in html and "服务器内部错误" in html
    from pki.db import make_engine

    gone = Service(make_engine(f"sqlite:///{tmp_path / 'missing' / 'pki.db'}"), clock=service.ctx.clock)
    try:
        lost = create(gone).test_client()
        sign_in(lost, service, "clerk")
        html = _chinese_page(lost.get("/requests/"), 500)
        assert "服务暂不可用" in html
    finally:
        gone.ctx.engine.dispose()


def test_program_endpoints_keep_their_plain_answers(app: Flask) -> None:
    client = app.test_client()
    crl = client.get("/crl/no/such.crl")
    assert crl.status_code == 404 and crl.mimetype == "text/plain"
    ocsp = client.put("/ocsp/test")
    assert ocsp.status_code == 405 and ocsp.mimetype == "text/plain"
    api = client.get("/api/v1/nowhere")
    assert api.status_code == 404 and api.mimetype == "application/problem+json"


def _pages_for_every_role(
    ca_service: Service, people: dict[str, Actor], tmp_path: Path
) -> tuple[list[str], str, str]:
    """Requests in several states, a revoked and a valid certificate; the pages that show them."""
    rid = approved(ca_service, people, access_type="formal")
    cert = ca_service.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 41)), actor=people["distributor"])
    ca_service.revocation.revoke(cert.serial, "keyCompromise", actor=people["ops"], comment="钥匙丢失")
    other = approved(ca_service, people)
    valid = ca_service.issuance.issue_from_csr(
        other, csr_for(key("ec-p256", 42)), actor=people["distributor"]
    )
    entered = (
        ca_service.requests.create(application(unit_name="北京某新单位"), actor=people["clerk2"]).id or 0
    )
    ca_service.attachments.add(
        entered, kind="signed_form", filename="盖章申请表.pdf", data=SCAN_PDF, actor=people["clerk2"]
    )
    ca_service.requests.accept(
        entered, actor=people["acceptor2"], agree=True, usbkey_model="飞天诚信 ePass3003"
    )
    ca_service.requests.countersign(entered, actor=people["head"])
    ca_service.requests.review(entered, actor=people["reviewer2"], decision=Action.RETURN, reason="传真有误")
    ca_service.points.add("西城受理点", province="北京", actor=people["admin"])
    ca_service.stock.intake(["K1", "K2"], model="ePass3003", point="西城受理点", actor=people["ops"])
    ca_service.stock.transfer(["K2"], to=DEFAULT_POINT, actor=people["ops"])  # the dashboard's stock table
    pages = [
        "/",
        "/requests/",
        "/requests/queue",
        "/requests/new",
        f"/requests/{rid}",
        f"/requests/{rid}/print",
        f"/requests/{entered}",
        f"/requests/{entered}/edit",
        "/certificates/",
        f"/certificates/{cert.serial}",
        "/admin/users",
        "/admin/users/clerk",
        "/admin/points",
    ]
    return pages, cert.serial, valid.serial


def test_pages_as_rendered_for_every_role_have_no_english(
    ca_service: Service, named: dict[str, Actor], client_as: Callable[[str], FlaskClient], tmp_path: Path
) -> None:
    pages, revoked, valid = _pages_for_every_role(ca_service, named, tmp_path)
    for username in ("clerk", "acceptor", "head", "reviewer", "distributor", "ops", "admin", "omni"):
        client = client_as(username)
        for path in pages:
            got = client.get(path)
            if got.status_code == 403:  # a page not offered to this role: a Chinese refusal
                _chinese_page(got, 403)
                continue
            assert got.status_code == 200, (username, path, got.status_code)
            words = english_words(got.get_data(as_text=True), data=(*DATA, revoked, valid))
            assert words == set(), (username, path, words)
    login = english_words(create(ca_service).test_client().get("/login").get_data(as_text=True))
    assert login == set()


def test_a_revoked_certificate_in_the_clerks_words(
    ca_service: Service, named: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = approved(ca_service, named)
    cert = ca_service.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 43)), actor=named["distributor"])
    ca_service.revocation.revoke(cert.serial, "keyCompromise", actor=named["ops"])
    html = client_as("reviewer").get(f"/certificates/{cert.serial}").get_data(as_text=True)
    assert re.search(r'id="revocation-reason">密钥泄露<', html)
    assert "keyCompromise" not in html and "2.5.4" not in html and "=CN" not in html
    subject = html[html.index('id="subject"') : html.index('id="issuer"')]
    for label, value in (
        ("国家/地区", "中国"),
        ("省份", "北京"),
        ("组织", "北京市某能源监测中心"),
        ("组织机构标识", ca_service.certificates.get(cert.serial).credential_number),
        ("通用名称", "北京市某能源监测中心"),
    ):
        assert f"<dt>{label}</dt><dd>" in subject and value in subject, (label, value)
    assert "周运维" in html and "刘分发" in html  # revoked by, issued by: by name


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("unspecified", "未说明原因"),
        ("affiliationChanged", "单位信息变更"),
        ("superseded", "已被新证书替代"),
        ("cessationOfOperation", "停止使用"),
        ("privilegeWithdrawn", "权限撤销"),
    ],
)
def test_every_revocation_reason_has_chinese_words(
    ca_service: Service,
    people: dict[str, Actor],
    client_as: Callable[[str], FlaskClient],
    reason: str,
    words: str,
) -> None:
    rid = approved(ca_service, people)
    cert = ca_service.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 44)), actor=people["distributor"])
    ca_service.revocation.revoke(cert.serial, reason, actor=people["ops"])
    html = client_as("ops").get(f"/certificates/{cert.serial}").get_data(as_text=True)
    assert f'id="revocation-reason">{words}<' in html and reason not in html


def test_provinces_in_the_standard_order_in_every_list_and_filter(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    expected = list(service.ctx.policies.provinces.names)
    client = client_as("omni")
    for path, select_id in (
        ("/requests/", "q-province"),
        ("/requests/queue", "q-province"),
        ("/requests/new", "f-province"),
    ):
        html = client.get(path).get_data(as_text=True)
        block = html[html.index(f'id="{select_id}"') :]
        block = block[: block.index("</select>")]
        shown = re.findall(r'<option value="([^"]+)"', block)
        assert shown == expected, path
    assert expected.index("北京") < expected.index("上海") < expected.index("云南")


def test_file_and_date_widgets_are_labelled_in_chinese(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    """No widget speaks the browser's language: dates are typed 年-月-日, files chosen by a Chinese button."""
    rid = service.requests.create(application(access_type="formal"), actor=people["clerk"]).id
    client = client_as("omni")
    pages = [
        client.get(p).get_data(as_text=True) for p in ("/requests/new", "/requests/", f"/requests/{rid}")
    ]
    for html in pages:
        assert 'type="date"' not in html
    assert 'placeholder="年-月-日"' in pages[0] and "格式：年-月-日，例如 2020-10-19" in pages[0]
    detail = pages[2]
    for input_id in ("at-file", "ev-file"):
        assert re.search(rf'<input id="{input_id}" type="file"[^>]*class="file-input"', detail), input_id
        assert f'<label for="{input_id}" class="file-button" aria-hidden="true">选择文件</label>' in detail
        assert f'<span class="file-name" data-for="{input_id}">未选择文件</span>' in detail
    refused = client.get("/requests/?entered_from=2020/10/01").get_data(as_text=True)
    assert "起始日期：日期格式应为年-月-日，例如 2020-10-19" in refused


def test_history_in_the_clerks_words_without_the_english_reasons(
    service: Service, named: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = service.requests.create(application(access_type="formal"), actor=named["clerk"]).id or 0
    refused = post(client_as("head"), f"/requests/{rid}/accept", {"opinion": "agree", "usbkey": "k"})
    assert refused.status_code == 403
    attach_required_scans(service, rid, named["clerk"])
    html = client_as("reviewer").get(f"/requests/{rid}").get_data(as_text=True)
    history = html[html.index("办理记录") :]
    assert re.search(
        r"<td>张负责</td><td>被拒绝的操作</td><td[^>]*>尝试的操作：受理（同意）；拒绝原因：无此权限</td>",
        history,
    )
    assert re.search(
        r"<td>王录入</td><td>上传附件</td><td[^>]*>文件名：signed_form.pdf；附件类别：签字盖章的申请表扫描件</td>",
        history,
    )
    assert english_words(history, data=("signed_form.pdf",)) == set()
    assert Role.HEAD.value not in english_words(history)
