"""The desk's deals in Debian's chromium driven by Playwright against `pkictl serve`, on SQLite and
PostgreSQL: a hold and a revoke from the certificate page (then the CRL and OCSP at the public endpoints say
so); an unlock deal entered and accepted in the browser and carried out by the distributor's desk with
`pkictl token unlock` on a SoftHSM2 key; a damaged key replaced: entered, accepted and approved in the
browser, issued onto a new SoftHSM2 token through the service, handed over in the browser. Screenshots go to
test-artifacts/."""

from __future__ import annotations

import itertools
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from pki.enums import Action
from pki.services import Actor, Service
from tests.e2e.test_browser_clerks import _application, _browser, _signed_in
from tests.e2e.test_browser_workflow import ARTIFACTS, CHROMIUM
from tests.judges.tools import ocsp_request
from tests.support import softhsm
from tests.support.data import make_uscc
from tests.support.pki import csr_for, key
from tests.support.server import DeskProcess, center_env, center_service, prepare_home, serving
from tokens.session import Module
from tokens.usbkey import open_usb_key

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is missing (scripts/_system.sh installs it)"
)
ROLES = ("entry", "acceptor", "head", "reviewer", "distributor", "ops")
SOFTHSM = "SoftHSM2"
NEW_PIN = "246810"
_numbers = itertools.count(96000001)
_keys = itertools.count(1700)


def _as(role: str) -> Actor:
    return Actor(f"e2e-{role}", frozenset({role}))


@pytest.fixture
def center(db_url: str, tmp_path: Path) -> Iterator[tuple[str, Service, dict[str, str]]]:
    """A served home with one user per role (``e2e-<role>``); its service, for preparing records, and its
    environment."""
    home = tmp_path / "home"
    prepare_home(home, db_url, ROLES, prefix="e2e")
    env = center_env(home, db_url)
    service = center_service(env)
    try:
        with serving(env) as base:
            yield base, service, env
    finally:
        service.ctx.engine.dispose()


@pytest.fixture(scope="session")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This process's SoftHSM2 configuration, the one tests/tokens uses too (SoftHSM reads it once)."""
    return softhsm.configure_once(lambda: tmp_path_factory.mktemp("softhsm"))


def _shot(page: Any, name: str, db_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    db = "postgresql" if db_url.startswith("postgres") else "sqlite"
    page.screenshot(path=str(ARTIFACTS / f"deals-{db}-{name}.png"), full_page=True)


def _approved(svc: Service, unit_name: str, usbkey: str = "飞天诚信 ePass3003") -> int:
    """A new application for its own unit, walked to 'approved' through the service."""
    app = _application(unit_name=unit_name, credential_number=make_uscc("110101", str(next(_numbers))))
    rid = svc.requests.create(app, actor=_as("entry")).id or 0
    svc.requests.accept(rid, actor=_as("acceptor"), agree=True, usbkey_model=usbkey)
    svc.requests.countersign(rid, actor=_as("head"))
    svc.requests.review(rid, actor=_as("reviewer"), decision=Action.APPROVE)
    return rid


def _issued(svc: Service, unit_name: str) -> str:
    """A certificate issued from a CSR and handed over; its serial."""
    rid = _approved(svc, unit_name)
    cert = svc.issuance.issue_from_csr(rid, csr_for(key("ec-p256", next(_keys))), actor=_as("distributor"))
    svc.distribution.distribute(rid, recipient="李四", actor=_as("distributor"))
    return cert.serial


def _fetch(url: str, data: bytes | None = None) -> bytes:
    headers = {"Content-Type": "application/ocsp-request"} if data is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as r:  # noqa: S310
        return bytes(r.read())


def _ocsp(base: str, serial: str, svc: Service) -> ocsp.OCSPResponse:
    """The responder's answer for ``serial``, asked over HTTP as a relying party would."""
    cert = x509.load_der_x509_certificate(svc.certificates.get(serial).der)
    issuer = x509.load_der_x509_certificate(_fetch(f"{base}/ca/test.cer"))
    answer = ocsp.load_der_ocsp_response(_fetch(f"{base}/ocsp", ocsp_request(cert, issuer)))
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return answer


def _crl_reason(base: str, serial: str) -> x509.ReasonFlags | None:
    """The reason the published test CRL gives for ``serial`` (None: not listed)."""
    crl = x509.load_der_x509_crl(_fetch(f"{base}/crl/test.crl"))
    entry = crl.get_revoked_certificate_by_serial_number(int(serial, 16))
    if entry is None:
        return None
    return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason


def _accept(page: Any, base: str, rid: int, usbkey: str | None = None) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/requests/{rid}")
    page.get_by_label("同意", exact=True).check()
    if usbkey is not None:
        page.get_by_label("USBKEY 品牌及型号").select_option(usbkey)
    else:
        expect(page.get_by_label("USBKEY 品牌及型号")).to_have_count(0)  # the key the unit holds
    page.get_by_role("button", name="提交受理意见").click()
    expect(page.locator("p.flash.ok")).to_have_text("受理意见已记录")


def _approve(page: Any, base: str, rid: int) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/requests/{rid}")
    page.get_by_label("审核通过").check()
    page.get_by_role("button", name="提交审核意见").click()
    expect(page.locator("#state")).to_have_text("审核通过")


def _enter_deal(page: Any, base: str, serial: str, deal: str, **fields: str) -> int:
    """On the certificate page, the deal's form filled (selects by their Chinese label) and sent: the new
    request's id."""
    from playwright.sync_api import expect

    page.goto(f"{base}/certificates/{serial}")
    form = page.locator(f"#form-deal-{deal}")
    for label, value in fields.items():
        widget = form.get_by_label(label)
        if widget.evaluate("e => e.tagName") == "SELECT":
            widget.select_option(label=value)
        else:
            widget.fill(value)
    form.get_by_role("button").click()
    expect(page.locator("#state")).to_have_text("已录入")
    return int(page.url.rsplit("/", 1)[1])


def test_a_hold_and_a_revoke_from_the_certificate_page(
    center: tuple[str, Service, dict[str, str]], db_url: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, svc, _ = center
    held = _issued(svc, "北京市冻结测试中心")
    revoked = _issued(svc, "北京市注销测试中心")
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            # ops hold a certificate at once, from its page: ticked to confirm, with a comment.
            ops = _signed_in(browser, base, "e2e-ops")
            ops.goto(f"{base}/certificates/{held}")
            form = ops.locator("#form-hold")
            form.get_by_label("说明").fill("单位报告USBKEY疑似被借用，先行冻结")
            form.get_by_role("button", name="冻结", exact=True).click()
            expect(ops.locator("#err-hold-confirm")).to_have_text("请勾选确认后再提交")
            _shot(ops, "1-hold-unconfirmed", db_url)
            form = ops.locator("#form-hold")
            form.get_by_label("说明").fill("单位报告USBKEY疑似被借用，先行冻结")
            form.get_by_label("已核实，确认冻结此证书").check()
            form.get_by_role("button", name="冻结", exact=True).click()
            expect(ops.locator("p.flash.ok")).to_have_text("证书已冻结")
            expect(ops.locator("#cert-status")).to_have_text("已冻结")
            expect(ops.locator("#form-release")).to_be_visible()
            _shot(ops, "2-held", db_url)

            # The very next OCSP answer says certificateHold; the next CRL lists it so.
            status = _ocsp(base, held, svc)
            assert status.certificate_status is ocsp.OCSPCertStatus.REVOKED
            assert status.revocation_reason is x509.ReasonFlags.certificate_hold

            # A clerk enters a revoke deal with its reason in Chinese; the acceptor accepts, the reviewer
            # approves; ops carry it out from the certificate page.
            clerk = _signed_in(browser, base, "e2e-entry")
            expect(clerk.locator("#form-revoke")).to_have_count(0)
            rid = _enter_deal(
                clerk, base, revoked, "revoke", 吊销原因="密钥泄露", 情况说明="经办人报告私钥外泄"
            )
            expect(clerk.locator("#deal-type")).to_have_text("注销")
            expect(clerk.locator("#deal-reason")).to_have_text("密钥泄露")
            expect(clerk.locator("#deal-certificate-status")).to_have_text("有效")
            _shot(clerk, "3-revoke-deal-entered", db_url)
            clerk.goto(f"{base}/certificates/{revoked}")
            expect(clerk.locator("#form-revoke")).to_have_count(0)  # no server step for a clerk
            expect(clerk.locator("#open-deal")).to_contain_text(f"注销（申请 {rid}，已录入）")
            _accept(_signed_in(browser, base, "e2e-acceptor"), base, rid)
            _approve(_signed_in(browser, base, "e2e-reviewer"), base, rid)

            ops.goto(f"{base}/requests/queue")
            expect(ops.locator("#queue-states")).to_contain_text("待办理（审核通过）")
            row = ops.locator("table.list tbody tr", has_text="北京市注销测试中心")
            expect(row.locator("td.deal")).to_have_text("注销")
            _shot(ops, "4-ops-queue", db_url)
            ops.goto(f"{base}/certificates/{revoked}")
            form = ops.locator("#form-revoke")
            expect(form).to_contain_text(f"办理已批准的注销业务（申请 {rid}），吊销原因：密钥泄露")
            form.get_by_label("说明").fill("已核实")
            form.get_by_label("已核实，确认吊销此证书").check()
            _shot(ops, "5-revoke-confirmed", db_url)
            form.get_by_role("button", name="吊销", exact=True).click()
            expect(ops.locator("#cert-status")).to_have_text("已吊销")
            expect(ops.locator("#revocation-reason")).to_have_text("密钥泄露")
            _shot(ops, "6-revoked", db_url)
            ops.goto(f"{base}/requests/{rid}")
            expect(ops.locator("#state")).to_have_text("已办结")
            expect(ops.locator("#deal-certificate-status")).to_have_text("已吊销")
        finally:
            browser.close()

    status = _ocsp(base, revoked, svc)
    assert status.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert status.revocation_reason is x509.ReasonFlags.key_compromise
    svc.crl.publish(actor=_as("ops"))
    assert _crl_reason(base, held) is x509.ReasonFlags.certificate_hold
    assert _crl_reason(base, revoked) is x509.ReasonFlags.key_compromise


def _tokens(directory: Path) -> Path:
    """One SoftHSM2 key, USBKEY-0, in a token directory of its own for the desk process: its conf."""
    from tests.cli.test_token_cli import make_tokens

    return make_tokens(directory, 1).conf


def _pkcs11_login(conf: Path, pin: str) -> bool:
    done = subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            softhsm.MODULE,
            "--token-label",
            "USBKEY-0",
            "--login",
            "--pin",
            pin,
            "-O",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"SOFTHSM2_CONF": str(conf), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    return done.returncode == 0 and "Private Key Object" in done.stdout


def test_an_unlock_deal_from_entry_to_completion(
    center: tuple[str, Service, dict[str, str]], db_url: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, svc, _ = center
    conf = _tokens(tmp_path / "hsm")
    # The distributor's desk: the key plugged in there, nothing of the center's. It registers the key's SO PIN
    # and issues the unit's certificate onto it, then hands it over.
    desk = DeskProcess(base, tmp_path / "desk")
    desk.env |= {
        "SOFTHSM2_CONF": str(conf),
        "PKI_TOKEN_PIN": softhsm.USER_PIN,
        "PKI_TOKEN_SO_PIN": softhsm.SO_PIN,
    }
    desk("login", "--server", base, "--as", "e2e-distributor", check=True)
    on_key = ("--token-label", "USBKEY-0", "--as", "e2e-distributor")
    desk("token", "register-so-pin", *on_key, check=True)
    rid = _approved(svc, "北京市解锁测试中心", usbkey=SOFTHSM)
    serial = desk("issue", str(rid), *on_key, "--json", check=True).json()["serial"]
    desk("distribute", str(rid), "--recipient", "李四", "--as", "e2e-distributor", check=True)
    assert _pkcs11_login(conf, softhsm.USER_PIN)
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            clerk = _signed_in(browser, base, "e2e-entry")
            clerk.goto(f"{base}/certificates/{serial}")
            expect(clerk.locator("#token-state")).to_have_text("已签发")
            _shot(clerk, "unlock-1-certificate", db_url)
            deal = _enter_deal(clerk, base, serial, "unlock", 情况说明="用户PIN输错多次已锁定")
            expect(clerk.locator("#deal-type")).to_have_text("解锁")
            expect(clerk.locator("#deal-key")).to_contain_text("已签发")
            _shot(clerk, "unlock-2-entered", db_url)
            acceptor = _signed_in(browser, base, "e2e-acceptor")
            _accept(acceptor, base, deal)
            expect(acceptor.locator("#state")).to_have_text("审核通过")  # [deals.unlock] steps = []

            distributor = _signed_in(browser, base, "e2e-distributor")
            expect(distributor.locator("#my-work [data-queue=approved]")).to_contain_text("待签发/待办理")
            distributor.goto(f"{base}/requests/queue")
            expect(distributor.locator("#queue-states")).to_contain_text("待签发/待办理（审核通过）")
            row = distributor.locator("table.list tbody tr", has_text="北京市解锁测试中心")
            expect(row.locator("td.deal")).to_have_text("解锁")
            expect(row.locator("td.state")).to_have_text("审核通过")
            _shot(distributor, "unlock-3-distributor-queue", db_url)
            row.get_by_role("link").first.click()
            expect(distributor.locator("#complete-hint")).to_contain_text("pkictl token unlock")
            _shot(distributor, "unlock-4-to-carry-out", db_url)

            # At the desk, with the key plugged in: the new user PIN set as SO, the deal completed.
            desk.env["PKI_NEW_TOKEN_PIN"] = NEW_PIN
            done = desk("token", "unlock", *on_key, "--json", check=True).json()
            assert done["request_id"] == deal and done["state"] == "completed"

            distributor.reload()
            expect(distributor.locator("#state")).to_have_text("已办结")
            expect(distributor.locator("#complete-hint")).to_have_count(0)
            expect(distributor.locator(".history")).to_contain_text("办理")
            _shot(distributor, "unlock-5-completed", db_url)
        finally:
            browser.close()
    assert _pkcs11_login(conf, NEW_PIN) and not _pkcs11_login(conf, softhsm.USER_PIN)  # key and cert stay


def test_a_damaged_key_replaced_from_entry_to_hand_over(
    center: tuple[str, Service, dict[str, str]], db_url: str, softhsm_conf: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, svc, _ = center
    first, second = softhsm.new_token(softhsm_conf), softhsm.new_token(softhsm_conf)
    module = Module(softhsm.MODULE)

    def issue_onto(token: softhsm.Token, rid: int) -> str:
        with open_usb_key(module, module.find(label=token.label), token.pin) as device:
            return svc.token_issuance.issue(rid, device, actor=_as("distributor"), key_type="ec-p256").serial

    rid = _approved(svc, "北京市补办测试中心", usbkey=SOFTHSM)
    old = issue_onto(first, rid)
    svc.distribution.distribute(rid, recipient="李四", actor=_as("distributor"))
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            clerk = _signed_in(browser, base, "e2e-entry")
            deal = _enter_deal(
                clerk, base, old, "replace-damaged", 原USBKEY="已销毁", 情况说明="USBKEY摔坏，无法识别"
            )
            expect(clerk.locator("#deal-type")).to_have_text("补办（损坏）")
            expect(clerk.locator("#deal-reason")).to_have_text("已销毁")
            expect(clerk.locator("#deal-key")).to_contain_text(first.serial)
            _shot(clerk, "replace-1-entered", db_url)
            _accept(_signed_in(browser, base, "e2e-acceptor"), base, deal, usbkey=SOFTHSM)
            reviewer = _signed_in(browser, base, "e2e-reviewer")
            _approve(reviewer, base, deal)
            _shot(reviewer, "replace-2-approved", db_url)

            # Issued onto a new key at the distributor's desk (the service, with SoftHSM2 as the key).
            new = issue_onto(second, deal)

            distributor = _signed_in(browser, base, "e2e-distributor")
            distributor.goto(f"{base}/requests/{deal}")
            expect(distributor.locator("#state")).to_have_text("已签发")
            expect(distributor.locator("#issued-certificates")).to_have_text(new)
            expect(distributor.locator("#deal-certificate-status")).to_have_text("已吊销")  # at issuance
            distributor.get_by_label("领取人姓名").fill("李四")
            _shot(distributor, "replace-3-to-hand-over", db_url)
            distributor.get_by_role("button", name="确认分发").click()
            expect(distributor.locator("#state")).to_have_text("已分发")
            expect(distributor.locator("#deal-key-state")).to_have_text("已销毁")
            _shot(distributor, "replace-4-distributed", db_url)

            distributor.goto(f"{base}/certificates/{old}")
            expect(distributor.locator("#cert-status")).to_have_text("已吊销")
            expect(distributor.locator("#revocation-reason")).to_have_text("已被新证书替代")
            expect(distributor.locator("#token-state")).to_have_text("已销毁")
            _shot(distributor, "replace-5-old-certificate", db_url)
            distributor.goto(f"{base}/certificates/{new}")
            expect(distributor.locator("#cert-status")).to_have_text("有效")
            expect(distributor.locator("#token")).to_contain_text(second.serial)
        finally:
            browser.close()
    answer = _ocsp(base, old, svc)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.superseded
