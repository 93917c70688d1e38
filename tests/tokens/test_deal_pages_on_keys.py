"""The deals about the USB key itself (unlock, replacement) through the clerks' UI, on SoftHSM2 tokens, on
SQLite and PostgreSQL: offered on the page of a certificate written onto a recorded key, shown with the key on
the deal's request page, and a damaged key replaced: entered and handed over in the UI, issued onto a new
token through the service; the old certificate revoked and the old key marked as the counter said."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from pki.enums import Action, CertificateStatus, Deal, RequestState, RevocationReason
from pki.services import Actor, Service
from tests.support import softhsm
from tests.support.pki import approved
from tests.web.conftest import create, post, sign_in
from tokens.session import Module
from tokens.usbkey import UsbKey, open_usb_key

SOFTHSM = "SoftHSM2"


def _client(service: Service, username: str) -> FlaskClient:
    client = create(service).test_client()
    sign_in(client, service, username)
    return client


def _page(client: FlaskClient, path: str) -> str:
    got = client.get(path)
    assert got.status_code == 200, (path, got.status_code)
    return got.get_data(as_text=True)


def _new_deal(client: FlaskClient, serial: str, form: dict[str, str]) -> int:
    got = post(client, f"/certificates/{serial}/deals", form)
    assert got.status_code == 302, got.get_data(as_text=True)
    return int(got.headers["Location"].rsplit("/", 1)[1])


def test_unlock_and_a_damaged_key_replaced_through_the_ui(
    ca_service: Service,
    people: dict[str, Actor],
    device: UsbKey,
    token: softhsm.Token,
) -> None:
    svc = ca_service
    rid = approved(svc, people, usbkey_model=SOFTHSM)
    old = svc.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256").serial
    svc.distribution.distribute(rid, recipient="李四", actor=people["distributor"])

    clerk = _client(svc, "clerk")
    page = _page(clerk, f"/certificates/{old}")
    assert {"deal-replace-lost", "deal-replace-damaged", "deal-unlock"} <= set(
        re.findall(r'id="form-(deal-[a-z-]+)"', page)
    )
    assert '<span id="token-state">已签发</span>' in page
    damaged = page[page.index('id="form-deal-replace-damaged"') :]
    damaged = damaged[: damaged.index("</form>")]
    assert re.findall(r'<option value="(\w+)">([^<]+)</option>', damaged) == [
        ("returned", "交回"),
        ("destroyed", "已销毁"),
    ]

    # An unlock: the key it concerns on the request page; accepted, it waits for the distributor (待办理), who
    # carries it out at the desk with `pkictl token unlock`.
    unlock = _new_deal(clerk, old, {"deal": "unlock", "comment": "用户PIN输错多次已锁定"})
    page = _page(clerk, f"/requests/{unlock}")
    assert '<dd id="deal-type">解锁</dd>' in page
    assert f'序列号 {token.serial}（<span id="deal-key-state">已签发</span>）' in page
    svc.requests.accept(unlock, actor=people["acceptor"], agree=True, usbkey_model=SOFTHSM)
    assert svc.requests.get(unlock).state is RequestState.APPROVED  # [deals.unlock] steps = []
    distributor = _client(svc, "distributor")
    queue = _page(distributor, "/requests/queue")
    assert "待签发/待办理（审核通过）" in queue
    assert re.search(rf'<a href="/requests/{unlock}">{unlock}</a></td>\s*<td class="deal">解锁</td>', queue)
    page = _page(distributor, f"/requests/{unlock}")
    assert 'id="complete-hint">待办理：' in page and "<code>pkictl token unlock</code>" in page
    assert "form-distribute" not in page and "issue-hint" not in page
    svc.requests.cancel(unlock, actor=people["clerk"], reason="用户自行找回PIN")

    # A damaged key: destroyed at the counter, replaced by a new key and certificate.
    replace = _new_deal(
        clerk, old, {"deal": "replace-damaged", "reason": "destroyed", "comment": "USBKEY进水"}
    )
    page = _page(clerk, f"/requests/{replace}")
    assert '<dd id="deal-type">补办（损坏）</dd>' in page and '<dd id="deal-reason">已销毁</dd>' in page
    svc.requests.accept(replace, actor=people["acceptor"], agree=True, usbkey_model=SOFTHSM)
    svc.requests.review(replace, actor=people["reviewer"], decision=Action.APPROVE)
    second = softhsm.new_token(token.conf)
    module = Module(second.module)
    with open_usb_key(module, module.find(label=second.label), second.pin) as new_key:
        new = svc.token_issuance.issue(
            replace, new_key, actor=people["distributor"], key_type="ec-p256"
        ).serial
    assert svc.requests.get(replace).state is RequestState.ISSUED

    page = _page(distributor, f"/requests/{replace}")
    assert f'<a href="/certificates/{new}">{new}</a>' in page and 'id="form-distribute"' in page
    got = post(distributor, f"/requests/{replace}/distribute", {"recipient": "李四"})
    assert got.status_code == 302
    page = _page(distributor, f"/requests/{replace}")
    assert '<span class="badge" id="state">已分发</span>' in page
    assert '<span id="deal-certificate-status">已吊销</span>' in page
    assert '<span id="deal-key-state">已销毁</span>' in page

    gone = svc.certificates.get(old)
    assert gone.status is CertificateStatus.REVOKED and gone.revocation_reason is RevocationReason.SUPERSEDED
    assert svc.certificates.get(new).status is CertificateStatus.VALID
    page = _page(clerk, f"/certificates/{old}")
    assert '<dd id="cert-status">已吊销</dd>' in page and '<span id="token-state">已销毁</span>' in page
    assert svc.requests.get(replace).deal is Deal.REPLACE_DAMAGED
