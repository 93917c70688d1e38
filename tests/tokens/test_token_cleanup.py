"""services/token_cleanup.py on SoftHSM2: what counts as left over, and what is never touched."""

from __future__ import annotations

import os

import PyKCS11
import pytest

from pki.errors import PermissionDeniedError, TokenError
from pki.services import Actor, Service
from pki.services.token_issuance import object_label
from tests.support.devices import OnKey
from tests.support.pki import approved
from tests.support.softhsm import Token
from tokens.keys import generate_on_token
from tokens.session import Module
from tokens.usbkey import UsbKey, open_usb_key

UNIT = "91110000000000000X"  # only a label here: no request of this unit is recorded


class _WriteFails(OnKey):
    """The real USB key whose certificate write fails: the certificate stays recorded, waiting for --resume."""

    def write_certificate(self, der: bytes, key_id: bytes, label: str) -> None:
        raise TokenError("writing the certificate to the token: the token was removed (CKR_DEVICE_REMOVED)")


def test_only_unrecorded_pkictl_objects_are_left_over_and_removed(
    ca_service: Service, people: dict[str, Actor], device: UsbKey
) -> None:
    distributor = people["distributor"]
    delivered = approved(ca_service, people, usbkey_model="SoftHSM2")
    done = ca_service.token_issuance.issue(delivered, device, actor=distributor, key_type="ec-p256")
    ca_service.inventory.mark(device.serial, "returned", actor=people["ops"])  # one key serves one unit
    pending = approved(ca_service, people, usbkey_model="SoftHSM2")
    with pytest.raises(TokenError):
        ca_service.token_issuance.issue(pending, _WriteFails(device), actor=distributor, key_type="ec-p256")
    stray = generate_on_token(device._s, "ec-p256", object_label(999, UNIT), os.urandom(8))
    generate_on_token(device._s, "ec-p256", "someone-elses-key", os.urandom(8))
    # A pkictl pair whose CKA_ID another tool reused: only pkictl's objects of that id may go.
    shared = generate_on_token(device._s, "ec-p256", object_label(998, UNIT), os.urandom(8))
    generate_on_token(device._s, "ec-p256", "reuses-an-id", shared)
    # A pkictl pair with a certificate beside it that this database does not record (another desk, a restored
    # backup): in use, never a crash's leftover.
    in_use = generate_on_token(device._s, "ec-p256", object_label(997, UNIT), os.urandom(8))
    device.write_certificate(ca_service.certificates.get(done.serial).der, in_use, object_label(997, UNIT))

    left = ca_service.token_cleanup.leftovers(device)
    assert [(x.key_id, x.request_id) for x in left] == [(shared.hex(), 998), (stray.hex(), 999)]
    assert left[0].classes == ("private key", "public key")

    with pytest.raises(PermissionDeniedError):
        ca_service.token_cleanup.remove_leftovers(device, actor=people["clerk"])
    assert ca_service.token_cleanup.leftovers(device) == left  # a refused removal removes nothing

    assert ca_service.token_cleanup.remove_leftovers(device, actor=distributor) == left
    assert ca_service.token_cleanup.leftovers(device) == []
    labels = [device._s.getAttributeValue(h, [PyKCS11.CKA_LABEL])[0] for h in device._s.findObjects([])]
    assert object_label(999, UNIT) not in labels and object_label(998, UNIT) not in labels
    assert labels.count("someone-elses-key") == 2 and labels.count("reuses-an-id") == 2  # not pkictl's
    assert labels.count(object_label(997, UNIT)) == 3  # the pair with a certificate beside it
    trail = [
        r
        for r in ca_service.audit.recent(limit=20, subject_type="token")
        if r.action.startswith("token.clean")
    ]
    assert [r.action for r in trail] == ["token.clean", "token.cleaned"]
    assert stray.hex() in trail[0].details and stray.hex() in trail[1].details
    assert '"failed":null' in trail[1].details


def test_one_process_at_a_time_opens_a_usb_key(token: Token) -> None:
    module = Module(token.module)
    info = module.find(label=token.label)
    with (
        open_usb_key(module, info, token.pin),
        pytest.raises(TokenError, match="in use by another pkictl process"),
        open_usb_key(module, info, token.pin),
    ):
        pass
    with open_usb_key(module, info, token.pin) as again:  # free once the first is closed
        assert again.serial == info.serial
