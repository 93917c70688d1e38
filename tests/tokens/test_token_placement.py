"""Issue 4 in the UI and `pkictl cert show`: the USBKEY holding a certificate (label, serial, model, key
type; 未写入 until written and read back), fetched for a whole page in one query; SoftHSM2, both databases."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from pki.errors import TokenError
from pki.services import Actor, Service
from tests.support.pki import approved, csr_for, key
from tests.support.softhsm import Token
from tests.web.conftest import create, sign_in
from tokens.usbkey import UsbKey

SOFTHSM = "SoftHSM2"


def _token_cells(page: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r'<td class="token">(.*?)</td>', page)]


def test_list_and_detail_show_the_token_and_not_yet_written(
    ca_service: Service,
    people: dict[str, Actor],
    device: UsbKey,
    token: Token,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = ca_service.issuance.issue_from_csr(
        approved(ca_service, people), csr_for(key("ec-p256", 4242)), actor=people["distributor"]
    )
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)

    def unplugged(*_: object) -> None:
        raise TokenError("writing the certificate: the token was removed", ckr="CKR_DEVICE_REMOVED")

    monkeypatch.setattr(device, "write_certificate", unplugged)
    with pytest.raises(TokenError):
        ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    monkeypatch.undo()

    client = create(ca_service).test_client()
    sign_in(client, ca_service, "acceptor")
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(ca_service.ctx.engine, "before_cursor_execute", seen)
    try:
        listing = client.get("/certificates/").get_data(as_text=True)
    finally:
        event.remove(ca_service.ctx.engine, "before_cursor_execute", seen)
    assert sum("token_certificate" in s for s in statements) == 1  # one query for the page's placements
    cells = _token_cells(listing)
    assert cells[0] == ""  # the certificate issued from a CSR is on no token of ours
    assert cells[1].startswith(token.label) and token.serial in cells[1] and SOFTHSM in cells[1]
    assert "ECC P-256" in cells[1] and cells[1].endswith("未写入")

    pending = ca_service.certificates.find()[1]
    detail = client.get(f"/certificates/{pending.serial}").get_data(as_text=True)
    shown = re.search(r'<dd id="token">(.*?)</dd>', detail)
    assert shown and token.serial in shown.group(1) and "未写入" in shown.group(1)
    assert 'id="token"' not in client.get(f"/certificates/{plain.serial}").get_data(as_text=True)

    ca_service.token_issuance.resume(rid, device, actor=people["distributor"])
    written = _token_cells(client.get("/certificates/").get_data(as_text=True))[1]
    assert token.serial in written and "未写入" not in written
    placement = ca_service.certificates.placement(pending.id or 0)
    assert placement is not None and placement.delivered and placement.key_type == "ec-p256"
    assert ca_service.certificates.placements([plain.id or 0, pending.id or 0]) == {pending.id: placement}
