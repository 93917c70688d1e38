"""The UI as clerks see it, in Debian's chromium driven by Playwright against `pkictl serve`: people by name on
the printed 附件7, a revoked certificate in Chinese, a Chinese 405 page, the acceptor's checks (the stamped
scan through the Chinese file chooser, the credit code warning), and an admin adding a user who then logs
in. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pki.enums import Action
from pki.services import Actor, Service
from tests.e2e.test_browser_workflow import ARTIFACTS, BROWSER_ARGS, CHROMIUM
from tests.support.data import SCAN_PDF, application, make_uscc
from tests.support.pki import csr_for, key
from tests.support.server import PASSWORD, center_env, center_service, prepare_home, serving

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (scripts/_system.sh installs it)"
)
ROLES = ("entry", "acceptor", "head", "reviewer", "distributor", "ops")
NAMES = {
    "entry": "王录入",
    "acceptor": "李受理",
    "head": "张负责",
    "reviewer": "陈审核",
    "distributor": "刘分发",
    "ops": "周运维",
}
ADMIN = Actor("e2e-admin", frozenset({"admin"}))


@pytest.fixture
def center(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Service]]:
    """A served home with one named user per role; its service, for preparing records."""
    home = tmp_path / "home"
    prepare_home(home, db_url, ROLES, prefix="e2e")
    env = center_env(home, db_url)
    service = center_service(env)
    try:
        for role, name in NAMES.items():
            service.users.update(f"e2e-{role}", actor=ADMIN, display_name=name)
        with serving(env) as base:
            yield base, service
    finally:
        service.ctx.engine.dispose()


def _as(role: str) -> Actor:
    return Actor(f"e2e-{role}", frozenset({role}))


def _application(**overrides: Any) -> dict[str, Any]:
    return application(application_date=date.today().isoformat(), **overrides)


def _shot(page: Any, name: str, db_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    db = "postgresql" if db_url.startswith("postgres") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"clerks-{db}-{name}.png"), full_page=True)


def _browser(p: Any) -> Any:
    return p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)


def _signed_in(browser: Any, base: str, username: str, password: str = PASSWORD) -> Any:
    from playwright.sync_api import expect

    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{base}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name="概览")).to_be_visible()
    return page


def test_records_in_the_clerks_words(center: tuple[str, Service], db_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, svc = center
    # A request signed by everyone and handed over; its certificate then revoked for a lost key.
    rid = svc.requests.create(_application(), actor=_as("entry")).id or 0
    svc.requests.accept(rid, actor=_as("acceptor"), agree=True, usbkey_model="飞天诚信 ePass3003")
    svc.requests.countersign(rid, actor=_as("head"))
    svc.requests.review(rid, actor=_as("reviewer"), decision=Action.APPROVE)
    cert = svc.issuance.issue_from_csr(rid, csr_for(key("ec-p256", 101)), actor=_as("distributor"))
    svc.distribution.distribute(rid, recipient="李四", actor=_as("distributor"))
    svc.revocation.revoke(cert.serial, "keyCompromise", actor=_as("ops"), comment="USBKEY 遗失")
    # A formal request whose credit code is on record under another name, waiting for the acceptor.
    code = make_uscc("110101", "93000001")
    svc.requests.create(_application(credential_number=code, unit_name="北京甲公司"), actor=_as("entry"))
    other = svc.requests.create(
        _application(
            credential_number=code, unit_name="北京乙公司", access_type="formal", target_system="另一个系统"
        ),
        actor=_as("entry"),
    ).id
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _signed_in(browser, base, "e2e-reviewer")
            expect(page.locator("span.who")).to_have_text("陈审核（审核员）")

            # The printed 附件7: each signature box by name, with its date.
            page.goto(f"{base}/requests/{rid}/print")
            today = date.today().isoformat()
            for role, name in (
                ("受理人", "李受理"),
                ("负责人", "张负责"),
                ("录入员", "王录入"),
                ("审核员", "陈审核"),
                ("分发员", "刘分发"),
            ):
                row = page.locator(f'tr[data-role="{role}"]')
                expect(row.locator("td").first).to_have_text(name)
                expect(row.locator("td").last).to_have_text(today)
            expect(page.locator("article.sheet")).not_to_contain_text("e2e-")
            _shot(page, "print-names", db_url)
            pdf = page.pdf(prefer_css_page_size=True)
            assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1  # still one A4 sheet

            # The revoked certificate: the reason in Chinese, the subject without OIDs.
            page.goto(f"{base}/certificates/{cert.serial}")
            expect(page.locator("#cert-status")).to_have_text("已吊销")
            expect(page.locator("#revocation-reason")).to_have_text("密钥泄露")
            subject = page.locator("#subject")
            expect(subject).to_contain_text("组织机构标识")
            expect(subject).to_contain_text("通用名称")
            text = page.locator("main").inner_text()
            assert "keyCompromise" not in text and "2.5.4" not in text and "CN=" not in text
            expect(page.locator("main")).to_contain_text("周运维")
            _shot(page, "revoked-certificate", db_url)

            # A GET on an action URL: a Chinese 405 page, not Werkzeug's.
            response = page.goto(f"{base}/requests/{rid}/accept")
            assert response is not None and response.status == 405
            expect(page.get_by_role("heading", name="不能这样打开")).to_be_visible()
            expect(page.locator("body")).not_to_contain_text("Method Not Allowed")
            _shot(page, "405", db_url)
            page.context.close()

            # The acceptor: the stamped scan first (through the Chinese file chooser), then the warning.
            page = _signed_in(browser, base, "e2e-acceptor")
            expect(page.locator("#my-work [data-queue=entered] .n")).to_have_text("2")
            page.goto(f"{base}/requests/{other}")
            expect(page.locator("#missing-attachments")).to_contain_text("签字盖章的申请表扫描件")
            warning = page.locator("#uscc-warning")
            expect(warning).to_contain_text("已登记在其他单位名下")
            expect(warning.get_by_role("link")).to_have_count(1)
            page.locator("#at-kind").select_option("signed_form")
            expect(page.locator('.file-name[data-for="at-file"]')).to_have_text("未选择文件")
            page.locator("#at-file").set_input_files(
                files=[{"name": "盖章申请表.pdf", "mimeType": "application/pdf", "buffer": SCAN_PDF}]
            )
            expect(page.locator('.file-name[data-for="at-file"]')).to_have_text("盖章申请表.pdf")
            _shot(page, "acceptor-warning", db_url)
            page.get_by_role("button", name="上传", exact=True).click()
            expect(page.locator("#missing-attachments")).to_have_count(0)
            page.get_by_label("同意", exact=True).check()
            page.get_by_label("USBKEY 品牌及型号").select_option("飞天诚信 ePass3003")
            page.get_by_role("button", name="提交受理意见").click()
            expect(page.locator("#err-confirm_uscc")).to_contain_text("请核实后勾选确认")
            page.get_by_label("已核实信用代码与单位名称，确认受理").check()
            page.get_by_role("button", name="提交受理意见").click()
            expect(page.locator("#state")).to_have_text("已受理")
            expect(page.locator("section.history")).to_contain_text("已核实的信用代码重名记录")
            _shot(page, "acceptor-confirmed", db_url)
        finally:
            browser.close()


def test_an_admin_adds_a_user_who_then_logs_in(center: tuple[str, Service], db_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, _ = center
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _signed_in(browser, base, "e2e-admin")
            page.get_by_role("link", name="用户管理").first.click()
            expect(page.get_by_role("heading", name="用户管理")).to_be_visible()
            page.get_by_label("用户名（登录名").fill("xiao.ming")
            page.get_by_label("姓名", exact=True).fill("王小明")
            page.get_by_label("受理人", exact=True).check()
            page.get_by_label("初始密码（至少10位）").fill("xiaoming-password-1")
            page.get_by_label("再次输入密码").fill("xiaoming-password-2")
            page.get_by_role("button", name="添加用户").click()
            expect(page.locator("#err-password_again")).to_have_text("两次输入的密码不一致")
            page.get_by_label("初始密码（至少10位）").fill("xiaoming-password-1")
            page.get_by_label("再次输入密码").fill("xiaoming-password-1")
            page.get_by_role("button", name="添加用户").click()
            row = page.locator('tr[data-user="xiao.ming"]')
            expect(row.locator(".display-name")).to_have_text("王小明")
            expect(row).to_contain_text("受理人")
            _shot(page, "admin-users", db_url)
            page.context.close()

            page = _signed_in(browser, base, "xiao.ming", "xiaoming-password-1")
            expect(page.locator("span.who")).to_have_text("王小明（受理人）")
            expect(page.locator("#my-work")).to_contain_text("待受理")
            expect(page.get_by_role("link", name="用户管理")).to_have_count(0)
            _shot(page, "new-user-dashboard", db_url)
        finally:
            browser.close()
