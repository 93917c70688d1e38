"""The UI's pages: entry kept as typed, edit, lists with filters and keyset pages, print, certificates,
dashboard and attachments."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from pki.enums import Action, RequestState
from pki.errors import ValidationError
from pki.services import Actor, Service
from tests.support.data import application, make_uscc
from tests.support.pki import approved, csr_for, key
from tests.web.conftest import post


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-state="[a-z]+">\s*<td><a href="/requests/(\d+)"', html)]


def _form(**overrides: object) -> dict[str, object]:
    return {k: ("true" if v is True else str(v)) for k, v in application(**overrides).items()}


def test_refused_entry_keeps_the_record_and_names_each_field(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    client = client_as("clerk")
    typed = _form(credential_number="11110000000012343X", postal_code="12345", unit_fax="")
    got = post(client, "/requests/new", typed, page="/requests/new")
    html = got.get_data(as_text=True)
    assert got.status_code == 400 and service.requests.find() == []
    for field, words in (
        ("credential_number", "证件号码"),
        ("postal_code", "邮编"),
        ("unit_fax", "单位传真"),
    ):
        found = re.search(rf'id="err-{field}">([^<]+)<', html)
        assert found and words in found.group(1), field
    assert 'value="北京市某能源监测中心"' in html and 'value="11110000000012343X"' in html
    assert '<option value="北京" selected>' in html


def test_edit_a_returned_request(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    rid = req.id or 0
    service.requests.accept(rid, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    service.requests.countersign(rid, actor=people["head"])
    service.requests.review(rid, actor=people["reviewer"], decision=Action.RETURN, reason="传真号码有误")
    client = client_as("clerk2")
    page = client.get(f"/requests/{rid}/edit").get_data(as_text=True)
    assert 'value="010-12345679"' in page  # the stored record, ready to correct
    version = service.requests.get(rid).version
    unchanged = post(client, f"/requests/{rid}/edit", _form() | {"version": version})
    assert unchanged.status_code == 400 and "没有修改任何内容" in unchanged.get_data(as_text=True)
    stale = post(client, f"/requests/{rid}/edit", _form(unit_fax="010-87654321") | {"version": version - 1})
    assert stale.status_code == 409 and "已被他人修改" in stale.get_data(as_text=True)
    ok = post(client, f"/requests/{rid}/edit", _form(unit_fax="010-87654321") | {"version": version})
    assert ok.status_code == 302
    after = service.requests.get(rid)
    assert after.state is RequestState.ENTERED and after.unit_fax == "010-87654321"


def test_review_without_a_reason_shows_the_error_beside_it(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    rid = req.id or 0
    service.requests.accept(rid, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    service.requests.countersign(rid, actor=people["head"])
    got = post(client_as("reviewer"), f"/requests/{rid}/review", {"decision": "reject", "reason": " "})
    html = got.get_data(as_text=True)
    assert got.status_code == 400 and re.search(r'id="err-reason">[^<]*理由', html)
    no_key = post(client_as("acceptor2"), f"/requests/{rid}/accept", {"opinion": "agree"})
    assert no_key.status_code == 409  # countersigned already: the acceptance step is over
    assert service.requests.get(rid).state is RequestState.COUNTERSIGNED


def test_history_shows_who_did_what_when(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = approved(service, people)
    html = client_as("distributor").get(f"/requests/{rid}").get_data(as_text=True)
    history = html[html.index("办理记录") :]
    for who, what in (
        ("clerk", "录入"),
        ("acceptor", "受理（同意）"),
        ("head", "负责人签字"),
        ("reviewer", "审核通过"),
    ):
        assert re.search(rf"<td>{who}</td><td>{re.escape(what)}</td>", history), (who, what)
    assert "2020-10-20 10:00:00" in history  # Beijing time on screen


def test_list_filters_search_and_keyset_pages(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    ids = []
    for i in range(120):
        province, division = ("北京", "110101") if i % 2 else ("上海", "310101")
        row = service.requests.create(
            application(
                unit_name=f"单位{i:03d}",
                province=province,
                credential_number=make_uscc(division, f"{80000000 + i}"),
                access_type="formal" if i % 3 == 0 else "test",
            ),
            actor=people["clerk"],
        )
        ids.append(row.id or 0)
    client = client_as("reviewer")
    seen: list[int] = []
    url: str | None = "/requests/"
    while url:
        html = client.get(url).get_data(as_text=True)
        seen += _ids(html)
        nxt = re.search(r'<a href="([^"]+)" rel="next">', html)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    assert seen == sorted(ids, reverse=True)  # every request once, newest first
    beijing = _ids(client.get("/requests/?province=北京&access_type=formal").get_data(as_text=True))
    expected = [ids[i] for i in range(120) if i % 2 and i % 3 == 0]
    assert beijing == sorted(expected, reverse=True)
    assert _ids(client.get("/requests/?q=单位007").get_data(as_text=True)) == [ids[7]]
    code = service.requests.get(ids[8]).credential_number
    assert _ids(client.get(f"/requests/?q={code.lower()}").get_data(as_text=True)) == [ids[8]]
    assert _ids(client.get("/requests/?state=accepted").get_data(as_text=True)) == []
    assert (
        len(
            _ids(
                client.get("/requests/?entered_from=2020-10-20&entered_to=2020-10-20").get_data(as_text=True)
            )
        )
        == 50
    )
    assert _ids(client.get("/requests/?entered_from=2020-10-21").get_data(as_text=True)) == []
    bad = client.get("/requests/?entered_from=yesterday&state=nonsense").get_data(as_text=True)
    assert "日期格式应为年-月-日" in bad and "状态无效" in bad


def test_queues_follow_the_roles(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    entered = service.requests.create(application(), actor=people["clerk"]).id
    done = approved(service, people)
    assert _ids(client_as("acceptor").get("/requests/queue").get_data(as_text=True)) == [entered]
    assert _ids(client_as("distributor").get("/requests/queue").get_data(as_text=True)) == [done]
    assert _ids(client_as("head").get("/requests/queue").get_data(as_text=True)) == []
    # ops carry out approved deals that issue nothing (待办理): an approved new application is not theirs.
    ops = client_as("ops").get("/requests/queue").get_data(as_text=True)
    assert "待办理（审核通过）" in ops and _ids(ops) == []
    assert "当前角色没有待处理的申请" in client_as("admin").get("/requests/queue").get_data(as_text=True)


def test_printable_application(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = approved(service, people)
    got = client_as("clerk").get(f"/requests/{rid}/print")
    html = got.get_data(as_text=True)
    assert got.status_code == 200 and "机构数字证书申请表" in html and "print.css" in html
    number = service.requests.get(rid).credential_number
    for text in ("北京市某能源监测中心", number, "经办人签字", "公章", "飞天诚信 ePass3003", "同意"):
        assert text in html
    response = client_as("clerk").get("/static/print.css")
    css = response.get_data(as_text=True)
    response.close()
    assert "size: A4" in css and "@media print" in css


def test_certificate_pages_and_downloads(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    cert = ca_service.issuance.issue_from_csr(
        approved(ca_service, people), csr_for(key("ec-p256", 901)), actor=people["distributor"]
    )
    client = client_as("ops")
    listing = client.get("/certificates/?status=valid").get_data(as_text=True)
    assert cert.serial[:16] in listing
    assert cert.serial[:16] not in client.get("/certificates/?status=revoked").get_data(as_text=True)
    detail = client.get(f"/certificates/{cert.serial}").get_data(as_text=True)
    assert '<dd id="cert-status">有效</dd>' in detail
    pem = client.get(f"/certificates/{cert.serial}.pem")
    assert pem.status_code == 200 and pem.data == ca_service.certificates.export(cert.serial, "pem")
    chain = client.get(f"/certificates/{cert.serial}.chain")
    assert chain.data.count(b"BEGIN CERTIFICATE") == 3
    assert client.get("/certificates/ABC").status_code == 404
    assert client.get(f"/certificates/{cert.serial}.key").status_code == 404


def test_dashboard_counts_and_chart(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient], clock
) -> None:
    ca_service.requests.create(application(), actor=people["clerk"])
    cert = ca_service.issuance.issue_from_csr(
        approved(ca_service, people, access_type="formal"),
        csr_for(key("ec-p256", 902)),
        actor=people["distributor"],
    )
    figures = ca_service.stats.dashboard()
    assert figures.requests_by_state[RequestState.ENTERED] == 1
    assert figures.requests_by_state[RequestState.ISSUED] == 1
    assert (
        figures.requests_by_kind == {k: v for k, v in figures.requests_by_kind.items()}
        and sum(figures.requests_by_kind.values()) == 2
    )
    assert figures.certificates_by_kind_status == {("formal", "valid"): 1}
    assert figures.expiring_within == {30: 0, 60: 0, 90: 0}
    issued_month = next(m for m in figures.by_month if m.issued)
    assert (issued_month.month, issued_month.issued) == ("2020-10", 1)
    ending = cert.not_valid_after
    clock.set(ending - timedelta(days=45))
    later = ca_service.stats.dashboard()
    assert later.expiring_within == {30: 0, 60: 1, 90: 1}
    month = ending.astimezone(__import__("pki.clock", fromlist=["CHINA_TZ"]).CHINA_TZ).strftime("%Y-%m")
    assert [m.expiring for m in later.by_month if m.month == month] == [1]
    html = client_as("head").get("/").get_data(as_text=True)
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html and 'data-expiring="60">1<' in html


def test_attachments_checked_by_content_and_size(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    import io

    rid = service.requests.create(application(), actor=people["clerk"]).id
    client = client_as("acceptor")

    def upload(data: bytes, name: str, kind: str = "credential"):  # type: ignore[no-untyped-def]
        return post(
            client,
            f"/requests/{rid}/attachments",
            {"kind": kind, "file": (io.BytesIO(data), name)},
            content_type="multipart/form-data",
        )

    fake = upload(b"MZ\x90\x00 not a scan", "scan.pdf")
    assert fake.status_code == 400 and "只接受 PDF、JPEG 或 PNG" in fake.get_data(as_text=True)
    # The size rule through the service (a 10 MiB body through the test client leaves a temp file open).
    big = service.ctx.policies.access.attachment_max_bytes
    with pytest.raises(ValidationError) as refused:
        service.attachments.add(
            rid or 0,
            kind="credential",
            filename="huge.pdf",
            data=b"%PDF-" + b"0" * big,
            actor=people["acceptor"],
        )
    assert refused.value.for_field("file")[0].message_zh == "文件：不能超过 10 MB"
    assert upload(b"\xff\xd8\xff\xe0jpeg", "card.png", kind="nonsense").status_code == 400
    assert upload(b"\xff\xd8\xff\xe0jpeg", "card.png").status_code == 302
    [row] = service.attachments.list_for(rid or 0, actor=people["reviewer"])
    assert row.media_type == "image/jpeg"  # from the bytes, not the name
    html = client_as("reviewer").get(f"/requests/{rid}").get_data(as_text=True)
    assert "card.png" in html and "上传附件" in html
    assert f"/requests/{rid}/attachments/" not in client_as("distributor").get(f"/requests/{rid}").get_data(
        as_text=True
    )


def test_unknown_pages_and_requests_say_so_in_chinese(
    people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    client = client_as("reviewer")
    for path in ("/requests/999999", "/requests/999999/print", "/requests/nothing"):
        got = client.get(path)
        assert got.status_code == 404, path
        assert "不存在" in got.get_data(as_text=True), path
    assert client.get("/requests/999999/edit").status_code == 404


def test_the_list_page_costs_the_same_queries_for_5_rows_as_for_50(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    from sqlalchemy import event

    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    client = client_as("acceptor")

    def queries_for_page() -> int:
        statements.clear()
        event.listen(service.ctx.engine, "before_cursor_execute", count)
        try:
            assert client.get("/requests/").status_code == 200
        finally:
            event.remove(service.ctx.engine, "before_cursor_execute", count)
        return len(statements)

    for i in range(5):
        service.requests.create(
            application(credential_number=make_uscc("110101", f"{60000000 + i}")), actor=people["clerk"]
        )
    few = queries_for_page()
    for i in range(5, 60):
        service.requests.create(
            application(credential_number=make_uscc("110101", f"{60000000 + i}")), actor=people["clerk"]
        )
    many = queries_for_page()
    assert few == many <= 6  # no query per row


def test_history_details_in_the_clerks_words(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    rid = req.id or 0
    service.requests.accept(rid, actor=people["acceptor"], agree=True, usbkey_model="飞天诚信 ePass3003")
    service.requests.countersign(rid, actor=people["head"])
    service.requests.review(rid, actor=people["reviewer"], decision=Action.RETURN, reason="请补充传真")
    service.requests.edit(rid, application(unit_fax="010-87654321"), actor=people["clerk"])
    html = client_as("head").get(f"/requests/{rid}").get_data(as_text=True)
    assert "原状态：负责人已签；新状态：退回修改；理由：请补充传真" in html
    assert "USBKEY 品牌及型号：飞天诚信 ePass3003" in html
    assert "修改的栏目：单位传真" in html


def test_a_date_range_pages_by_entry_time_without_gaps(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient], clock
) -> None:
    from pki.clock import CHINA_TZ

    made: list[tuple[object, int]] = []
    for i in range(130):
        clock.advance(timedelta(hours=1))
        row = service.requests.create(
            application(
                credential_number=make_uscc("110101", f"{50000000 + i}"), application_date="2020-10-20"
            ),
            actor=people["clerk"],
        )
        made.append((row.entered_at, row.id or 0))
    day = lambda at: at.astimezone(CHINA_TZ).date().isoformat()  # noqa: E731
    expected = [rid for at, rid in sorted(made, reverse=True) if "2020-10-21" <= day(at) <= "2020-10-24"]
    assert len(expected) > 60  # more than one page
    client = client_as("reviewer")
    seen: list[int] = []
    url: str | None = "/requests/?entered_from=2020-10-21&entered_to=2020-10-24&province=北京"
    while url:
        html = client.get(url).get_data(as_text=True)
        seen += _ids(html)
        nxt = re.search(r'<a href="([^"]+)" rel="next">', html)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    assert seen == expected
