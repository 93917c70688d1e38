"""The desk's deals (业务类型) other than a new application.

Each deal is a request of its own type (renew, rekey, change, replace-lost, replace-damaged, unlock, hold,
release, revoke), linked to the certificate (and so the USB key) it concerns, through the one state machine
with the steps policies/workflow.toml [deals] gives its type. Entering one checks what the deal needs of its
certificate now; the step that carries it out (issuance, `pkictl token unlock`, hold, release, revoke) checks
it again inside its own transaction, since a certificate may have changed in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from pki.application import ALL_FIELDS, validate_application
from pki.ca.validity import add_months
from pki.enums import (
    DAMAGED_KEY_FATES,
    DEAL_LABELS_ZH,
    Action,
    Deal,
    RequestState,
    RevocationReason,
)
from pki.errors import (
    ConflictError,
    FieldError,
    IssuanceError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from pki.lifecycle import TERMINAL
from pki.models import Certificate, CertificateRequest, TokenCertificate, UsbToken
from pki.services.authz import require_role
from pki.services.certificates import CertificateService, effective_status
from pki.services.context import Actor, Context
from pki.services.points import point_for_new_work
from pki.services.reasons import check_comment, parse_reason
from pki.services.renewal_window import check_renewable
from pki.services.requests import SUBJECT, RequestService, request_in_scope
from pki.services.scope import scope_for

# What each deal needs of its certificate's effective status (services/certificates.effective_status).
_NEEDS_STATUS: Mapping[Deal, frozenset[str]] = {
    Deal.RENEW: frozenset({"valid", "expired"}),
    Deal.REKEY: frozenset({"valid", "expired"}),
    Deal.CHANGE: frozenset({"valid"}),
    Deal.REPLACE_LOST: frozenset({"valid", "held"}),
    Deal.REPLACE_DAMAGED: frozenset({"valid", "held"}),
    Deal.UNLOCK: frozenset({"valid", "held"}),
    Deal.HOLD: frozenset({"valid"}),
    Deal.RELEASE: frozenset({"held"}),
    Deal.REVOKE: frozenset({"valid", "held"}),
}
_STATUS_ZH = {"valid": "有效", "held": "已冻结", "revoked": "已吊销", "expired": "已过期"}
# The deals about the key itself: the certificate must be on a USB key the center recorded.
_ON_A_KEY = frozenset({Deal.REPLACE_LOST, Deal.REPLACE_DAMAGED, Deal.UNLOCK})
# The fields a change may not touch: another credit code is another unit, another kind another application.
_FIXED_BY_CHANGE = ("credential_number", "access_type")


@dataclass(frozen=True)
class DealTerms:
    """What issuing for a deal does beyond a new issuance (services/issuance.py applies it)."""

    predecessor: Certificate  # locked; the new certificate's renewed_from
    months_from: datetime | None  # the months count from here (a renewal's carry-over), else from now
    not_after: datetime | None  # kept as is (a damaged key replaced within its warranty)
    revoke_at_issue: RevocationReason | None  # the predecessor revoked in the issuing transaction
    old_key_mark: str | None  # tokens.toml [inventory] mark for the predecessor's key (lost, returned, …)
    old_token_id: int | None  # the predecessor's key: a replacement never goes onto it
    same_key: bool  # a renewal certifies the predecessor's public key again; the others need a new one


@dataclass(frozen=True)
class KeyOf:
    """The USB key a certificate was written onto."""

    token_id: int
    serial: str
    state: str
    first_issued: datetime  # the first certificate issued onto it: its warranty counts from here


@dataclass(frozen=True)
class DealSubject:
    """What a deal concerns, as its request page and `pkictl request show` present it."""

    serial: str
    status: str  # effective: valid, held, revoked, expired
    not_valid_after: datetime
    token_serial: str | None  # the USB key it is on, if the center recorded one
    token_state: str | None


class DealService:
    def __init__(self, ctx: Context, requests: RequestService) -> None:
        self._ctx = ctx
        self._requests = requests

    def open(
        self,
        deal: Deal,
        serial: str,
        *,
        actor: Actor,
        application: Mapping[str, Any] | None = None,
        months: int | None = None,
        reason: str = "",
        comment: str = "",
        point: str | None = None,
    ) -> CertificateRequest:
        """Enter a deal for the certificate ``serial``: a request of type ``deal`` carrying the unit's record
        (the certificate's application; for a change, ``application`` with the changed details), in the
        actor's point. ``reason``: a revocation reason (revoke) or what became of a damaged key (returned,
        destroyed); ``months``: a renewal's validity. Raises ValidationError naming the field, ConflictError
        while another deal on the certificate is open, IssuanceError when the certificate does not allow it."""
        if deal is Deal.NEW:
            raise ValidationError(
                [
                    FieldError(
                        "type", "a new application is entered with its form (--file)", "新办请填写申请表"
                    )
                ]
            )
        comment = check_comment(comment)
        stored_reason = self._reason(deal, reason)
        self._check_months(deal, months)
        if application is not None and deal is not Deal.CHANGE:
            raise ValidationError(
                [
                    FieldError(
                        "application", "only a change deal carries a new form", "仅变更业务需填写新申请表"
                    )
                ]
            )
        if application is None and deal is Deal.CHANGE:
            raise ValidationError(
                [
                    FieldError(
                        "application", "a change deal needs the changed form", "变更业务须填写变更后的申请表"
                    )
                ]
            )
        with self._ctx.denials_recorded(actor, Action.ENTER.value, SUBJECT), self._ctx.write() as s:
            actor = self._ctx.resolve(s, actor)
            require_role(self._ctx.policies.workflow, actor, Action.ENTER, deal)
            cert = CertificateService.get_in(s, serial, lock=True, actor=actor)
            point_id = point_for_new_work(s, scope_for(s, actor), point)
            self._refuse_open_deal(s, cert)
            self.check(s, deal, cert)
            values = self._application(s, deal, cert, application, months)
            values |= {
                "deal": deal,
                "subject_certificate_id": cert.id,
                "deal_reason": stored_reason,
                "deal_comment": comment,
            }
            return self._requests.insert_validated(
                s, values, actor=actor, point_id=point_id, details={"deal": deal.value, "serial": cert.serial}
            )

    def subject(self, request_id: int, *, actor: Actor | None = None) -> DealSubject | None:
        """The certificate and key request ``request_id`` is a deal on (None for a new application)."""
        with self._ctx.denials_recorded(actor, "show", SUBJECT, request_id), self._ctx.read() as s:
            req = request_in_scope(s, request_id, actor)
            if req.subject_certificate_id is None:
                return None
            cert = s.exec(select(Certificate).where(Certificate.id == req.subject_certificate_id)).one()
            key = self.key_of(s, cert)
            return DealSubject(
                cert.serial,
                effective_status(cert, self._ctx.now()),
                cert.not_valid_after,
                key.serial if key else None,
                key.state if key else None,
            )

    # -- the rules a deal's certificate must meet -----------------------------------------------------------

    def check(self, s: Session, deal: Deal, cert: Certificate) -> KeyOf | None:
        """What ``deal`` needs of ``cert`` now (its status, its renewal window, its key); the key it is on."""
        now = self._ctx.now()
        status = effective_status(cert, now)
        if status not in _NEEDS_STATUS[deal]:
            raise IssuanceError(
                f"certificate {cert.serial} is {status}: a {deal.value} deal needs it "
                f"{' or '.join(sorted(_NEEDS_STATUS[deal]))}",
                message_zh=f"证书{_STATUS_ZH[status]}，不能办理{DEAL_LABELS_ZH[deal]}",
            )
        if not cert.delivered and deal is not Deal.UNLOCK:  # a locked key may hold one waiting for it
            raise ConflictError(
                f"certificate {cert.serial} is not on its USB key yet: finish its issuance first",
                message_zh="证书尚未写入USB Key",
            )
        if deal in (Deal.RENEW, Deal.REKEY):
            check_renewable(self._ctx.policies.ca, cert, now)
            successor = s.exec(
                select(Certificate.serial).where(Certificate.renewed_from_id == cert.id)
            ).first()
            if successor is not None:
                raise IssuanceError(
                    f"certificate {cert.serial} was already renewed as {successor}",
                    message_zh="该证书已更新过",
                )
        key = self.key_of(s, cert)
        if deal in _ON_A_KEY and key is None:
            raise IssuanceError(
                f"certificate {cert.serial} is on no USB key the center recorded: a {deal.value} deal is about "
                "the key",
                message_zh=f"该证书不在登记的USB Key中，不能办理{DEAL_LABELS_ZH[deal]}",
            )
        return key

    @staticmethod
    def key_of(s: Session, cert: Certificate) -> KeyOf | None:
        """The USB key ``cert`` was written onto, if it was."""
        row = s.exec(
            select(UsbToken.id, UsbToken.serial, UsbToken.state)
            .join(TokenCertificate, col(TokenCertificate.token_id) == col(UsbToken.id))
            .where(TokenCertificate.certificate_id == cert.id)
        ).first()
        if row is None:
            return None
        token_id, serial, state = row
        first = s.exec(
            select(Certificate.issued_at)
            .join(TokenCertificate, col(TokenCertificate.certificate_id) == col(Certificate.id))
            .where(TokenCertificate.token_id == token_id)
            .order_by(col(Certificate.issued_at))
        ).first()
        assert token_id is not None and first is not None
        return KeyOf(token_id, serial, str(state), first)

    @staticmethod
    def _refuse_open_deal(s: Session, cert: Certificate) -> None:
        open_deal = s.exec(
            select(CertificateRequest.id, CertificateRequest.deal).where(
                CertificateRequest.subject_certificate_id == cert.id,
                col(CertificateRequest.state).not_in(TERMINAL),
            )
        ).first()
        if open_deal is not None:
            rid, deal = open_deal
            raise ConflictError(
                f"certificate {cert.serial} already has an open {Deal(deal).value} deal (request {rid}): finish "
                "or cancel it first",
                message_zh=f"该证书已有在办业务（{DEAL_LABELS_ZH[Deal(deal)]}，申请 {rid}）",
            )

    @staticmethod
    def _reason(deal: Deal, reason: str) -> str:
        reason = reason.strip()
        if deal is Deal.REVOKE:
            return parse_reason(reason or RevocationReason.UNSPECIFIED.value).value
        if deal is Deal.REPLACE_DAMAGED:
            fate = reason or "returned"
            if fate not in DAMAGED_KEY_FATES:
                raise ValidationError(
                    [
                        FieldError(
                            "reason",
                            f"what became of the damaged key: {' or '.join(DAMAGED_KEY_FATES)}",
                            "损坏的USB Key须交回或销毁",
                        )
                    ]
                )
            return fate
        if reason:
            raise ValidationError(
                [
                    FieldError(
                        "reason",
                        "only a revoke deal (a revocation reason) and a replace-damaged deal (returned or "
                        "destroyed) take a reason; say more with a comment",
                        "仅注销和补办（损坏）业务需填写原因",
                    )
                ]
            )
        return ""

    def _check_months(self, deal: Deal, months: int | None) -> None:
        if months is None:
            return
        if deal not in (Deal.RENEW, Deal.REKEY):
            raise ValidationError(
                [FieldError("months", "only a renewal chooses its validity", "仅续期、更新业务可选择有效期")]
            )
        allowed = self._ctx.policies.form.validity_months
        if months not in allowed:
            raise ValidationError(
                [FieldError("months", f"must be one of {', '.join(map(str, allowed))}", "有效期无效")]
            )

    def _application(
        self,
        s: Session,
        deal: Deal,
        cert: Certificate,
        application: Mapping[str, Any] | None,
        months: int | None,
    ) -> dict[str, Any]:
        """The unit's record for the deal: the certificate's application as it stands, dated today; for a
        change, the new form, checked like any application, which may not change the unit or the kind."""
        original = s.get(CertificateRequest, cert.request_id) if cert.request_id is not None else None
        if original is None:
            raise NotFoundError(
                f"certificate {cert.serial} has no application on record", message_zh="该证书无申请记录"
            )
        kept = {k: getattr(original, k) for k in ALL_FIELDS}
        if application is None:
            return kept | {
                "application_date": self._ctx.today(),
                "validity_months": months or original.validity_months,
            }
        values = validate_application(application, policies=self._ctx.policies, today=self._ctx.today())
        for field in _FIXED_BY_CHANGE:
            if values[field] != kept[field]:
                raise ValidationError(
                    [
                        FieldError(
                            field,
                            "a change keeps the unit's credential number and the access type: apply anew",
                            "变更不能修改证件号码或接入类型，请重新申请",
                        )
                    ]
                )
        if all(values[k] == kept[k] for k in values if k != "application_date"):
            raise ValidationError([FieldError("application", "nothing changed", "没有变更任何内容")])
        return values

    # -- carrying out -----------------------------------------------------------------------------------

    def terms(
        self, s: Session, deal: Deal, subject_certificate_id: int | None, deal_reason: str
    ) -> DealTerms | None:
        """What issuing for a deal of type ``deal`` changes, checked again now; None for a new application.
        ``deal_reason``: the request's (for a damaged key, what became of it: its inventory mark)."""
        if deal is Deal.NEW:
            return None
        old = s.exec(
            select(Certificate).where(Certificate.id == subject_certificate_id).with_for_update()
        ).one()
        key = self.check(s, deal, old)
        now = self._ctx.now()
        ca = self._ctx.policies.ca
        running = old.not_valid_after > now
        if deal in (Deal.RENEW, Deal.REKEY):
            return DealTerms(
                predecessor=old,
                months_from=old.not_valid_after if ca.renewal_carry_over and running else None,
                not_after=None,
                revoke_at_issue=RevocationReason.SUPERSEDED
                if ca.revoke_superseded == "issue" and running
                else None,
                old_key_mark=None,
                old_token_id=None,
                same_key=deal is Deal.RENEW,
            )
        if deal is Deal.CHANGE:  # the old one is revoked at the new one's hand-over (distribution.py)
            return DealTerms(old, None, None, None, None, None, same_key=False)
        assert key is not None  # check() needs a key for a replacement
        if deal is Deal.REPLACE_LOST:
            why = RevocationReason.KEY_COMPROMISE
            return DealTerms(old, None, None, why, "lost", key.token_id, same_key=False)
        in_warranty = now < add_months(key.first_issued, ca.replacement_warranty_months)
        keeps = old.not_valid_after if in_warranty and running else None
        why = RevocationReason.SUPERSEDED
        return DealTerms(old, None, keeps, why, deal_reason, key.token_id, same_key=False)

    def approved(self, s: Session, deal: Deal, cert: Certificate) -> int | None:
        """The approved deal of type ``deal`` on ``cert`` waiting to be carried out, if there is one."""
        found = self.approved_many(s, deal, [cert]).get(cert.id or 0)
        return None if found is None else found[0]

    @staticmethod
    def approved_many(s: Session, deal: Deal, certs: Sequence[Certificate]) -> dict[int, tuple[int, str]]:
        """Certificate id -> (request id, reason) of the approved deal of type ``deal`` waiting on it."""
        ids = [c.id for c in certs if c.id is not None]
        out: dict[int, tuple[int, str]] = {}
        for i in range(0, len(ids), 500):
            for cert_id, rid, reason in s.exec(
                select(
                    CertificateRequest.subject_certificate_id,
                    CertificateRequest.id,
                    CertificateRequest.deal_reason,
                ).where(
                    col(CertificateRequest.subject_certificate_id).in_(ids[i : i + 500]),
                    CertificateRequest.deal == deal,
                    CertificateRequest.state == RequestState.APPROVED,
                )
            ).all():
                assert cert_id is not None and rid is not None
                out[cert_id] = (rid, reason)
        return out

    def complete(
        self, s: Session, request_id: int, actor: Actor, details: Mapping[str, Any]
    ) -> CertificateRequest:
        """Carry out an approved deal that issues nothing, inside the caller's transaction: role, duties and
        state checked on the locked request, which then completes."""
        req = self._requests.lock_for(s, request_id, actor, Action.COMPLETE, None)
        self._requests.advance(s, req, actor, Action.COMPLETE, dict(details))
        return req


def missing_deal(deal: Deal, serial: str, actor: Actor) -> PermissionDeniedError:
    """No approved deal of this type on the certificate, for an operator whose roles need one to act."""
    return PermissionDeniedError(
        f"user {actor.username!r} has no role that may {deal.value} without a deal: certificate {serial} has no "
        f"approved {deal.value} deal; enter one with 'pkictl request new --type {deal.value} --serial {serial}' "
        "and have it accepted",
        message_zh=f"该证书没有已批准的{DEAL_LABELS_ZH[deal]}业务，请先录入并受理",
    )
