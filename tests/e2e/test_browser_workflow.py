"""End to end in a real browser: Debian's chromium driven by Playwright against `pkictl serve` (waitress) on
127.0.0.1, over a prepared home. Screenshots go to test-artifacts/ (git-ignored) for people to look at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from tests.support.server import PASSWORD, center_env, prepare_home, serving

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ROLES = ("entry", "acceptor", "head", "reviewer", "distributor")
# Debian's chromium in a container: no sandbox, no GPU, nothing fetched in the background.
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (scripts/_system.sh installs it)"
)


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A home with the CA and one user per role, served by a real `pkictl serve` subprocess."""
    prepare_home(tmp_path / "home", db_url, ROLES, prefix="e2e")
    with serving(center_env(tmp_path / "home", db_url)) as base:
        yield base


def _fill_application(page, credential_number: str) -> None:  # type: ignore[no-untyped-def]
    text = {
        "单位名称": "北京市某能源监测中心",
        "法定代表人": "张三",
        "单位电话": "010-12345678",
        "单位传真": "010-12345679",
        "经办人姓名": "李四",
        "经办人联系方式": "13800138000",
        "地址": "北京市西城区某街1号",
        "县": "西城区",
        "Email": "lisi@example.gov.cn",
        "通讯地址": "北京市西城区某街1号",
        "邮编": "100032",
        "经办人身份证件号码": "110105199003071239",
        "申请访问的系统": "国家重点用能单位能耗在线监测系统",
    }
    for label, value in text.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_label("证件号码", exact=True).fill(credential_number)
    page.get_by_label("申请日期", exact=True).fill(date.today().isoformat())
    page.get_by_label("省份", exact=True).select_option("北京")
    page.get_by_label("经办人身份证件类型", exact=True).select_option(label="身份证")
    page.get_by_label("申请单位有效证件", exact=True).select_option(label="统一社会信用代码")
    page.get_by_label("网络接入方式", exact=True).select_option(label="政务外网")
    page.get_by_label("接入类型", exact=True).select_option(label="测试接入")
    page.get_by_label("有效期", exact=True).select_option(label="12个月")
    page.locator("input[name=agreement_accepted][value=true]").check()


def _shot(page, name: str, db: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"e2e-{db}-{name}.png"), full_page=True)


def test_entry_to_approval_in_chromium(server: str, db_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    db = "postgresql" if db_url.startswith("postgres") else "sqlite"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:

            def as_user(role: str):  # type: ignore[no-untyped-def]
                context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(f"{server}/requests/queue")
                page.get_by_label("用户名").fill(f"e2e-{role}")
                page.get_by_label("密码").fill(PASSWORD)
                page.get_by_role("button", name="登录").click()
                expect(page.get_by_role("heading", name="待我处理")).to_be_visible()
                return context, page

            # The entry clerk types a bad credit code, sees the error beside the field, corrects it.
            context, page = as_user("entry")
            page.get_by_role("link", name="录入申请").click()
            _fill_application(page, "11110000000012343X")
            page.get_by_role("button", name="提交申请").click()
            error = page.locator("#err-credential_number")
            expect(error).to_contain_text("证件号码")
            expect(page.get_by_label("单位名称", exact=True)).to_have_value(
                "北京市某能源监测中心"
            )  # kept as typed
            field_box = page.get_by_label("证件号码", exact=True).bounding_box()
            error_box = error.bounding_box()
            assert field_box and error_box and 0 <= error_box["y"] - field_box["y"] < 80  # right beside it
            _shot(page, "1-entry-bad-uscc", db)
            page.get_by_label("证件号码", exact=True).fill("11110000000012343B")
            page.get_by_role("button", name="提交申请").click()
            expect(page.locator("#state")).to_have_text("已录入")
            request_path = page.url.removeprefix(server)
            _shot(page, "2-entered", db)
            context.close()

            # The acceptor accepts with 受理意见 and the USB key model.
            context, page = as_user("acceptor")
            page.get_by_role("link", name="北京市某能源监测中心").first.click()
            page.get_by_label("同意", exact=True).check()
            page.get_by_label("USBKEY 品牌及型号").select_option("飞天诚信 ePass3003")
            page.get_by_role("button", name="提交受理意见").click()
            expect(page.locator("#state")).to_have_text("已受理")
            _shot(page, "3-accepted", db)
            context.close()

            # The head countersigns.
            context, page = as_user("head")
            page.get_by_role("link", name="北京市某能源监测中心").first.click()
            page.get_by_role("button", name="签字确认").click()
            expect(page.locator("#state")).to_have_text("负责人已签")
            context.close()

            # The reviewer approves.
            context, page = as_user("reviewer")
            page.get_by_role("link", name="北京市某能源监测中心").first.click()
            expect(page.get_by_role("button", name="签字确认")).to_have_count(0)  # not the head's step
            page.get_by_label("审核通过").check()
            page.get_by_role("button", name="提交审核意见").click()
            expect(page.locator("#state")).to_have_text("审核通过")
            _shot(page, "4-approved", db)
            context.close()

            # It waits in the distributor's queue, approved.
            context, page = as_user("distributor")
            row = page.locator("table.list tbody tr", has_text="北京市某能源监测中心")
            expect(row).to_have_count(1)
            expect(row.locator("td.state")).to_have_text("审核通过")
            expect(row.get_by_role("link").first).to_have_attribute("href", request_path)
            _shot(page, "5-distributor-queue", db)
            page.goto(f"{server}/")
            expect(page.locator("[data-state=approved]")).to_have_text("1")
            expect(page.locator("svg.chart")).to_be_visible()
            _shot(page, "7-dashboard", db)
            page.goto(f"{server}{request_path}/print")
            expect(page.get_by_role("heading")).to_contain_text("机构数字证书申请表")
            _shot(page, "6-print", db)
            pdf = page.pdf(path=str(ARTIFACTS / f"e2e-{db}-application.pdf"), prefer_css_page_size=True)
            assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1  # one A4 sheet to sign and stamp
            context.close()
        finally:
            browser.close()
