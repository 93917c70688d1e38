"""Handing a certificate (on its USB key) over to the unit: the 分发员's last step.

A first certificate moves its request from 'issued' to 'distributed'. A renewal's certificate (the request is
already distributed) is handed over the same way; with ca.toml ``revoke_superseded = "distribute"`` its
predecessor is revoked as superseded at that moment, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from pki import audit
from pki.enums import Action, CertificateStatus, Deal, RequestState, RevocationReason
from pki.errors import ConflictError, FieldError, NotFoundError, ValidationError
from pki.ids import known_id
from pki.models import Certificate, CertificateRequest, HandOver
from pki.services.authz import require_role
from pki.services.context import Actor, Context
from pki.services.reasons import parse_reason
from pki.services.requests import SUBJECT as REQUEST
from pki.services.requests import RequestService, missing_request
from pki.services.revocation import RevocationService
from pki.services.scope import require_in_scope, scope_for

RECIPIENT_MAX = 64


@dataclass(frozen=True)
class Distributed:
    request_id: int
    serial: str
    recipient: str
    superseded_revoked: str | None  # the predecessor revoked at this hand-over, if any


class DistributionService:
    def __init__(self, ctx: Context, requests: RequestService, revocation: RevocationService) -> None:
        self._ctx = ctx
        self._requests = requests
        self._revocation = revocation

    def distribute(self, request_id: int, *, recipient: str, actor: Actor) -> Distributed:
        """Record the hand-over of the request's newest delivered certificate not yet handed over."""
        known_id(request_id)
        recipient = " ".join(recipient.split())
        if not recipient or len(recipient) > RECIPIENT_MAX:
            raise ValidationError(
                [
                    FieldError(
                        "recipient",
                        f"the recipient's name is required (at most {RECIPIENT_MAX} characters)",
                        "领取人姓名：必填，且不超过64个字符",
                    )
                ]
            )
        with (
            self._ctx.denials_recorded(actor, Action.DISTRIBUTE.value, REQUEST, request_id),
            self._ctx.write() as s,
        ):
            state = s.exec(
                select(CertificateRequest.state).where(CertificateRequest.id == request_id)
            ).first()
            if state is RequestState.DISTRIBUTED:
                req = self._lock_renewed(s, request_id, actor)
            else:
                req = self._requests.lock_for(s, request_id, actor, Action.DISTRIBUTE, None)
            cert = self._to_hand_over(s, request_id)
            now = self._ctx.now()
            assert cert.id is not None
            s.add(
                HandOver(
                    certificate_id=cert.id,
                    request_id=request_id,
                    recipient=recipient,
                    handed_by=actor.username,
                    handed_at=now,
                )
            )
            # a later hand-over on a distributed request is a direct renewal's, whatever the request's deal
            deal = Deal.NEW if state is RequestState.DISTRIBUTED else req.deal
            revoked = self._revoke_predecessor(s, cert, actor, deal)
            details = {"serial": cert.serial, "recipient": recipient, "superseded_revoked": revoked}
            if state is RequestState.DISTRIBUTED:
                audit.append(
                    s,
                    at=now,
                    actor=actor.username,
                    action="certificate.distribute",
                    subject_type="certificate",
                    subject_id=cert.serial,
                    details={"request": request_id, **details},
                )
            else:
                req.distributed_by, req.distributed_at = actor.username, now
                self._requests.advance(s, req, actor, Action.DISTRIBUTE, details)
            s.flush()
            return Distributed(request_id, cert.serial, recipient, revoked)

    def _lock_renewed(self, s: Session, request_id: int, actor: Actor) -> CertificateRequest:
        """A distributed request may hand over a renewal: same role and duty checks as a first hand-over."""
        require_role(self._ctx.policies.workflow, self._ctx.resolve(s, actor), Action.DISTRIBUTE, Deal.NEW)
        req = s.exec(
            select(CertificateRequest).where(CertificateRequest.id == request_id).with_for_update()
        ).one()
        require_in_scope(
            scope_for(s, actor), req.point_id, missing_request(request_id), f"request {request_id}"
        )
        self._requests.refuse_conflicting(s, request_id, actor, Action.DISTRIBUTE)
        return req

    @staticmethod
    def _to_hand_over(s: Session, request_id: int) -> Certificate:
        handed = select(HandOver.certificate_id)
        cert = s.exec(
            select(Certificate)
            .where(
                Certificate.request_id == request_id,
                col(Certificate.id).not_in(handed),
                Certificate.status == CertificateStatus.VALID,
            )
            .order_by(col(Certificate.id).desc())
            .with_for_update()
        ).first()
        if cert is None:
            raise NotFoundError(
                f"request {request_id} has no certificate waiting to be handed over",
                message_zh="该申请没有待分发的证书",
            )
        if not cert.delivered:
            raise ConflictError(
                f"certificate {cert.serial} is not on its USB key yet: finish 'pkictl issue {request_id} --resume'",
                message_zh="证书尚未写入USB Key，不能分发",
            )
        return cert

    def _revoke_predecessor(self, s: Session, cert: Certificate, actor: Actor, deal: Deal) -> str | None:
        """The certificate the handed-over one follows, revoked now when policy says so: a change's
        (ca.toml [change] revoke_reason), a renewal's when [renewal] revoke_superseded is "distribute"."""
        ca = self._ctx.policies.ca
        if deal is Deal.CHANGE:
            why = parse_reason(ca.change_revoke_reason)
        elif deal in (Deal.NEW, Deal.RENEW, Deal.REKEY) and ca.revoke_superseded == "distribute":
            why = RevocationReason.SUPERSEDED
        else:
            return None
        if cert.renewed_from_id is None:
            return None
        old = s.exec(
            select(Certificate).where(Certificate.id == cert.renewed_from_id).with_for_update()
        ).one()
        if old.status is not CertificateStatus.VALID:
            return None
        self._revocation.revoke_locked(s, [old], why, actor=actor, comment=f"superseded by {cert.serial}")
        return old.serial
