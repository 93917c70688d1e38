"""Renewing a certificate: same unit, same kind, new validity, linked to the old one."""

from __future__ import annotations

from typing import Any

from cryptography import x509
from sqlmodel import Session, select

from pki.ca import certs
from pki.ca.keys import PublicKey
from pki.enums import Action, Deal, RevocationReason
from pki.errors import ConflictError, FieldError, IssuanceError, ValidationError
from pki.models import Certificate, CertificateRequest
from pki.services.authz import require_operation_or_deal
from pki.services.certificates import CertificateService
from pki.services.context import Actor, Context
from pki.services.deals import DealService, missing_deal
from pki.services.issuance import IssuanceService, csr_public_key
from pki.services.renewal_window import check_renewable
from pki.services.requests import RequestService
from pki.services.revocation import RevocationService


class RenewalService:
    def __init__(
        self,
        ctx: Context,
        issuance: IssuanceService,
        revocation: RevocationService,
        requests: RequestService,
        deals: DealService,
    ) -> None:
        self._ctx = ctx
        self._issuance = issuance
        self._revocation = revocation
        self._requests = requests
        self._deals = deals

    def renew(
        self, serial: str, *, actor: Actor, months: int | None = None, csr: bytes | None = None
    ) -> Certificate:
        """Issue the successor of a certificate inside its renewal window (ca.toml [renewal]: from
        ``window_days`` before it ends to ``after_expiry_days`` after).

        Without ``csr`` the old public key is certified again; with it (rekey) the new key is. Renewed before
        it ends, the months count from the old not-after when ``carry_over`` is on (the unit keeps what it
        paid for); after it ended, from now. Policy also says whether the old certificate is revoked as
        superseded.

        An approved renew deal (rekey, with ``csr``) on the certificate is carried out: the certificate is
        issued for the deal's request, which moves to 'issued' (then `pkictl distribute`), with the deal's
        months. Without one, only the roles workflow.toml [operations] renew names may renew directly.

        A certificate whose key pair is on a USB key the center recorded is renewed (same key) only onto that
        key (services/token_renewal.py): refused here, naming the option.
        """
        self.check_months(months)
        new_key = self._issuance.checked_key(csr_public_key(csr)) if csr is not None else None
        with self._ctx.denials_recorded(actor, "renew", "certificate", serial), self._ctx.write() as s:
            actor, old = self.admit(s, serial, actor, lock=True)
            deal_id = self.carried_out_by(s, old, actor, Deal.REKEY if csr is not None else Deal.RENEW)
            if new_key is None:
                self._refuse_key_held(s, old)
            return self.renew_locked(s, old, actor, deal_id, months=months, new_key=new_key)

    # -- the steps, for a renewal onto a USB key too (services/token_renewal.py) -----------------------------

    def check_months(self, months: int | None) -> None:
        if months is not None and months not in self._ctx.policies.form.validity_months:
            allowed = ", ".join(map(str, self._ctx.policies.form.validity_months))
            raise ValidationError([FieldError("months", f"must be one of {allowed}", "有效期无效")])

    def admit(self, s: Session, serial: str, actor: Actor, *, lock: bool) -> tuple[Actor, Certificate]:
        """The roles first (the renew operation, or the step that carries out a renew or rekey deal), then the
        certificate in the actor's scope (``lock``: FOR UPDATE). The actor as the user table says now."""
        actor = self._ctx.resolve(s, actor)
        deals = (Deal.RENEW, Deal.REKEY)
        require_operation_or_deal(self._ctx.policies.workflow, actor, "renew", Action.ISSUE, deals)
        return actor, CertificateService.get_in(s, serial, lock=lock, actor=actor)

    def carried_out_by(self, s: Session, old: Certificate, actor: Actor, deal: Deal) -> int | None:
        """The approved ``deal`` (renew or rekey) on ``old`` that this renewal carries out, or None for a
        direct renewal, which only the roles of [operations] renew may do: anyone else is sent to the deal."""
        deal_id = self._deals.approved(s, deal, old)
        if deal_id is None and not self._ctx.policies.workflow.operation_allows(actor.roles, "renew"):
            raise missing_deal(deal, old.serial, actor)
        return deal_id

    def renew_locked(
        self,
        s: Session,
        old: Certificate,
        actor: Actor,
        deal_id: int | None,
        *,
        months: int | None = None,
        new_key: PublicKey | None = None,
        onto_token: int | None = None,
    ) -> Certificate:
        """Issue the renewal of the locked ``old`` in the caller's transaction: for the approved deal
        ``deal_id`` (from :meth:`carried_out_by`), or directly. ``onto_token``: it goes onto that USB key (its
        inventory id), beside the old key pair: issued not yet delivered, and a deal's request moves to
        'issued' only when it is on the key (:meth:`mark_carried_out`)."""
        delivered = onto_token is None
        if deal_id is not None:
            if months is not None:
                raise ValidationError(
                    [FieldError("months", "the deal says the months", "有效期以业务申请为准")]
                )
            req = self._requests.lock_for(s, deal_id, actor, Action.ISSUE, None)
            key = new_key or self._old_key(old)
            issued = self._issuance.issue_locked(
                s, req, key, actor=actor, delivered=delivered, onto_token=onto_token
            )
            if delivered:
                self.mark_carried_out(s, req, issued, actor, {})
            return issued
        check_renewable(self._ctx.policies.ca, old, self._ctx.now())
        req = s.exec(
            select(CertificateRequest).where(CertificateRequest.id == old.request_id).with_for_update()
        ).one()
        key = new_key or self._old_key(old)
        successor = s.exec(select(Certificate.serial).where(Certificate.renewed_from_id == old.id)).first()
        if successor is not None:
            raise IssuanceError(
                f"certificate {old.serial} was already renewed as {successor}",
                message_zh="该证书已更新过",
            )
        carry = self._ctx.policies.ca.renewal_carry_over and old.not_valid_after > self._ctx.now()
        issued = self._issuance.issue_locked(
            s,
            req,
            key,
            actor=actor,
            months=months,
            months_from=old.not_valid_after if carry else None,
            renewed_from=old,
            delivered=delivered,
        )
        if self._ctx.policies.ca.revoke_superseded == "issue" and old.not_valid_after > self._ctx.now():
            self._revocation.revoke_locked(
                s,
                [old],
                RevocationReason.SUPERSEDED,
                actor=actor,
                comment=f"superseded by {issued.serial}",
            )
        return issued

    def mark_carried_out(
        self,
        s: Session,
        req: CertificateRequest,
        issued: Certificate,
        actor: Actor,
        details: dict[str, Any],
    ) -> None:
        """The deal's request (locked and admitted for 'issue') moves to 'issued' with its certificate."""
        req.issued_by, req.issued_at = actor.username, issued.issued_at
        self._requests.advance(s, req, actor, Action.ISSUE, {"serial": issued.serial, **details})

    def _refuse_key_held(self, s: Session, old: Certificate) -> None:
        """The same key renewed must reach the USB key holding it: the unit would leave with the old
        certificate only."""
        key = self._deals.key_of(s, old)
        if key is not None:
            raise ConflictError(
                f"certificate {old.serial} is on USB key {key.serial}: its renewal is written onto that key, "
                f"beside the same key pair; plug the key in and run 'pkictl renew {old.serial} "
                f"--token-serial {key.serial} --as USER' (or --token-label)",
                message_zh=f"该证书存于USB Key {key.serial}，续期证书须写入该USB Key，请插入后使用 --token-serial 办理",
            )

    def _old_key(self, old: Certificate) -> PublicKey:
        return self._issuance.checked_key(certs.public_key_of(x509.load_der_x509_certificate(old.der)))
