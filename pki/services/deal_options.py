"""What the pages offer for the desk's deals, read from the rules that act on them.

Which deals an actor may enter on a certificate now, which of revoke, hold and release they may carry out on
the server from the certificate's page, the record a change starts from, and the words for the approved queue.
Reads only: every answer comes from the checks DealService, RevocationService and RequestService run when
acting (called here, not restated), so a page offers what the service would do; the service checks again when
it acts, since the certificate may change in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sqlmodel import Session, col, select

from pki.enums import (
    ISSUING_DEALS,
    QUEUE_LABELS_ZH,
    Action,
    Deal,
    RequestState,
    RevocationReason,
)
from pki.errors import NotFoundError, PkiError
from pki.lifecycle import TERMINAL
from pki.models import Certificate, CertificateRequest
from pki.services.certificates import CertificateService, effective_status
from pki.services.context import Actor, Context
from pki.services.deals import DealService, KeyOf
from pki.services.requests import RequestService
from policies.workflow import WorkflowPolicy

# The deals a person enters on a certificate (a new application has its own form).
CERTIFICATE_DEALS: tuple[Deal, ...] = tuple(d for d in Deal if d is not Deal.NEW)


@dataclass(frozen=True)
class ServerStep:
    """One of the steps carried out on the server from the certificate's page: revoke, hold, release."""

    operation: str  # the workflow.toml [operations] entry that lets a role act without a deal
    deal: Deal  # the deal type it carries out
    needs: frozenset[str]  # the certificate's effective status it needs


SERVER_STEPS: Mapping[str, ServerStep] = MappingProxyType(
    {
        "revoke": ServerStep("revoke", Deal.REVOKE, frozenset({"valid", "held"})),
        "hold": ServerStep("hold", Deal.HOLD, frozenset({"valid"})),
        "release": ServerStep("hold", Deal.RELEASE, frozenset({"held"})),
    }
)


@dataclass(frozen=True)
class OpenDeal:
    """A deal on the certificate that has not ended yet: no other deal may be entered on it meanwhile."""

    request_id: int
    deal: Deal
    state: RequestState


@dataclass(frozen=True)
class CarryOut:
    """A server step the actor may take on the certificate now."""

    step: str  # a key of SERVER_STEPS
    deal_request_id: int | None  # the approved deal it completes; None: the actor's roles act without one
    reason: RevocationReason | None  # an approved revoke deal's reason (without a deal the actor chooses)


@dataclass(frozen=True)
class CertificateDeals:
    """The deals of one certificate as its page shows them to one actor."""

    status: str  # effective status: valid, held, revoked, expired
    key: KeyOf | None  # the USB key it was written onto
    open_deal: OpenDeal | None
    startable: tuple[Deal, ...]  # the deals the actor may enter on it now
    unavailable: Mapping[
        Deal, str
    ]  # deals the actor's roles may enter but the certificate does not allow: why
    carry_out: Mapping[str, CarryOut]  # by step (revoke, hold, release)


class DealOptionsService:
    def __init__(self, ctx: Context, deals: DealService, requests: RequestService) -> None:
        self._ctx = ctx
        self._deals = deals
        self._requests = requests

    def for_certificate(self, serial: str, *, actor: Actor) -> CertificateDeals:
        """The deals ``actor`` may enter on the certificate ``serial`` and the server steps they may take on it
        now. Raises NotFoundError (a certificate outside the actor's scope too) or ValidationError (serial)."""
        with self._ctx.denials_recorded(actor, "show", "certificate", serial[:64]), self._ctx.read() as s:
            cert = CertificateService.get_in(s, serial, actor=actor)
            me = self._ctx.resolve(s, actor, quiet=True)
            wf = self._ctx.policies.workflow
            open_deal = self._open_deal(s, cert)
            startable: list[Deal] = []
            unavailable: dict[Deal, str] = {}
            for deal in CERTIFICATE_DEALS:
                if not wf.role_allows(me.roles, Action.ENTER, deal):
                    continue
                try:
                    self._deals.check(s, deal, cert)
                except PkiError as e:
                    unavailable[deal] = e.message_zh
                    continue
                if open_deal is None:
                    startable.append(deal)
            status = effective_status(cert, self._ctx.now())
            return CertificateDeals(
                status=status,
                key=DealService.key_of(s, cert),
                open_deal=open_deal,
                startable=tuple(startable),
                unavailable=MappingProxyType(unavailable),
                carry_out=MappingProxyType(self._carry_out(s, wf, me, cert, status)),
            )

    def application_of(self, serial: str, *, actor: Actor) -> CertificateRequest:
        """The unit's record the certificate ``serial`` was issued on (a change deal starts from it). Raises
        NotFoundError."""
        with self._ctx.denials_recorded(actor, "show", "certificate", serial[:64]), self._ctx.read() as s:
            cert = CertificateService.get_in(s, serial, actor=actor)
            original = s.get(CertificateRequest, cert.request_id) if cert.request_id is not None else None
            if original is None:
                raise NotFoundError(
                    f"certificate {cert.serial} has no application on record", message_zh="该证书无申请记录"
                )
            return original

    def queue_labels(self, actor: Actor) -> dict[RequestState, str]:
        """The work queues' names for ``actor``: an approved request waits to be issued (待签发) or, for a deal
        that issues nothing, to be carried out (待办理); the name says which of the two the actor does."""
        return queue_labels(self._ctx.policies.workflow, actor.roles)

    # -- parts ----------------------------------------------------------------------------------------

    @staticmethod
    def _open_deal(s: Session, cert: Certificate) -> OpenDeal | None:
        row = s.exec(
            select(CertificateRequest.id, CertificateRequest.deal, CertificateRequest.state)
            .where(
                CertificateRequest.subject_certificate_id == cert.id,
                col(CertificateRequest.state).not_in(TERMINAL),
            )
            .order_by(col(CertificateRequest.id))
        ).first()
        if row is None:
            return None
        rid, deal, state = row
        assert rid is not None
        return OpenDeal(rid, Deal(deal), RequestState(state))

    def _carry_out(
        self, s: Session, wf: WorkflowPolicy, me: Actor, cert: Certificate, status: str
    ) -> dict[str, CarryOut]:
        """As RevocationService acts: an approved deal of the step's type is carried out (by whoever may
        complete it, duties allowing); without one, only the roles of the step's operation act."""
        out: dict[str, CarryOut] = {}
        for name, step in SERVER_STEPS.items():
            if status not in step.needs:
                continue
            found = DealService.approved_many(s, step.deal, [cert]).get(cert.id or 0)
            if found is None:
                if wf.operation_allows(me.roles, step.operation):
                    out[name] = CarryOut(name, None, None)
                continue
            rid, reason = found
            earlier = RequestService.actions_by_many(s, [rid], me.username).get(rid, set())
            if (
                wf.role_allows(me.roles, Action.COMPLETE, step.deal)
                and wf.conflict(earlier, Action.COMPLETE) is None
            ):
                why = RevocationReason(reason) if step.deal is Deal.REVOKE and reason else None
                out[name] = CarryOut(name, rid, why)
        return out


def queue_labels(workflow: WorkflowPolicy, roles: Iterable[str]) -> dict[RequestState, str]:
    """:meth:`DealOptionsService.queue_labels` for ``roles``."""
    roles = frozenset(roles)
    issues = any(workflow.role_allows(roles, Action.ISSUE, d) for d in ISSUING_DEALS)
    completes = any(workflow.role_allows(roles, Action.COMPLETE, d) for d in Deal if d not in ISSUING_DEALS)
    approved = "待签发/待办理" if issues and completes else "待办理" if completes else "待签发"
    return {**QUEUE_LABELS_ZH, RequestState.APPROVED: approved}
