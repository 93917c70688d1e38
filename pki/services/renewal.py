"""Renewing a certificate: same unit, same kind, new validity, linked to the old one."""

from __future__ import annotations

from cryptography import x509
from sqlmodel import Session, select

from pki.ca import certs
from pki.ca.keys import PublicKey
from pki.enums import Action, Deal, RevocationReason
from pki.errors import FieldError, IssuanceError, ValidationError
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
        """
        if months is not None and months not in self._ctx.policies.form.validity_months:
            allowed = ", ".join(map(str, self._ctx.policies.form.validity_months))
            raise ValidationError([FieldError("months", f"must be one of {allowed}", "有效期无效")])
        new_key = self._issuance.checked_key(csr_public_key(csr)) if csr is not None else None
        with self._ctx.denials_recorded(actor, "renew", "certificate", serial), self._ctx.write() as s:
            actor = self._ctx.resolve(s, actor)
            deals = (Deal.RENEW, Deal.REKEY)
            require_operation_or_deal(self._ctx.policies.workflow, actor, "renew", Action.ISSUE, deals)
            old = CertificateService.get_in(s, serial, lock=True, actor=actor)
            deal = Deal.REKEY if csr is not None else Deal.RENEW
            deal_id = self._deals.approved(s, deal, old)
            if deal_id is not None:
                if months is not None:
                    raise ValidationError(
                        [FieldError("months", "the deal says the months", "有效期以业务申请为准")]
                    )
                return self._carry_out(s, deal_id, old, new_key, actor)
            if not self._ctx.policies.workflow.operation_allows(actor.roles, "renew"):
                raise missing_deal(deal, old.serial, actor)
            check_renewable(self._ctx.policies.ca, old, self._ctx.now())
            req = s.exec(
                select(CertificateRequest).where(CertificateRequest.id == old.request_id).with_for_update()
            ).one()
            key = new_key or self._old_key(old)
            successor = s.exec(
                select(Certificate.serial).where(Certificate.renewed_from_id == old.id)
            ).first()
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

    def _carry_out(
        self, s: Session, deal_id: int, old: Certificate, new_key: PublicKey | None, actor: Actor
    ) -> Certificate:
        req = self._requests.lock_for(s, deal_id, actor, Action.ISSUE, None)
        issued = self._issuance.issue_locked(s, req, new_key or self._old_key(old), actor=actor)
        req.issued_by, req.issued_at = actor.username, issued.issued_at
        self._requests.advance(s, req, actor, Action.ISSUE, {"serial": issued.serial})
        return issued

    def _old_key(self, old: Certificate) -> PublicKey:
        return self._issuance.checked_key(certs.public_key_of(x509.load_der_x509_certificate(old.der)))
