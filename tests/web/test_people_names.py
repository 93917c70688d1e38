"""People, not logins: display names on the request page and its history, the printed 附件7 (受理人, 负责人,
录入员, 审核员, 分发员 with their dates), the certificate page, the header and the CSV export; all of a page's
names in one query."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import event, update
from sqlmodel import Session

from pki.clock import FixedClock
from pki.enums import Action
from pki.models import User
from pki.services import Actor, Service
from tests.support.data import application, make_uscc
from tests.support.pki import approved, csr_for, key

NAMES = {
    "clerk": "王录入",
    "acceptor": "李受理",
    "head": "张负责",
    "reviewer": "陈审核",
    "distributor": "刘分发",
    "ops": "周运维",
}


def _name(service: Service, **names: str) -> None:
    with Session(service.ctx.engine) as s:
        for username, name in names.items():
            s.execute(update(User).where(User.username == username).values(display_name=name))  # type: ignore[arg-type]
        s.commit()


def _walked(service: Service, people: dict[str, Actor], clock: FixedClock) -> int:
    """Entered 10-20, accepted 10-21, countersigned 10-22, approved 10-23, issued 10-24, handed over 10-25."""
    req = service.requests.create(application(), actor=people["clerk"])
    rid = req.id or 0
    for step in (
        lambda: service.requests.accept(
            rid, actor=people["acceptor"], agree=True, usbkey_model="飞天诚信 ePass3003"
        ),
        lambda: service.requests.countersign(rid, actor=people["head"]),
        lambda: service.requests.review(rid, actor=people["reviewer"], decision=Action.APPROVE),
        lambda: service.issuance.issue_from_csr(
            rid, csr_for(key("ec-p256", 61)), actor=people["distributor"]
        ),
        lambda: service.distribution.distribute(rid, recipient="李四", actor=people["distributor"]),
    ):
        clock.advance(timedelta(days=1))
        step()
    return rid


def test_the_printed_form_names_each_signer_with_the_date(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, client_as: Callable[[str], FlaskClient]
) -> None:
    _name(ca_service, **NAMES)
    rid = _walked(ca_service, people, clock)
    html = client_as("ops").get(f"/requests/{rid}/print").get_data(as_text=True)
    for role, name, day in (
        ("受理人", "李受理", "2020-10-21"),
        ("负责人", "张负责", "2020-10-22"),
        ("录入员", "王录入", "2020-10-20"),
        ("审核员", "陈审核", "2020-10-23"),
        ("分发员", "刘分发", "2020-10-25"),
    ):
        assert re.search(
            rf'<tr data-role="{role}"><th>{role}</th><td[^>]*>{name}</td><th>日期</th><td>{day}</td></tr>',
            html,
        ), role
    for login in NAMES:
        assert f">{login}<" not in html


def test_before_hand_over_the_printed_distributor_is_who_issued(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    _name(ca_service, distributor="刘分发")
    rid = approved(ca_service, people)
    blank = client_as("ops").get(f"/requests/{rid}/print").get_data(as_text=True)
    assert re.search(r'<tr data-role="分发员"><th>分发员</th><td></td><th>日期</th><td></td></tr>', blank)
    ca_service.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 62)), actor=people["distributor"])
    issued = client_as("ops").get(f"/requests/{rid}/print").get_data(as_text=True)
    assert re.search(
        r'<tr data-role="分发员"><th>分发员</th><td>刘分发</td><th>日期</th><td>2020-10-20</td>', issued
    )


def test_the_request_page_and_its_history_name_people(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, client_as: Callable[[str], FlaskClient]
) -> None:
    _name(ca_service, **NAMES)
    rid = _walked(ca_service, people, clock)
    html = client_as("ops").get(f"/requests/{rid}").get_data(as_text=True)
    for field, name in (
        ("entered-by", "王录入"),
        ("accepted-by", "李受理"),
        ("countersigned-by", "张负责"),
        ("reviewed-by", "陈审核"),
        ("issued-by", "刘分发"),
        ("distributed-by", "刘分发"),
    ):
        assert re.search(rf'<dd id="{field}">{name} 2020-10-2\d', html), field
    history = html[html.index("办理记录") :]
    for name, what in (
        ("王录入", "录入"),
        ("李受理", "受理（同意）"),
        ("张负责", "负责人签字"),
        ("陈审核", "审核通过"),
    ):
        assert re.search(rf"<td>{name}</td><td>{re.escape(what)}</td>", history), name
    assert '<span class="who">周运维（运维）</span>' in html  # the header: who is signed in


def test_a_user_without_a_display_name_is_shown_by_login(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = service.requests.create(application(), actor=people["clerk"]).id
    html = client_as("reviewer").get(f"/requests/{rid}").get_data(as_text=True)
    assert re.search(r'<dd id="entered-by">clerk 2020-10-20', html)


def test_the_certificate_page_names_who_issued_and_who_revoked(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    _name(ca_service, **NAMES)
    rid = approved(ca_service, people)
    cert = ca_service.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 63)), actor=people["distributor"])
    ca_service.revocation.revoke(cert.serial, "superseded", actor=people["ops"])
    html = client_as("reviewer").get(f"/certificates/{cert.serial}").get_data(as_text=True)
    assert re.search(r"<dt>签发人</dt><dd>刘分发 ", html) and "，周运维</dd>" in html


def test_a_page_resolves_its_names_in_one_query(
    service: Service, people: dict[str, Actor], clock: FixedClock, client_as: Callable[[str], FlaskClient]
) -> None:
    """However many people and history rows a page shows: one query for their names (the signed-in user's
    comes with their session)."""
    rid = service.requests.create(application(), actor=people["clerk"]).id or 0
    client = client_as("head")

    def user_queries(path: str) -> tuple[int, int]:
        """(queries of the user table, of them the ones that read display names for the page)."""
        seen: list[str] = []

        def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
            seen.append(statement)

        event.listen(service.ctx.engine, "before_cursor_execute", count)
        try:
            assert client.get(path).status_code == 200
        finally:
            event.remove(service.ctx.engine, "before_cursor_execute", count)
        users = [s for s in seen if "pki_user" in s]
        return len(users), sum(1 for s in users if "pki_user.username IN" in s)

    few = user_queries(f"/requests/{rid}")
    for i in range(12):  # a long history, by many people
        version = service.requests.get(rid).version
        editor = people["clerk"] if i % 2 else people["clerk2"]
        service.requests.edit(
            rid,
            application(unit_fax=f"010-8765432{i % 10}", unit_phone=f"010-1234567{i % 10}"),
            actor=editor,
            expected_version=version,
        )
    many = user_queries(f"/requests/{rid}")
    assert few == many and few[1] == many[1] == 1


def test_the_csv_export_names_people_and_speaks_chinese(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, client_as: Callable[[str], FlaskClient]
) -> None:
    _name(ca_service, **NAMES)
    rid = _walked(ca_service, people, clock)
    other = ca_service.requests.create(
        application(
            unit_name="=HYPERLINK(1)", province="上海", credential_number=make_uscc("310101", "62000001")
        ),
        actor=people["clerk"],
    ).id
    client = client_as("reviewer")
    listing = client.get("/requests/?province=北京").get_data(as_text=True)
    assert 'href="/requests/export.csv?province=' in listing
    got = client.get("/requests/export.csv?province=北京")
    assert got.status_code == 200 and got.mimetype == "text/csv"
    body = got.get_data()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    header, *data = rows
    assert header[:6] == ["编号", "单位名称", "证件号码", "省份", "接入类型", "状态"]
    assert [r[0] for r in data] == [str(rid)]
    row = dict(zip(header, data[0], strict=True))
    assert row["状态"] == "已分发" and row["接入类型"] == "测试接入"
    assert (row["录入员"], row["受理人"], row["负责人"], row["审核员"], row["签发人"], row["分发员"]) == (
        "王录入", "李受理", "张负责", "陈审核", "刘分发", "刘分发",
    )  # fmt: skip
    assert row["受理时间"] == "2020-10-21 10:00"  # Beijing time
    everything = list(
        csv.reader(io.StringIO(client.get("/requests/export.csv").get_data().decode("utf-8-sig")))
    )
    hostile = next(r for r in everything[1:] if r[0] == str(other))
    assert hostile[1] == "'=HYPERLINK(1)"  # never a formula in Excel or WPS
    assert client.get("/requests/export.csv?entered_from=yesterday").status_code == 400
