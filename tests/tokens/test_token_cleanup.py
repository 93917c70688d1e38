"""services/token_cleanup.py on SoftHSM2: what counts as left over, and what is never touched."""

from __future__ import annotations

import os
from collections.abc import Iterator

import PyKCS11
import pytest

from pki.errors import PermissionDeniedError, TokenError
from pki.services import Actor, Service
from pki.services.token_issuance import object_label
from tests.support.pki import approved
from tests.support.softhsm import Token
from tokens.keys import generate_on_token
from tokens.session import Module
from tokens.usbkey import UsbKey, open_usb_key


@pytest.fixture
def device(token: Token) -> Iterator[UsbKey]:
    module = Module(token.module)
    with open_usb_key(module, module.find(label=token.label), token.pin) as key:
        yield key


class _WriteFails:
    """The real USB key whose certificate write fails: the certificate stays recorded, waiting for --resume."""

    def __init__(self, device: UsbKey) -> None:
        self._device = device

    def __getattr__(self, name: str) -> object:
        return getattr(self._device, name)

    def write_certificate(self, der: bytes, key_id: bytes, label: str) -> None:
        raise TokenError("writing the certificate to the token: the token was removed (CKR_DEVICE_REMOVED)")


def test_only_unrecorded_pkictl_objects_are_left_over_and_removed(
    ca_service: Service, people: dict[str, Actor], device: UsbKey
) -> None:
    distributor = people["distributor"]
    delivered = approved(ca_service, people, usbkey_model="SoftHSM2")
    ca_service.token_issuance.issue(delivered, device, actor=distributor, key_type="ec-p256")
    ca_service.inventory.mark(device.serial, "returned", actor=people["ops"])  # one key serves one unit
    pending = approved(ca_service, people, usbkey_model="SoftHSM2")
    with pytest.raises(TokenError):
        ca_service.token_issuance.issue(pending, _WriteFails(device), actor=distributor, key_type="ec-p256")
    stray = generate_on_token(device._s, "ec-p256", object_label(999, "91110000000000000X"), os.urandom(8))
    foreign = generate_on_token(device._s, "ec-p256", "someone-elses-key", os.urandom(8))

    [left] = ca_service.token_cleanup.leftovers(device)
    assert (left.key_id, left.request_id) == (stray.hex(), 999)
    assert left.classes == ("private key", "public key")

    with pytest.raises(PermissionDeniedError):
        ca_service.token_cleanup.remove_leftovers(device, actor=people["clerk"])
    assert ca_service.token_cleanup.leftovers(device) == [left]  # a refused removal removes nothing

    assert ca_service.token_cleanup.remove_leftovers(device, actor=distributor) == [left]
    assert ca_service.token_cleanup.leftovers(device) == []
    ids = {bytes(device._s.getAttributeValue(h, [PyKCS11.CKA_ID])[0]) for h in device._s.findObjects([])}
    assert stray not in ids and foreign in ids  # what pkictl did not label stays
    assert len(ids) == 3  # the delivered pair, the pair waiting for --resume, the foreign pair
    records = [
        r for r in ca_service.audit.recent(limit=20, subject_type="token") if r.action == "token.clean"
    ]
    assert len(records) == 1 and stray.hex() in records[0].details
