"""Acceptance points in Debian's chromium driven by Playwright against `pkictl serve`: a clerk of one point
never sees another point's request in the lists, the search or by its URL (a Chinese 404 page); an admin adds
a point and a user at it in the admin pages, a center clerk enters a request for that point, and the new user
logs in to that point's work only; a distributor's dashboard shows the point's USB key stock. Screenshots go
to test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pki.services import Actor, Service
from tests.e2e.test_browser_clerks import _application, _browser, _signed_in
from tests.e2e.test_browser_workflow import ARTIFACTS, CHROMIUM, _fill_application
from tests.support.data import make_uscc
from tests.support.server import PASSWORD, center_env, center_service, prepare_home, serving

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (scripts/_system.sh installs it)"
)
ADMIN = Actor("e2e-admin", frozenset({"admin"}))
ENTRY = Actor("e2e-entry", frozenset({"entry"}))
WUHAN, CHANGSHA = "武汉受理点", "长沙受理点"


@pytest.fixture
def center(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Service]]:
    """A served home with a center entry clerk and distributor, the points 武汉 and 长沙, and at each an
    entry clerk who accepts too and a distributor (``wh-…``, ``cs-…``); its service, for preparing records."""
    home = tmp_path / "home"
    prepare_home(home, db_url, ("entry", "distributor"), prefix="e2e")
    env = center_env(home, db_url)
    service = center_service(env)
    try:
        for name, province, prefix in ((WUHAN, "湖北", "wh"), (CHANGSHA, "湖南", "cs")):
            service.points.add(name, province=province, actor=ADMIN)
            for who, roles in (("clerk", ["entry", "acceptor"]), ("distributor", ["distributor"])):
                service.users.add(f"{prefix}-{who}", PASSWORD, roles, actor=ADMIN, point=name)
        with serving(env) as base:
            yield base, service
    finally:
        service.ctx.engine.dispose()


def _shot(page: Any, name: str, db_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    db = "postgresql" if db_url.startswith("postgres") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"points-{db}-{name}.png"), full_page=True)


def _enter(svc: Service, point: str, unit_name: str, number: str) -> int:
    app = _application(unit_name=unit_name, credential_number=make_uscc("110101", number))
    return svc.requests.create(app, actor=ENTRY, point=point).id or 0


def test_a_clerk_never_sees_another_points_request(center: tuple[str, Service], db_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, svc = center
    mine = _enter(svc, WUHAN, "武汉某能源监测中心", "95000001")
    theirs = _enter(svc, CHANGSHA, "长沙某能源监测中心", "95000002")
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _signed_in(browser, base, "wh-clerk")
            page.get_by_role("link", name="全部申请").click()
            rows = page.locator("table.list tbody")
            expect(rows).to_contain_text("武汉某能源监测中心")
            expect(rows).not_to_contain_text("长沙某能源监测中心")
            expect(page.locator(f'a[href="/requests/{theirs}"]')).to_have_count(0)
            _shot(page, "list-own-point", db_url)

            page.get_by_label("单位名称或信用代码").fill("长沙某能源监测中心")
            page.get_by_role("button", name="查询").click()
            expect(page.locator("table.list tbody")).not_to_contain_text("长沙某能源监测中心")
            expect(page.locator(f'a[href="/requests/{theirs}"]')).to_have_count(0)
            code = make_uscc("110101", "95000002")
            page.goto(f"{base}/requests/?q={code}")
            expect(page.locator(f'a[href="/requests/{theirs}"]')).to_have_count(0)
            _shot(page, "search-other-point", db_url)

            page.goto(f"{base}/requests/queue")
            expect(page.locator("main")).not_to_contain_text("长沙某能源监测中心")
            expect(page.locator(f'a[href="/requests/{mine}"]').first).to_be_visible()

            for path in (f"/requests/{theirs}", f"/requests/{theirs}/print", f"/requests/{theirs}/edit"):
                response = page.goto(f"{base}{path}")
                assert response is not None and response.status == 404, path
                expect(page.get_by_role("heading", name="页面不存在")).to_be_visible()
                expect(page.locator("body")).not_to_contain_text("长沙某能源监测中心")
                expect(page.locator("body")).not_to_contain_text("Not Found")
            _shot(page, "404-other-point", db_url)
            response = page.goto(f"{base}/requests/{mine}")
            assert response is not None and response.status == 200
            expect(page.locator("main")).to_contain_text("武汉某能源监测中心")
        finally:
            browser.close()
    denied = [
        r for r in svc.audit.recent(limit=50) if r.action == "security.denied" and r.actor == "wh-clerk"
    ]
    assert len(denied) == 3 and all("out_of_scope" in r.details for r in denied)


def test_an_admin_adds_a_point_and_its_user_who_sees_only_its_work(
    center: tuple[str, Service], db_url: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, svc = center
    elsewhere = _enter(svc, WUHAN, "武汉某能源监测中心", "95000003")
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            # The admin adds 宜昌受理点 under no other point; a blank name is refused beside its field first.
            page = _signed_in(browser, base, "e2e-admin")
            page.get_by_role("link", name="受理点管理").first.click()
            expect(page.get_by_role("heading", name="受理点管理")).to_be_visible()
            page.get_by_label("省份").select_option("湖北")
            page.get_by_role("button", name="添加受理点").click()
            expect(page.locator("#err-name")).to_contain_text("名称")
            expect(page.get_by_label("省份")).to_have_value("湖北")  # kept as chosen
            page.get_by_label("名称").fill("宜昌受理点")
            page.get_by_role("button", name="添加受理点").click()
            row = page.locator('tr[data-point="宜昌受理点"]')
            expect(row.locator(".province")).to_have_text("湖北")
            expect(row.locator(".users")).to_have_text("0")
            _shot(page, "admin-points", db_url)

            # Then a user at that point.
            page.get_by_role("link", name="用户管理").first.click()
            page.get_by_label("用户名（登录名").fill("yc.clerk")
            page.get_by_label("姓名", exact=True).fill("宜昌录入")
            page.get_by_label("录入员", exact=True).check()
            page.get_by_label("受理人", exact=True).check()
            page.get_by_label("受理点", exact=True).select_option("宜昌受理点")
            page.get_by_label("初始密码（至少10位）").fill("yichang-password-1")
            page.get_by_label("再次输入密码").fill("yichang-password-1")
            page.get_by_role("button", name="添加用户").click()
            expect(page.locator('tr[data-user="yc.clerk"] .point')).to_have_text("宜昌受理点")
            expect(page.locator('tr[data-user="wh-clerk"] .point')).to_have_text(WUHAN)
            expect(page.locator('tr[data-user="e2e-entry"] .point')).to_have_text("中心")
            _shot(page, "admin-user-at-point", db_url)
            page.context.close()

            # A center clerk enters a request for 宜昌 (the form offers every point).
            page = _signed_in(browser, base, "e2e-entry")
            page.get_by_role("link", name="录入申请").click()
            page.get_by_label("录入到受理点").select_option("宜昌受理点")
            _fill_application(page, make_uscc("110101", "95000004"))
            page.get_by_label("单位名称", exact=True).fill("宜昌某能源监测中心")
            _shot(page, "center-entry-point", db_url)
            page.get_by_role("button", name="提交申请").click()
            expect(page.locator("#state")).to_have_text("已录入")
            page.context.close()

            # The new user sees 宜昌's work only, and enters for 宜昌 with no choice shown.
            page = _signed_in(browser, base, "yc.clerk", "yichang-password-1")
            expect(page.locator("span.who")).to_have_text("宜昌录入（受理人、录入员）")
            expect(page.locator("#my-work [data-queue=entered] .n")).to_have_text("1")  # 宜昌's only
            page.get_by_role("link", name="全部申请").click()
            rows = page.locator("table.list tbody")
            expect(rows).to_contain_text("宜昌某能源监测中心")
            expect(rows).not_to_contain_text("武汉某能源监测中心")
            _shot(page, "new-user-list", db_url)
            response = page.goto(f"{base}/requests/{elsewhere}")
            assert response is not None and response.status == 404
            expect(page.get_by_role("heading", name="页面不存在")).to_be_visible()
            page.goto(f"{base}/requests/new")
            expect(page.get_by_label("录入到受理点")).to_have_count(0)
            _fill_application(page, make_uscc("110101", "95000005"))
            page.get_by_label("单位名称", exact=True).fill("宜昌第二家单位")
            page.get_by_role("button", name="提交申请").click()
            expect(page.locator("#state")).to_have_text("已录入")
        finally:
            browser.close()
    yichang = next(p for p in svc.points.list() if p.name == "宜昌受理点")
    placed = {r.unit_name: r.point_id for r in svc.requests.find()}
    assert placed["宜昌某能源监测中心"] == placed["宜昌第二家单位"] == yichang.id
    assert yichang.users == 1


def test_a_distributors_dashboard_shows_the_points_stock(center: tuple[str, Service], db_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, svc = center
    wuhan = Actor("wh-distributor", frozenset({"distributor"}))
    svc.stock.intake(["WH-0001", "WH-0002", "WH-0003"], model="ePass3003", actor=wuhan)
    svc.stock.intake(["WH-0101"], model="ePass2003", actor=wuhan)
    svc.stock.transfer(["WH-0003"], to=CHANGSHA, actor=wuhan)
    svc.stock.intake(
        ["CS-0001"], model="ePass3003", actor=Actor("cs-distributor", frozenset({"distributor"}))
    )
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _signed_in(browser, base, "wh-distributor")
            stock = page.locator("#stock")
            expect(stock).to_be_visible()
            first = stock.locator(f'tr[data-point="{WUHAN}"][data-model="飞天诚信 ePass3003"]')
            expect(first.locator('[data-state="available"]')).to_have_text("2")
            expect(first.locator('[data-state="outgoing"]')).to_have_text("1")
            second = stock.locator(f'tr[data-point="{WUHAN}"][data-model="飞天诚信 ePass2003"]')
            expect(second.locator('[data-state="available"]')).to_have_text("1")
            expect(stock).not_to_contain_text(CHANGSHA)
            expect(stock.locator("thead")).to_contain_text("调出中")
            _shot(page, "distributor-stock", db_url)
            page.context.close()

            page = _signed_in(browser, base, "cs-distributor")
            row = page.locator(f'#stock tr[data-point="{CHANGSHA}"][data-model="飞天诚信 ePass3003"]')
            expect(row.locator('[data-state="available"]')).to_have_text("1")
            expect(row.locator('[data-state="incoming"]')).to_have_text("1")
            expect(page.locator("#stock")).not_to_contain_text(WUHAN)
            _shot(page, "distributor-incoming", db_url)
        finally:
            browser.close()
