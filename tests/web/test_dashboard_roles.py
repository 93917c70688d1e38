"""The dashboard per role: each person's own work first (their queues with counts and waiting times, their
points' USB key stock for whoever keeps it, the certificates about to expire for whoever renews them, users
for admins); the chart's count axis has round ticks and the plot keeps clear of the frame."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from pki.clock import FixedClock
from pki.enums import Action, RequestState, Role
from pki.services import Actor, Service
from pki.services.stats import MonthCount
from tests.support.data import application, make_uscc
from tests.support.pki import approved, csr_for, key
from tests.support.points import CHANGSHA, PROVINCIAL, WUHAN, add_points, staff_at
from web.ui.chart import LEFT, RIGHT, TOP, WIDTH, count_ticks, monthly_bars

_numbers = iter(range(81000000, 81999999))


def _entered(service: Service, people: dict[str, Actor], name: str) -> int:
    code = make_uscc("110101", str(next(_numbers)))
    return (
        service.requests.create(application(unit_name=name, credential_number=code), actor=people["clerk"]).id
        or 0
    )


def _work(html: str) -> str:
    start = html.index('id="my-work"')
    return html[start : html.index("</section>", start)]


def test_each_role_lands_on_its_own_queues_with_waiting_times(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, client_as: Callable[[str], FlaskClient]
) -> None:
    oldest = _entered(ca_service, people, "最早录入的单位")
    clock.advance(timedelta(days=2, hours=3))
    _entered(ca_service, people, "后录入的单位")
    accepted = _entered(ca_service, people, "已受理的单位")
    ca_service.requests.accept(
        accepted, actor=people["acceptor"], agree=True, usbkey_model="飞天诚信 ePass3003"
    )
    clock.advance(timedelta(hours=5))
    approved(ca_service, people)
    expected = {
        "acceptor": {"entered": 2},
        "head": {"accepted": 1},
        "reviewer": {"countersigned": 0},
        "distributor": {"approved": 1, "issued": 0},
        "clerk": {"returned": 0},
    }
    for user, queues in expected.items():
        html = client_as(user).get("/").get_data(as_text=True)
        work = _work(html)
        assert html.index('id="my-work"') < html.index("申请（按状态）"), user  # their work first
        assert sorted(re.findall(r'data-queue="(\w+)"', work)) == sorted(queues), user
        for state, n in queues.items():
            assert re.search(rf'data-queue="{state}">.*?<div class="n">{n}</div>', work, re.DOTALL), (
                user,
                state,
            )
    acceptor = _work(client_as("acceptor").get("/").get_data(as_text=True))
    assert "最久已等待 2天8小时" in acceptor  # entered 2 days 8 hours ago (Beijing time irrelevant)
    assert acceptor.index("最早录入的单位") < acceptor.index("后录入的单位")
    assert f'<a href="/requests/{oldest}">最早录入的单位</a>（已等待 2天8小时）' in acceptor
    assert "已等待 5小时" in _work(client_as("head").get("/").get_data(as_text=True))
    assert 'href="/requests/queue?state=entered"' in acceptor


def test_work_queues_count_and_list_the_longest_waiting(service: Service, people: dict[str, Actor]) -> None:
    for i in range(7):
        _entered(service, people, f"单位{i}")
    figures = service.stats.work_queues((RequestState.ENTERED, RequestState.ACCEPTED), longest=3)
    assert [(q.state, q.count, len(q.longest)) for q in figures] == [
        (RequestState.ENTERED, 7, 3),
        (RequestState.ACCEPTED, 0, 0),
    ]
    assert figures[0].oldest_since == service.ctx.now() and figures[0].oldest_since.tzinfo is not None
    assert figures[1].oldest_since is None and service.stats.work_queues(()) == []


def test_ops_sees_the_certificates_about_to_expire(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock, client_as: Callable[[str], FlaskClient]
) -> None:
    rid = approved(ca_service, people, unit_name="快到期的单位")
    cert = ca_service.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 81)), actor=people["distributor"])
    far = approved(ca_service, people, unit_name="还早的单位", validity_months=24)
    ca_service.issuance.issue_from_csr(far, csr_for(key("ec-p256", 82)), actor=people["distributor"])
    clock.set(cert.not_valid_after - timedelta(days=12, hours=2))
    work = _work(client_as("ops").get("/").get_data(as_text=True))
    table = work[work.index('id="expiring"') :]
    assert "30 天内到期的有效证书" in work
    assert (
        f'<a href="/certificates/{cert.serial}">' in table
        and "快到期的单位" in table
        and "还早的单位" not in table
    )
    assert "12天2小时" in table
    assert 'id="expiring"' not in client_as("reviewer").get("/").get_data(as_text=True)  # not theirs to renew


def test_admins_land_on_their_users(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    service.users.update("ops", actor=people["admin"], active=False)
    work = _work(client_as("admin").get("/").get_data(as_text=True))
    total = len(service.users.list())
    assert f"共 {total} 个用户，其中 {total - 1} 个启用" in work and 'href="/admin/users"' in work
    assert "data-queue" not in work


def _stock(client: FlaskClient) -> dict[tuple[str, str], dict[str, str]]:
    """The dashboard's stock table: {(point, model): {column: count}}, 可用库存 as "available"."""
    work = _work(client.get("/").get_data(as_text=True))
    table = work[work.index('id="stock"') : work.index("</table>", work.index('id="stock"'))]
    rows = re.findall(r'<tr data-point="([^"]+)" data-model="([^"]+)">(.*?)</tr>', table, re.DOTALL)
    return {(p, m): dict(re.findall(r'data-state="(\w+)">(\d+)<', cells)) for p, m, cells in rows}


def test_whoever_keeps_keys_sees_their_points_stock(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    add_points(service, people["admin"])
    staff = {p: staff_at(service, p) for p in (PROVINCIAL, WUHAN, CHANGSHA)}
    empty = _work(client_as("distributor").get("/").get_data(as_text=True))
    assert "USBKEY 库存" in empty and "暂无USBKEY库存记录" in empty
    wuhan, changsha = staff[WUHAN][Role.DISTRIBUTOR], staff[CHANGSHA][Role.DISTRIBUTOR]
    service.stock.intake(["W1", "W2", "W3"], model="ePass3003", actor=wuhan)
    service.stock.intake(["W4"], model="ePass2003", actor=wuhan)
    service.stock.intake(["C1"], model="SoftHSM2", actor=changsha)
    service.stock.transfer(["W3"], to=CHANGSHA, actor=wuhan)
    service.stock.return_defective(["W2"], reason="无法识别", actor=wuhan)
    e3003, e2003 = (WUHAN, "飞天诚信 ePass3003"), (WUHAN, "飞天诚信 ePass2003")
    at_wuhan = {
        e3003: {"available": "1", "blank": "1", "outgoing": "1", "defective": "1"},
        e2003: {"available": "1", "blank": "1", "outgoing": "0", "defective": "0"},
    }
    assert _stock(client_as(wuhan.username)) == at_wuhan
    table = _work(client_as(wuhan.username).get("/").get_data(as_text=True))
    assert "<th>可用库存</th><th>空白</th><th>调出中</th><th>故障退回</th>" in table
    assert _stock(client_as(changsha.username)) == {
        (CHANGSHA, "飞天诚信 ePass3003"): {"available": "0", "blank": "0", "incoming": "1"},
        (CHANGSHA, "SoftHSM2"): {"available": "1", "blank": "1", "incoming": "0"},
    }
    assert _stock(client_as(staff[PROVINCIAL][Role.OPS].username)) == at_wuhan  # the points under it
    everything = _stock(client_as("distributor"))
    assert set(everything) == {e3003, e2003, (CHANGSHA, "飞天诚信 ePass3003"), (CHANGSHA, "SoftHSM2")}
    for user in ("acceptor", "reviewer", "admin", staff[WUHAN][Role.ACCEPTOR].username):
        assert 'id="stock"' not in client_as(user).get("/").get_data(as_text=True), user  # not theirs


def test_returned_requests_wait_for_the_entry_clerk(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = _entered(service, people, "被退回的单位")
    service.requests.accept(rid, actor=people["acceptor"], agree=True, usbkey_model="飞天诚信 ePass3003")
    service.requests.countersign(rid, actor=people["head"])
    service.requests.review(rid, actor=people["reviewer"], decision=Action.RETURN, reason="传真有误")
    work = _work(client_as("clerk2").get("/").get_data(as_text=True))
    assert re.search(
        r'data-queue="returned">.*?退回待修改.*?<div class="n">1</div>.*?被退回的单位', work, re.DOTALL
    )


@pytest.mark.parametrize(
    ("peak", "ticks"),
    [
        (0, [0, 1, 2, 3, 4]),
        (1, [0, 1, 2, 3, 4]),
        (5, [0, 1, 2, 3, 4, 5]),
        (7, [0, 2, 4, 6, 8]),
        (13, [0, 5, 10, 15]),
        (26, [0, 10, 20, 30]),
        (99, [0, 20, 40, 60, 80, 100]),
        (1234, [0, 500, 1000, 1500]),
    ],
)
def test_the_count_axis_has_round_ticks(peak: int, ticks: list[int]) -> None:
    assert count_ticks(peak) == ticks


def test_the_chart_labels_its_ticks_and_keeps_clear_of_the_frame() -> None:
    months = [MonthCount(f"2020-{m:02d}", issued=m % 3, expiring=1 if m == 12 else 0) for m in range(1, 13)]
    months[-1] = MonthCount("2020-12", issued=7, expiring=7)  # the busiest month is the last
    svg = monthly_bars(months)
    assert re.findall(r'class="tick">(\d+)<', svg) == ["0", "2", "4", "6", "8"]
    assert "证书数（张）" in svg and svg.count('class="month"') == 6
    bars = [
        (float(x), float(w), float(y), float(h))
        for x, y, w, h in re.findall(
            r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="#\w+"><title>', svg
        )
    ]
    assert len(bars) == 24
    right_edge = max(x + w for x, w, _, _ in bars)
    assert right_edge <= WIDTH - RIGHT - 5  # the last bar stands clear of the frame
    assert min(x for x, _, _, _ in bars) >= LEFT + 5
    assert min(y for _, _, y, h in bars if h) >= TOP  # the tallest bar stays under the top tick
