"""解锁: carrying out an approved unlock deal on the USB key at a desk, in two steps around the key's work.

:meth:`UnlockService.begin` finds the approved unlock deal on a certificate the key holds, checks that the
operator may carry it out (workflow.toml [deals.unlock] roles.complete, separation of duties, the deal's
state, and the token_admin operation that SO PINs need) and hands the desk the key's SO PINs
(services/token_secrets.py). The desk logs in as SO, sets the holder's new PIN (C_InitPIN) and the new SO PIN
(C_SetPIN); :meth:`UnlockService.finish` then records the SO PIN change and completes the deal in one
transaction. A desk that stops in between leaves the deal approved and both SO PINs on record: running the
command again begins again and finishes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from pki import audit
from pki.enums import Action, Deal
from pki.errors import FieldError, NotFoundError, ValidationError
from pki.models import Certificate, CertificateRequest, TokenCertificate, UsbToken
from pki.services.authz import require_operation, require_role
from pki.services.certificates import effective_status
from pki.services.context import Actor, Context
from pki.services.deals import DealService, missing_deal
from pki.services.requests import RequestService
from pki.services.scope import require_certificates_in_scope, scope_for
from pki.services.token_secrets import OPERATION, SUBJECT, TokenSecretService

ATTEMPT = "token.unlock"


@dataclass(frozen=True)
class UnlockPlan:
    """What the desk needs to unblock the key: the deal it carries out and the SO PINs (never shown)."""

    request_id: int
    serial: str  # the certificate the deal concerns
    token_serial: str
    so_pins: tuple[str, ...] = field(repr=False)  # the SO PINs on record, to try in this order
    new_so_pin: str = field(repr=False)  # what the key's SO PIN becomes


@dataclass(frozen=True)
class Unlocked:
    request_id: int
    serial: str
    token_serial: str
    state: str  # the deal's: completed
    so_pin_changed: bool


class UnlockService:
    def __init__(
        self, ctx: Context, requests: RequestService, deals: DealService, secrets: TokenSecretService
    ) -> None:
        self._ctx = ctx
        self._requests = requests
        self._deals = deals
        self._secrets = secrets

    def begin(self, token_serial: str, *, actor: Actor) -> UnlockPlan:
        """The approved unlock deal on a certificate of the key ``token_serial`` and the key's SO PINs, for an
        operator who may carry it out. Refuses, naming how to enter one, when there is no such deal."""
        with self._ctx.denials_recorded(actor, ATTEMPT, SUBJECT, token_serial), self._ctx.write() as s:
            actor = self._ctx.resolve(s, actor)
            self._may_unlock(actor)
            certs = self._certificates_on(s, token_serial)
            require_certificates_in_scope(s, scope_for(s, actor), certs, lambda _: _unrecorded(token_serial))
            deals = self._deals.approved_many(s, Deal.UNLOCK, certs)
            if not deals:
                now = self._ctx.now()
                live = [c for c in certs if effective_status(c, now) in ("valid", "held")] or certs
                raise missing_deal(Deal.UNLOCK, live[-1].serial, actor)
            cert = next(c for c in certs if c.id in deals)
            request_id = deals[cert.id or 0][0]
            self._requests.lock_for(s, request_id, actor, Action.COMPLETE, None)
            locked = s.exec(select(Certificate).where(Certificate.id == cert.id).with_for_update()).one()
            self._deals.check(s, Deal.UNLOCK, locked)  # still valid or held, still on its key
            pins = self._secrets.for_unblock(s, token_serial, actor=actor)
            return UnlockPlan(request_id, cert.serial, token_serial, pins.current, pins.new)

    def finish(self, token_serial: str, request_id: int, *, actor: Actor, so_pin_changed: bool) -> Unlocked:
        """The desk set the holder's new PIN (and, ``so_pin_changed``, the new SO PIN): one transaction
        records the SO PIN change and completes the deal. No PIN is written anywhere here."""
        with self._ctx.denials_recorded(actor, ATTEMPT, SUBJECT, token_serial), self._ctx.write() as s:
            actor = self._ctx.resolve(s, actor)
            self._may_unlock(actor)
            details = {"token": token_serial, "so_pin_changed": so_pin_changed}
            req = self._deals.complete(s, request_id, actor, details)  # locked, in scope, approved
            serial = self._deal_on_key(s, request_id, token_serial)  # else all of it rolls back
            if so_pin_changed:
                self._secrets.changed_in(s, token_serial, actor=actor)
            audit.append(
                s,
                at=self._ctx.now(),
                actor=actor.username,
                action="token.unlocked",
                subject_type=SUBJECT,
                subject_id=token_serial,
                details={"request": request_id, "serial": serial, "so_pin_changed": so_pin_changed},
            )
            return Unlocked(request_id, serial, token_serial, req.state.value, so_pin_changed)

    def _may_unlock(self, actor: Actor) -> None:
        """The roles first, before anything about the key is read or said."""
        workflow = self._ctx.policies.workflow
        require_role(workflow, actor, Action.COMPLETE, Deal.UNLOCK)
        require_operation(workflow, actor, OPERATION)

    @staticmethod
    def _certificates_on(s: Session, token_serial: str) -> list[Certificate]:
        """The certificates the center wrote onto the key, oldest first."""
        token_id = s.exec(select(UsbToken.id).where(UsbToken.serial == token_serial)).one_or_none()
        if token_id is None:
            raise _unrecorded(token_serial)
        certs = list(
            s.exec(
                select(Certificate)
                .join(TokenCertificate, col(TokenCertificate.certificate_id) == col(Certificate.id))
                .where(TokenCertificate.token_id == token_id)
                .order_by(col(Certificate.id))
            ).all()
        )
        if not certs:
            raise NotFoundError(
                f"token {token_serial} holds no certificate of the center: there is no unlock deal for it",
                message_zh="该USB Key中没有证书中心签发的证书，无法办理解锁",
            )
        return certs

    @staticmethod
    def _deal_on_key(s: Session, request_id: int, token_serial: str) -> str:
        """The serial of the certificate unlock deal ``request_id`` concerns, which must be on the key."""
        row = s.exec(
            select(Certificate.serial)
            .join(CertificateRequest, col(CertificateRequest.subject_certificate_id) == col(Certificate.id))
            .join(TokenCertificate, col(TokenCertificate.certificate_id) == col(Certificate.id))
            .join(UsbToken, col(UsbToken.id) == col(TokenCertificate.token_id))
            .where(
                CertificateRequest.id == request_id,
                CertificateRequest.deal == Deal.UNLOCK,
                UsbToken.serial == token_serial,
            )
        ).one_or_none()
        if row is None:
            raise ValidationError(
                [
                    FieldError(
                        "request_id",
                        f"request {request_id} is not an unlock deal on a certificate of token {token_serial}",
                        "该申请不是此USB Key的解锁业务",
                    )
                ]
            )
        return row


def _unrecorded(token_serial: str) -> NotFoundError:
    return NotFoundError(
        f"token {token_serial} is not a USB key the center recorded", message_zh="该USB Key未在证书中心登记"
    )
