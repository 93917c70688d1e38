"""续期 onto the USB key (services/token_renewal.py, the desk's half in pki/desk/usbkey.py) on SoftHSM2, on
SQLite and PostgreSQL: a renew deal and ops' direct renewal carried out onto the key that holds the old key
pair. pkcs11-tool is the judge of the key: the key pair unchanged, one certificate object, byte-equal to the
record, with the key pair's CKA_ID and label. The deal's request is issued then distributed, the old
certificate superseded per ca.toml, openssl verifies the renewal. A key-held certificate is not renewed
without its key; another key, or a key pair changed under the same id, is refused with nothing written; a
renewal recorded but not written is finished by a resume and never issued twice."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlmodel import Session, col, select

from pki.ca.validity import add_months
from pki.clock import FixedClock
from pki.desk import usbkey
from pki.enums import CertificateStatus, Deal, RequestState, RevocationReason, TokenState
from pki.errors import (
    ConflictError,
    InvalidTransitionError,
    IssuanceError,
    NotFoundError,
    TokenError,
    ValidationError,
)
from pki.models import Certificate, TokenCertificate, UsbToken
from pki.services import Actor, Service
from pki.services.token_device import token_csr
from tests.judges.tools import ca_certs, run, write_pem
from tests.support import softhsm
from tests.support.acting_desk import ActingDesk
from tests.support.deals import deal_approved
from tests.support.pki import approved, csr_for, key
from tokens.keys import generate_on_token
from tokens.session import Module
from tokens.usbkey import UsbKey, open_usb_key

SOFTHSM = "SoftHSM2"


@contextmanager
def opened(token: softhsm.Token) -> Iterator[UsbKey]:
    module = Module(token.module)
    with open_usb_key(module, module.find(label=token.label), token.pin) as key:
        yield key


def opener(token: softhsm.Token) -> Callable[[], AbstractContextManager[UsbKey]]:
    return lambda: opened(token)


def listed(token: softhsm.Token) -> list[str]:
    """pkcs11-tool --list-objects, one block of text per object, in the token's order."""
    out = softhsm.pkcs11_tool(token, "--list-objects")
    blocks: list[str] = []
    for line in out.splitlines():
        if line and not line[0].isspace():
            blocks.append(line)
        elif blocks:
            blocks[-1] += "\n" + line
    return blocks


def key_pair(blocks: list[str]) -> list[str]:
    return sorted(b for b in blocks if b.startswith(("Private Key Object", "Public Key Object")))


def certificate_objects(blocks: list[str]) -> list[str]:
    return [b for b in blocks if b.startswith("Certificate Object")]


def read_certificate(token: softhsm.Token, key_id: str, tmp_path: Path) -> bytes:
    """The certificate object with CKA_ID ``key_id``, read by pkcs11-tool."""
    out = tmp_path / f"read-{key_id}.der"
    softhsm.pkcs11_tool(token, "--read-object", "--type", "cert", "--id", key_id, "--output-file", str(out))
    return out.read_bytes()


def on_key(service: Service, people: dict[str, Actor], token: softhsm.Token, **fields: Any) -> Certificate:
    """A certificate issued onto ``token`` and handed over."""
    rid = approved(service, people, usbkey_model=SOFTHSM, **fields)
    with opened(token) as device:
        done = service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    service.distribution.distribute(rid, recipient="王五", actor=people["distributor"])
    return row(service, done.serial)


def row(service: Service, serial: str) -> Certificate:
    with Session(service.ctx.engine) as s:
        return s.exec(select(Certificate).where(Certificate.serial == serial)).one()


def successors(service: Service, old: Certificate) -> list[Certificate]:
    with Session(service.ctx.engine) as s:
        return list(s.exec(select(Certificate).where(Certificate.renewed_from_id == old.id)).all())


def placement(service: Service, cert: Certificate) -> TokenCertificate:
    with Session(service.ctx.engine) as s:
        found = s.get(TokenCertificate, cert.id)
        assert found is not None
        return found


def verifies(service: Service, der: bytes, tmp_path: Path, clock: FixedClock) -> None:
    cas = ca_certs(service)
    chain = write_pem(tmp_path / "chain.pem", cas["test"], cas["root"])
    ee = write_pem(tmp_path / "renewal.pem", x509.load_der_x509_certificate(der))
    verdict = run(["openssl", "verify", "-attime", str(int(clock.now().timestamp())), "-CAfile", chain, ee])
    assert verdict.returncode == 0, verdict.explain()


def renew(service: Service, actor: Actor, serial: str, token: softhsm.Token, **fields: Any) -> Any:
    """`pkictl renew SERIAL --token-label L`'s calls, in this process."""
    desk = ActingDesk(service, actor)
    plan = desk.call("renew.token.begin", serial=serial, **fields)
    return usbkey.renew(desk, plan, opener(token), months=fields.get("months"))


def test_a_renew_deal_is_carried_out_onto_the_key(
    ca_service: Service,
    people: dict[str, Actor],
    softhsm_conf: Path,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    token = softhsm.new_token(softhsm_conf)
    old = on_key(ca_service, people, token, validity_months=12)
    where = placement(ca_service, old)
    clock.set(old.not_valid_after - timedelta(days=30))
    rid = deal_approved(ca_service, people, Deal.RENEW, old.serial, months=24)
    before = listed(token)
    assert len(certificate_objects(before)) == 1

    plan = ActingDesk(ca_service, people["distributor"]).call("renew.token.begin", serial=old.serial)
    assert (plan["token_serial"], plan["key_id"], plan["label"]) == (token.serial, where.key_id, where.label)
    assert plan["request_id"] == rid and plan["module"] == softhsm.MODULE
    done = renew(ca_service, people["distributor"], old.serial, token)

    new = row(ca_service, done["serial"])
    assert done["renewed_from"] == old.serial and done["request_id"] == rid and not done["resumed"]
    assert new.request_id == rid and new.renewed_from_id == old.id and new.delivered
    assert new.spki_sha256 == old.spki_sha256  # the same key pair, certified again
    assert new.not_valid_after == add_months(old.not_valid_after, 24)  # carried over from the old end
    after = listed(token)
    assert key_pair(after) == key_pair(before)  # the key pair as it was
    [cert_object] = certificate_objects(after)  # the old certificate object replaced
    assert f"ID:         {where.key_id}" in cert_object and where.label in cert_object
    assert read_certificate(token, where.key_id, tmp_path) == new.der  # byte-equal to the record
    assert (placement(ca_service, new).key_id, placement(ca_service, new).label) == (
        where.key_id,
        where.label,
    )

    assert ca_service.requests.get(rid).state is RequestState.ISSUED
    assert ca_service.requests.get(rid).issued_by == "distributor"
    superseded = row(ca_service, old.serial)  # ca.toml [renewal] revoke_superseded = "issue"
    assert superseded.revocation_reason is RevocationReason.SUPERSEDED
    ca_service.distribution.distribute(rid, recipient="张三", actor=people["distributor"])
    assert ca_service.requests.get(rid).state is RequestState.DISTRIBUTED
    verifies(ca_service, new.der, tmp_path, clock)
    with Session(ca_service.ctx.engine) as s:
        held = s.exec(select(UsbToken).where(UsbToken.serial == token.serial)).one()
    assert held.state is TokenState.ISSUED and held.holder_credential == new.credential_number
    actions = [r.action for r in ca_service.audit.recent(limit=10)]
    assert "certificate.renew" in actions and "request.issue" in actions


def test_ops_renew_directly_onto_the_key(
    ca_service: Service,
    people: dict[str, Actor],
    softhsm_conf: Path,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    token = softhsm.new_token(softhsm_conf)
    old = on_key(ca_service, people, token, validity_months=12)
    clock.set(old.not_valid_after + timedelta(days=10))  # expired: counted from today, not revoked
    with pytest.raises(Exception, match="no approved renew deal"):
        renew(ca_service, people["distributor"], old.serial, token)
    done = renew(ca_service, people["ops"], old.serial, token, months=24)

    new = row(ca_service, done["serial"])
    assert done["request_id"] == old.request_id and new.request_id == old.request_id
    assert new.spki_sha256 == old.spki_sha256 and new.delivered
    assert new.not_valid_after == add_months(clock.now().replace(microsecond=0), 24)
    assert row(ca_service, old.serial).status is CertificateStatus.VALID  # expired, not revoked
    assert read_certificate(token, done["key_id"], tmp_path) == new.der
    assert len(certificate_objects(listed(token))) == 1
    assert ca_service.requests.get(old.request_id or 0).state is RequestState.DISTRIBUTED
    handed = ca_service.distribution.distribute(
        old.request_id or 0, recipient="赵六", actor=people["distributor"]
    )
    assert handed.serial == new.serial
    verifies(ca_service, new.der, tmp_path, clock)
    with pytest.raises(IssuanceError, match="already renewed"):
        renew(ca_service, people["ops"], old.serial, token)


def test_a_key_held_certificate_is_renewed_only_onto_its_key(
    ca_service: Service, people: dict[str, Actor], softhsm_conf: Path, clock: FixedClock
) -> None:
    token = softhsm.new_token(softhsm_conf)
    old = on_key(ca_service, people, token, validity_months=12)
    clock.set(old.not_valid_after - timedelta(days=30))
    with pytest.raises(ConflictError, match=f"--token-serial {token.serial}"):
        ca_service.renewal.renew(old.serial, actor=people["ops"])
    rid = deal_approved(ca_service, people, Deal.RENEW, old.serial)
    with pytest.raises(ConflictError, match="its renewal is written onto that key"):
        ca_service.renewal.renew(old.serial, actor=people["distributor"])
    assert rid not in [q.id for q in ca_service.token_issuance.approved_queue()]  # takes no blank key
    blank = softhsm.new_token(softhsm_conf)
    before = listed(blank)
    with opened(blank) as device, pytest.raises(IssuanceError, match=f"pkictl renew {old.serial}"):
        ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    assert listed(blank) == before  # refused before the key was touched
    assert successors(ca_service, old) == [] and ca_service.requests.get(rid).state is RequestState.APPROVED
    # Renewed from a CSR, a certificate on no key still renews as before, and refuses a key.
    other = ca_service.issuance.issue_from_csr(
        approved(ca_service, people), csr_for(key("ec-p256", 5701)), actor=people["distributor"]
    )
    with pytest.raises(ConflictError, match="on no USB key the center recorded"):
        ActingDesk(ca_service, people["ops"]).call("renew.token.begin", serial=other.serial)


def test_the_wrong_key_is_refused_and_nothing_written(
    ca_service: Service, people: dict[str, Actor], softhsm_conf: Path, clock: FixedClock
) -> None:
    token, other = softhsm.new_token(softhsm_conf), softhsm.new_token(softhsm_conf)
    old = on_key(ca_service, people, token, validity_months=12)
    clock.set(old.not_valid_after - timedelta(days=30))
    deal_approved(ca_service, people, Deal.RENEW, old.serial)
    dist = people["distributor"]
    desk = ActingDesk(ca_service, dist)
    before, other_before = listed(token), listed(other)

    with pytest.raises(TokenError, match=f"is on token {token.serial}, not on {other.serial}"):
        desk.call("renew.token.begin", serial=old.serial, token_serial=other.serial)
    plan = desk.call("renew.token.begin", serial=old.serial)
    with pytest.raises(TokenError, match="insert that key"):
        usbkey.renew(desk, plan, opener(other), months=None)
    # The center refuses a proof from another key pair, and a key pair on another token.
    forged = csr_for(key("ec-p256", 5702))
    with pytest.raises(ValidationError) as bad:
        desk.call("renew.token.record", serial=old.serial, token_serial=token.serial, csr=forged)
    assert bad.value.errors[0].field == "csr"
    with opened(token) as device:
        signer = device.signing_key(bytes.fromhex(plan["key_id"]))
        assert signer is not None
        proof = token_csr(signer, plan["label"]).public_bytes(Encoding.DER)
    with pytest.raises(TokenError, match="insert that key"):
        desk.call("renew.token.record", serial=old.serial, token_serial=other.serial, csr=proof)

    # The key pair changed under the same CKA_ID behind pkictl's back: not the certificate's any more.
    key_id = bytes.fromhex(plan["key_id"])
    with opened(token) as device:
        device.remove(key_id)  # key pair and certificate
        generate_on_token(device._s, "ec-p256", plan["label"], key_id)
    swapped = listed(token)
    with pytest.raises(TokenError, match="no key pair with id"):
        usbkey.renew(desk, plan, opener(token), months=None)
    assert listed(token) == swapped and listed(other) == other_before
    assert key_pair(swapped) != key_pair(before)
    assert successors(ca_service, old) == []
    assert row(ca_service, old.serial).status is CertificateStatus.VALID


def test_a_renewal_recorded_but_not_written_is_resumed(
    ca_service: Service,
    people: dict[str, Actor],
    softhsm_conf: Path,
    clock: FixedClock,
    tmp_path: Path,
) -> None:
    token = softhsm.new_token(softhsm_conf)
    old = on_key(ca_service, people, token, validity_months=12)
    clock.set(old.not_valid_after - timedelta(days=30))
    rid = deal_approved(ca_service, people, Deal.RENEW, old.serial)
    dist = people["distributor"]
    desk = ActingDesk(ca_service, dist)
    plan = desk.call("renew.token.begin", serial=old.serial)
    with opened(token) as device:  # the desk proved the key pair, the center recorded, then the desk died
        signer = device.signing_key(bytes.fromhex(plan["key_id"]))
        assert signer is not None
        proof = token_csr(signer, plan["label"]).public_bytes(Encoding.DER)
    recorded = desk.call("renew.token.record", serial=old.serial, token_serial=token.serial, csr=proof)
    [waiting] = successors(ca_service, old)
    assert waiting.serial == recorded["renewal"] and not waiting.delivered
    assert ca_service.requests.get(rid).state is RequestState.APPROVED  # 'issued' once on the key

    with pytest.raises(
        ConflictError, match=f"pkictl renew {old.serial} --token-serial {token.serial} --resume"
    ):
        desk.call("renew.token.begin", serial=old.serial)
    with opened(token) as device, pytest.raises(IssuanceError, match=f"pkictl renew {old.serial}"):
        ca_service.token_issuance.resume(rid, device, actor=dist)  # `pkictl issue ID --resume` sends it on
    with pytest.raises(InvalidTransitionError, match="cannot distribute a request that is approved"):
        ca_service.distribution.distribute(rid, recipient="张三", actor=dist)

    # Killed after the write, before the old object went: the resume finds the new one and finishes.
    key_id = bytes.fromhex(plan["key_id"])
    with opened(token) as device:
        device.write_certificate(waiting.der, key_id, plan["label"])
    assert len(certificate_objects(listed(token))) == 2
    pending = desk.call("renew.token.pending", serial=old.serial)
    assert pending["renewal"] == waiting.serial and base64.b64decode(pending["replaces"]) == old.der
    done = usbkey.resume_renewal(desk, pending, opener(token))
    assert done["serial"] == waiting.serial and done["resumed"] is True
    assert [c.serial for c in successors(ca_service, old)] == [waiting.serial]  # issued once
    assert len(certificate_objects(listed(token))) == 1  # the old object removed
    assert read_certificate(token, plan["key_id"], tmp_path) == waiting.der
    assert ca_service.requests.get(rid).state is RequestState.ISSUED
    with pytest.raises(NotFoundError, match="no renewal waiting"):
        desk.call("renew.token.pending", serial=old.serial)
    with Session(ca_service.ctx.engine) as s:
        assert s.exec(select(Certificate.delivered).where(col(Certificate.id) == waiting.id)).one()
