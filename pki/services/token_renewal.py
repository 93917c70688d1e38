"""续期 onto the USB key: a certificate whose key pair is on a USB key the center recorded is renewed (the same
key certified again) onto that key, beside that key pair, for an approved renew deal or ops' direct renewal.

The desk holds the key, the center the database and the CA key (the same calls from the center's host and
from a desk elsewhere: pki/desk/usbkey.py is the desk's half). Each step is safe to die after:

1. :meth:`begin`, read-only: the checks of a renewal (roles, the deal or the right to renew directly, the
   window, the deal's duties), then the certificate's key: recorded, usable, the one presented; no renewal
   already issued. The answer says where the key pair is: token, CKA_ID, label, the model's module, and the
   old certificate (whose object the new one replaces).
2. the desk finds the private key with that CKA_ID and its public key (the old certificate's) and has the
   token sign a CSR with it: the proof that this key holds that key pair.
3. :meth:`record`, one transaction: the proof checked again (the CSR's signature, the same public key, the
   same token), the renewal issued by the one issuance function (the deal's request, or the old request for a
   direct renewal) and recorded as not delivered, placed on the same token with the same key id and label
   (the key pair's, so that key pair, certificate and label stay one set on the key). Policy's superseding of
   the old certificate happens here or at hand-over, as for any renewal.
4. the desk writes the new certificate object, reads it back, and removes the old certificate's object
   (services/token_device.replace_on_token). The key pair is never touched.
5. :meth:`deliver`, one transaction: delivered, the token issued to the unit, a deal's request 'issued'
   (then `pkictl distribute`).

A desk that dies after step 3 leaves the renewal recorded and undelivered: :meth:`pending` gives it back for
``pkictl renew SERIAL --token-serial S --resume``, which writes (or finds) it and delivers; a second renewal
of the certificate is refused meanwhile, naming --resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from pki import audit
from pki.ca.keys import spki_sha256
from pki.enums import Action, CertificateStatus, Deal, RequestState, TokenState
from pki.errors import ConflictError, FieldError, IssuanceError, NotFoundError, ValidationError
from pki.lifecycle import transition
from pki.models import Certificate, CertificateRequest, TokenCertificate, UsbToken
from pki.services.authz import require_operation, require_role
from pki.services.context import Actor, Context
from pki.services.deals import DealService
from pki.services.issuance import IssuanceService, csr_public_key
from pki.services.renewal import RenewalService
from pki.services.renewal_window import check_renewable
from pki.services.requests import RequestService
from pki.services.token_device import not_this_token
from pki.services.token_issuance import record_delivery, refuse_token

ATTEMPT = "renew"
SUBJECT = "certificate"


@dataclass(frozen=True)
class RenewalPlan:
    """What the desk needs to renew ``serial`` onto its key (:meth:`TokenRenewalService.begin`)."""

    serial: str  # the certificate renewed
    der: bytes  # its DER: the certificate object on the key that the renewal replaces
    spki_sha256: str  # its public key: the key pair on the key must be this one
    token_serial: str  # the USB key holding the key pair
    key_id: str  # CKA_ID in hex
    label: str  # CKA_LABEL of the key pair, and of the new certificate object
    key_type: str
    usbkey_model: str  # the model the key was recorded with
    module: str | None  # its PKCS#11 module in tokens.toml, if the model is known there
    request_id: int | None  # the approved renew deal carried out; None for a direct renewal


@dataclass(frozen=True)
class WaitingRenewal:
    """A renewal recorded for the key and not yet delivered (:meth:`TokenRenewalService.pending`)."""

    serial: str  # the certificate renewed
    renewal: str  # the renewal's serial
    der: bytes  # the renewal
    replaces: bytes  # the old certificate's DER (its object is removed from the key)
    request_id: int  # the deal's request, or the old certificate's for a direct renewal
    token_serial: str
    key_id: str
    label: str
    key_type: str
    not_valid_after: datetime
    module: str | None
    usbkey_model: str


@dataclass(frozen=True)
class RenewedOntoKey:
    serial: str  # the renewal
    renewed_from: str
    request_id: int
    token_serial: str
    label: str
    key_id: str
    key_type: str
    not_valid_after: datetime
    resumed: bool


@dataclass(frozen=True)
class _Placed:
    """Where the old certificate's key pair is."""

    token_id: int
    token_serial: str
    key_id: str
    label: str
    model: str
    key_type: str


class TokenRenewalService:
    def __init__(
        self,
        ctx: Context,
        renewal: RenewalService,
        requests: RequestService,
        issuance: IssuanceService,
        deals: DealService,
    ) -> None:
        self._ctx = ctx
        self._renewal = renewal
        self._requests = requests
        self._issuance = issuance
        self._deals = deals

    def begin(
        self, serial: str, *, actor: Actor, token_serial: str | None = None, months: int | None = None
    ) -> RenewalPlan:
        """Every check :meth:`record` makes that needs no proof, before the desk logs in to the key; where the
        key pair is. Raises what :meth:`record` would."""
        self._renewal.check_months(months)
        with self._ctx.denials_recorded(actor, ATTEMPT, SUBJECT, serial), self._ctx.read() as s:
            actor, old = self._renewal.admit(s, serial, actor, lock=False)
            deal_id = self._renewal.carried_out_by(s, old, actor, Deal.RENEW)
            if deal_id is not None:
                self._may_carry_out(s, deal_id, actor)
            placed = self._placed(s, old, token_serial, lock=False)
            if deal_id is None:
                check_renewable(self._ctx.policies.ca, old, self._ctx.now())
            elif months is not None:
                raise ValidationError(
                    [FieldError("months", "the deal says the months", "有效期以业务申请为准")]
                )
            else:
                self._deals.check(s, Deal.RENEW, old)
        model = self._ctx.policies.tokens.model(placed.model)
        return RenewalPlan(
            old.serial,
            old.der,
            old.spki_sha256,
            placed.token_serial,
            placed.key_id,
            placed.label,
            placed.key_type,
            placed.model,
            model.module if model else None,
            deal_id,
        )

    def record(
        self, serial: str, *, actor: Actor, token_serial: str, csr: bytes, months: int | None = None
    ) -> Certificate:
        """Issue the renewal of ``serial`` for the key pair on token ``token_serial``, proven by ``csr`` (signed
        there by its private key), recorded as not yet on the key, placed beside that key pair."""
        self._renewal.check_months(months)
        proven = self._issuance.checked_key(csr_public_key(csr))  # its signature checked
        with self._ctx.denials_recorded(actor, ATTEMPT, SUBJECT, serial), self._ctx.write() as s:
            actor, old = self._renewal.admit(s, serial, actor, lock=True)
            deal_id = self._renewal.carried_out_by(s, old, actor, Deal.RENEW)
            placed = self._placed(s, old, token_serial, lock=True)
            if spki_sha256(proven) != old.spki_sha256:
                raise ValidationError(
                    [
                        FieldError(
                            "csr",
                            f"the key pair on token {token_serial} with id {placed.key_id} is not certificate "
                            f"{old.serial}'s: a renewal certifies the same key pair again",
                            "USB Key中的密钥与原证书不符",
                        )
                    ]
                )
            cert = self._renewal.renew_locked(
                s, old, actor, deal_id, months=months, onto_token=placed.token_id
            )
            assert cert.id is not None
            s.add(
                TokenCertificate(
                    certificate_id=cert.id,
                    token_id=placed.token_id,
                    key_id=placed.key_id,
                    label=placed.label,
                    model=placed.model,
                    key_type=placed.key_type,
                )
            )
            s.flush()
            return cert

    def pending(self, serial: str, *, actor: Actor) -> WaitingRenewal:
        """The renewal of ``serial`` recorded for its key and not yet delivered (for a resume)."""
        with self._ctx.denials_recorded(actor, ATTEMPT, SUBJECT, serial), self._ctx.read() as s:
            actor, old = self._renewal.admit(s, serial, actor, lock=False)
            found = self._waiting(s, old, lock=False)
            new, placement, token_serial = found
            self._may_deliver(s, new, actor, lock=False)
        model = self._ctx.policies.tokens.model(placement.model)
        assert new.request_id is not None
        return WaitingRenewal(
            old.serial,
            new.serial,
            new.der,
            old.der,
            new.request_id,
            token_serial,
            placement.key_id,
            placement.label,
            placement.key_type,
            new.not_valid_after,
            model.module if model else None,
            placement.model,
        )

    def deliver(
        self, serial: str, *, actor: Actor, token_serial: str, renewal: str, resumed: bool = False
    ) -> RenewedOntoKey:
        """The desk wrote the renewal onto the key and read it back: delivered, the token issued to the unit,
        a renew deal's request 'issued'; one transaction."""
        with self._ctx.denials_recorded(actor, ATTEMPT, SUBJECT, serial), self._ctx.write() as s:
            actor, old = self._renewal.admit(s, serial, actor, lock=False)
            new, placement, on_token = self._waiting(s, old, lock=True)
            if (new.serial, on_token) != (renewal.strip().upper(), token_serial):
                raise ConflictError(
                    f"certificate {old.serial}'s renewal {new.serial} waits for token {on_token}, not "
                    f"{renewal} on {token_serial}",
                    message_zh="证书或USB Key与签发记录不符",
                )
            req = self._may_deliver(s, new, actor, lock=True)
            state = s.exec(select(UsbToken.state).where(UsbToken.serial == on_token).with_for_update()).one()
            now = self._ctx.now()
            unit, credential = new.unit_name, new.credential_number
            record_delivery(s, new, on_token, TokenState(state), unit, credential, by=actor.username, at=now)
            details = {
                "token": on_token,
                "key_id": placement.key_id,
                "renewed_from": old.serial,
                "resumed": resumed,
            }
            if req is not None:
                self._renewal.mark_carried_out(s, req, new, actor, details)
            else:
                audit.append(
                    s,
                    at=now,
                    actor=actor.username,
                    action="certificate.deliver",
                    subject_type=SUBJECT,
                    subject_id=new.serial,
                    details={"request": new.request_id, **details},
                )
            assert new.request_id is not None
            return RenewedOntoKey(
                new.serial,
                old.serial,
                new.request_id,
                on_token,
                placement.label,
                placement.key_id,
                placement.key_type,
                new.not_valid_after,
                resumed,
            )

    # -- checks ------------------------------------------------------------------------------------------

    def _may_carry_out(self, s: Session, deal_id: int, actor: Actor) -> CertificateRequest:
        """:meth:`RequestService.lock_for`'s checks for 'issue' on the deal's request, without the lock (a
        read): role on the deal's type, scope, separation of duties, state."""
        workflow = self._ctx.policies.workflow
        require_role(workflow, actor, Action.ISSUE)
        req = self._requests.get_in_scope(s, deal_id, actor)
        require_role(workflow, actor, Action.ISSUE, req.deal)
        self._requests.refuse_conflicting(s, deal_id, actor, Action.ISSUE)
        transition(req.state, Action.ISSUE, workflow.route(req.deal))
        return req

    def _may_deliver(
        self, s: Session, new: Certificate, actor: Actor, *, lock: bool
    ) -> CertificateRequest | None:
        """Who may finish a renewal: for a renew deal's, what issuing for the deal needs (its request, locked
        with ``lock``, returned); for a direct one, the renew operation."""
        assert new.request_id is not None
        req = s.exec(select(CertificateRequest).where(CertificateRequest.id == new.request_id)).one()
        if req.deal is Deal.RENEW and req.state is RequestState.APPROVED:
            if lock:
                return self._requests.lock_for(s, new.request_id, actor, Action.ISSUE, None)
            return self._may_carry_out(s, new.request_id, actor)
        require_operation(self._ctx.policies.workflow, actor, "renew")
        return None

    def _placed(self, s: Session, old: Certificate, token_serial: str | None, *, lock: bool) -> _Placed:
        """The USB key holding ``old``'s key pair, usable, and the one presented (``token_serial``, if given);
        no renewal of ``old`` issued yet (one waiting for the key is named with --resume)."""
        stmt = (
            select(TokenCertificate, UsbToken.serial, UsbToken.state, UsbToken.holder_credential)
            .join(UsbToken, col(UsbToken.id) == col(TokenCertificate.token_id))
            .where(TokenCertificate.certificate_id == old.id)
        )
        row = s.exec(stmt.with_for_update(of=UsbToken) if lock else stmt).first()
        if row is None:
            raise ConflictError(
                f"certificate {old.serial} is on no USB key the center recorded: renew it without "
                "--token-label/--token-serial",
                message_zh="该证书不在登记的USB Key中，请不指定USB Key续期",
            )
        placement, on_token, state, holder = row
        self._refuse_renewed(s, old, on_token)
        if not old.delivered:
            raise ConflictError(
                f"certificate {old.serial} is not on its USB key yet: finish its issuance first "
                f"('pkictl issue {old.request_id} --resume')",
                message_zh="证书尚未写入USB Key",
            )
        if token_serial is not None and token_serial != on_token:
            raise not_this_token(old.serial, on_token, token_serial)
        refuse_token(on_token, TokenState(state), holder, old.credential_number)
        return _Placed(
            placement.token_id,
            on_token,
            placement.key_id,
            placement.label,
            placement.model,
            placement.key_type,
        )

    @staticmethod
    def _refuse_renewed(s: Session, old: Certificate, on_token: str) -> None:
        found = s.exec(
            select(Certificate.serial, Certificate.delivered, Certificate.status).where(
                Certificate.renewed_from_id == old.id
            )
        ).first()
        if found is None:
            return
        successor, delivered, status = found
        if not delivered and status is CertificateStatus.VALID:
            raise ConflictError(
                f"certificate {old.serial}'s renewal {successor} is issued but not yet on USB key {on_token}: "
                f"finish it with 'pkictl renew {old.serial} --token-serial {on_token} --resume'",
                message_zh="续期证书已签发但尚未写入USB Key，请使用 --resume 完成",
            )
        raise IssuanceError(
            f"certificate {old.serial} was already renewed as {successor}", message_zh="该证书已更新过"
        )

    @staticmethod
    def _waiting(s: Session, old: Certificate, *, lock: bool) -> tuple[Certificate, TokenCertificate, str]:
        """``old``'s renewal recorded for a key and not delivered, its placement and token serial."""
        stmt = (
            select(Certificate, TokenCertificate, UsbToken.serial)
            .join(TokenCertificate, col(TokenCertificate.certificate_id) == col(Certificate.id))
            .join(UsbToken, col(UsbToken.id) == col(TokenCertificate.token_id))
            .where(
                Certificate.renewed_from_id == old.id,
                col(Certificate.delivered).is_(False),
                Certificate.status == CertificateStatus.VALID,
            )
        )
        row = s.exec(stmt.with_for_update(of=Certificate) if lock else stmt).first()
        if row is None:
            raise NotFoundError(
                f"certificate {old.serial} has no renewal waiting to be written to its USB key",
                message_zh="该证书没有待写入USB Key的续期证书",
            )
        return row[0], row[1], row[2]
