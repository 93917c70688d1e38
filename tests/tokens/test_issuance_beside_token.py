"""The transactions that run while the token works (services/token_issuance.py): phase 2's beside key
generation, delivery's beside the certificate write. Other writers meanwhile, a check failing meanwhile, a key
marked lost meanwhile; SoftHSM2 as the token, on SQLite (optimistic transactions, run again on a write
conflict) and PostgreSQL (the transactions start once the token is done).

Another desk's write is made to land after the transaction has read what it checks and before it writes: the
token step waits until the engine has run that read (on SQLite; on PostgreSQL the read comes after the token
step, so it does not wait)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import PyKCS11
import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from pki.enums import CertificateStatus, RequestState, TokenState
from pki.errors import ConflictError, PermissionDeniedError, TokenError
from pki.models import AuditRecord, Certificate, UsbToken
from pki.services import Actor, Service, token_issuance
from pki.services.token_issuance import PreChecked, TokenIssued, object_label
from tests.support.devices import OnKey
from tests.support.pki import approved
from tokens.session import token_error
from tokens.usbkey import UsbKey

SOFTHSM = "SoftHSM2"
# What the two transactions read last before they wait for the token (the token row lock; the request and
# token read for delivery).
KEYGEN_READ = "SELECT usb_token.id, usb_token.state, usb_token.holder_credential"
DELIVERY_READ = "usb_token.state AS token_state"


@contextmanager
def statement_seen(service: Service, fragment: str) -> Iterator[threading.Event]:
    """An event set once the engine has run a statement containing ``fragment``."""
    seen = threading.Event()

    def after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if fragment in statement:
            seen.set()

    event.listen(service.ctx.engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(service.ctx.engine, "after_cursor_execute", after)


class _Meanwhile(OnKey):
    """The real USB key; after it has generated (or written), ``meanwhile`` runs in the thread driving it,
    once the transaction beside it has read (``read``), as another desk's write would land."""

    def __init__(
        self,
        device: UsbKey,
        service: Service,
        read: threading.Event,
        meanwhile: Callable[[], object],
        *,
        on: str,
    ) -> None:
        super().__init__(device)
        self._read, self._meanwhile, self._on = read, meanwhile, on
        self._beside = service.ctx.optimistic_writes

    def _land(self) -> None:
        if self._beside:
            assert self._read.wait(timeout=10), "the transaction beside the token never read"
        self._meanwhile()

    def generate(self, key_type: str, label: str) -> tuple[bytes, object]:
        made = self._device.generate(key_type, label)
        if self._on == "generate":
            self._land()
        return made

    def write_certificate(self, der: bytes, key_id: bytes, label: str) -> None:
        self._device.write_certificate(der, key_id, label)
        if self._on == "write":
            self._land()


def issue_while(
    service: Service,
    people: dict[str, Actor],
    device: UsbKey,
    rid: int,
    meanwhile: Callable[[], object],
    *,
    on: str,
) -> TokenIssued:
    """Issue ``rid`` onto ``device`` with ``meanwhile`` landing during key generation (on="generate") or the
    certificate write (on="write"), after the transaction beside it has read."""
    with statement_seen(service, KEYGEN_READ if on == "generate" else DELIVERY_READ) as read:
        racing = _Meanwhile(device, service, read, meanwhile, on=on)
        return service.token_issuance.issue(rid, racing, actor=people["distributor"], key_type="ec-p256")


def lose(service: Service, device: UsbKey, ops: Actor) -> Callable[[], object]:
    return lambda: service.inventory.mark(device.serial, "lost", actor=ops)


def _labelled(device: UsbKey, service: Service, rid: int) -> list[str]:
    return device.objects_labelled(object_label(rid, service.requests.get(rid).credential_number))


def test_another_writer_meanwhile_does_not_stop_the_issuance(
    ca_service: Service, people: dict[str, Actor], device: UsbKey
) -> None:
    """On SQLite the issuance read a snapshot that the other write made stale: its transaction runs again.
    Either way the certificate is issued once and the other write stays."""
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)
    others: list[int] = []

    def another_desk() -> None:
        others.append(approved(ca_service, people, usbkey_model=SOFTHSM))

    done = issue_while(ca_service, people, device, rid, another_desk, on="generate")

    assert ca_service.requests.get(rid).state is RequestState.ISSUED
    assert [ca_service.requests.get(o).state for o in others] == [RequestState.APPROVED]
    with Session(ca_service.ctx.engine) as s:
        certs = s.exec(select(Certificate).where(Certificate.request_id == rid)).all()
    assert [(c.serial, c.delivered) for c in certs] == [(done.serial, True)]
    assert device.read_certificate(bytes.fromhex(done.key_id)) == certs[0].der
    assert ca_service.audit.verify().ok


def test_a_role_withdrawn_meanwhile_refuses_and_the_new_key_pair_is_removed(
    ca_service: Service, people: dict[str, Actor], device: UsbKey
) -> None:
    """The pre-check passed; the distributor's role goes before phase 2 runs; the key pair the token was
    making is waited for and removed."""
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)
    checked = ca_service.token_issuance.precheck(rid, actor=people["distributor"], token_serial=device.serial)
    ca_service.users.update("distributor", actor=people["admin"], roles=["reviewer"])
    with pytest.raises(PermissionDeniedError):
        ca_service.token_issuance.issue(
            rid, device, actor=people["distributor"], key_type="ec-p256", prechecked=checked
        )
    assert _labelled(device, ca_service, rid) == []
    assert ca_service.requests.get(rid).state is RequestState.APPROVED
    with Session(ca_service.ctx.engine) as s:
        assert s.exec(select(Certificate)).all() == []


def test_a_key_marked_lost_meanwhile_is_refused_and_left_as_found(
    ca_service: Service, people: dict[str, Actor], device: UsbKey
) -> None:
    """Ops mark the key lost from another desk while it generates. SQLite: the issuance read the key as
    usable, its first write finds the snapshot stale, and the transaction run again refuses the lost key.
    PostgreSQL: the transaction starts after the key pair is made, and refuses at once. The new key pair is
    removed either way."""
    first = approved(ca_service, people, usbkey_model=SOFTHSM)
    ca_service.token_issuance.issue(first, device, actor=people["distributor"], key_type="ec-p256")
    ca_service.inventory.mark(device.serial, "returned", actor=people["ops"])  # back, for the next unit
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)
    with pytest.raises(ConflictError, match="recorded as lost"):
        issue_while(ca_service, people, device, rid, lose(ca_service, device, people["ops"]), on="generate")

    assert _labelled(device, ca_service, rid) == []
    assert ca_service.requests.get(rid).state is RequestState.APPROVED
    with Session(ca_service.ctx.engine) as s:
        assert s.exec(select(UsbToken.state)).one() is TokenState.LOST
        assert s.exec(select(Certificate).where(Certificate.request_id == rid)).all() == []
    assert ca_service.audit.verify().ok


def test_a_key_marked_lost_while_the_certificate_is_written_is_not_delivered(
    ca_service: Service, people: dict[str, Actor], device: UsbKey
) -> None:
    """Delivery read the key as usable; ops mark it lost (its certificate revoked) before delivery writes.
    SQLite: the delivery's first write finds its snapshot stale and, run again, finds the certificate
    revoked. PostgreSQL: delivery starts after the write and finds it so at once."""
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)
    with pytest.raises(ConflictError, match="revoked meanwhile"):
        issue_while(ca_service, people, device, rid, lose(ca_service, device, people["ops"]), on="write")

    assert ca_service.requests.get(rid).state is RequestState.APPROVED
    with Session(ca_service.ctx.engine) as s:
        cert = s.exec(select(Certificate).where(Certificate.request_id == rid)).one()
        assert s.exec(select(UsbToken.state)).one() is TokenState.LOST
    assert cert.status is CertificateStatus.REVOKED and not cert.delivered
    assert ca_service.audit.verify().ok


def test_a_role_withdrawn_while_the_certificate_is_written_leaves_it_for_resume(
    ca_service: Service, people: dict[str, Actor], device: UsbKey
) -> None:
    """The certificate is on the key but its distributor lost the role before delivery wrote: nothing is
    delivered; once the role is back, --resume finds it written and delivers it."""
    rid = approved(ca_service, people, usbkey_model=SOFTHSM)

    def withdraw() -> None:
        ca_service.users.update("distributor", actor=people["admin"], roles=["reviewer"])

    with pytest.raises(PermissionDeniedError):
        issue_while(ca_service, people, device, rid, withdraw, on="write")
    assert ca_service.requests.get(rid).state is RequestState.APPROVED
    with Session(ca_service.ctx.engine) as s:  # the refused attempt is recorded once, retry or not
        denied = s.exec(select(AuditRecord.actor).where(AuditRecord.action == "security.denied")).all()
    assert denied == ["distributor"]

    ca_service.users.update("distributor", actor=people["admin"], roles=["distributor"])
    done = ca_service.token_issuance.resume(rid, device, actor=people["distributor"])
    assert done.resumed and ca_service.requests.get(rid).state is RequestState.ISSUED
    with Session(ca_service.ctx.engine) as s:
        cert = s.exec(select(Certificate).where(Certificate.request_id == rid)).one()
    assert cert.delivered and device.read_certificate(bytes.fromhex(done.key_id)) == cert.der


def _refused_after_precheck(
    service: Service, people: dict[str, Actor], device: UsbKey
) -> tuple[int, PreChecked]:
    """A request whose pre-check passed, on a key then marked lost: phase 2 will refuse it."""
    first = approved(service, people, usbkey_model=SOFTHSM)
    service.token_issuance.issue(first, device, actor=people["distributor"], key_type="ec-p256")
    service.inventory.mark(device.serial, "returned", actor=people["ops"])
    rid = approved(service, people, usbkey_model=SOFTHSM)
    checked = service.token_issuance.precheck(rid, actor=people["distributor"], token_serial=device.serial)
    service.inventory.mark(device.serial, "lost", actor=people["ops"])
    return rid, checked


class _Full(OnKey):
    """The real USB key, full: key generation fails with CKR_DEVICE_MEMORY."""

    def generate(self, key_type: str, label: str) -> tuple[bytes, object]:
        raise token_error(PyKCS11.PyKCS11Error(PyKCS11.CKR_DEVICE_MEMORY), "generating the key pair")


def test_when_the_token_fails_and_phase_2_refuses_the_token_error_comes_first(
    ca_service: Service, people: dict[str, Actor], device: UsbKey
) -> None:
    """In turn, the full key would have failed before phase 2 ran; beside it (SQLite), phase 2 refuses the
    lost key first: the distributor still sees the token's error, the refusal in a note."""
    rid, checked = _refused_after_precheck(ca_service, people, device)
    with pytest.raises(TokenError) as failed:
        ca_service.token_issuance.issue(
            rid, _Full(device), actor=people["distributor"], key_type="ec-p256", prechecked=checked
        )
    assert failed.value.ckr == "CKR_DEVICE_MEMORY"
    if ca_service.ctx.optimistic_writes:
        assert any("recorded as lost" in note for note in failed.value.__notes__), failed.value.__notes__
    assert _labelled(device, ca_service, rid) == []
    assert ca_service.requests.get(rid).state is RequestState.APPROVED


class _CtrlCWhileWaiting(Future[Any]):
    """A key generation still running when the distributor presses Ctrl-C: every wait for it is
    interrupted."""

    def result(self, timeout: float | None = None) -> Any:
        raise KeyboardInterrupt

    def exception(self, timeout: float | None = None) -> BaseException | None:
        raise KeyboardInterrupt


class _Interrupting:
    def submit(self, *_: object, **__: object) -> Future[Any]:
        return _CtrlCWhileWaiting()


def test_ctrl_c_while_waiting_for_the_token_is_not_swallowed(
    ca_service: Service, people: dict[str, Actor], device: UsbKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Phase 2 refuses (or waits for the key) and the wait for the token is interrupted: the interrupt goes
    up, with a note on what may stay on the key, instead of the refusal."""
    rid, checked = _refused_after_precheck(ca_service, people, device)
    monkeypatch.setattr(token_issuance, "TOKEN_WORKER", _Interrupting())
    with pytest.raises(KeyboardInterrupt) as interrupted:
        ca_service.token_issuance.issue(
            rid, device, actor=people["distributor"], key_type="ec-p256", prechecked=checked
        )
    assert any("pkictl token clean" in note for note in interrupted.value.__notes__)
    assert ca_service.requests.get(rid).state is RequestState.APPROVED
