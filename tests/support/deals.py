"""Deals walked through the steps their type needs (policies/workflow.toml [deals])."""

from __future__ import annotations

from typing import Any

from pki.enums import NEW_KEY_DEALS, Action, Deal, RequestState
from pki.services import Actor, Service
from tests.support.data import attach_required_scans


def deal_approved(
    service: Service,
    people: dict[str, Actor],
    deal: Deal,
    serial: str,
    *,
    enter_as: str = "clerk2",
    usbkey_model: str = "飞天诚信 ePass3003",
    confirm_uscc: bool = False,
    **fields: Any,
) -> int:
    """Enter a deal on certificate ``serial`` and take it through acceptance (and the countersignature and
    review its type needs) to 'approved'; its request id."""
    req = service.deals.open(deal, serial, actor=people[enter_as], **fields)
    assert req.id is not None and req.deal is deal and req.state is RequestState.ENTERED
    attach_required_scans(service, req.id, people[enter_as])
    service.requests.accept(
        req.id,
        actor=people["acceptor2"],
        agree=True,
        usbkey_model=usbkey_model if deal in NEW_KEY_DEALS else "",
        confirm_uscc=confirm_uscc,
    )
    if service.requests.get(req.id).state is RequestState.ACCEPTED:
        service.requests.countersign(req.id, actor=people["head"])
    if service.requests.get(req.id).state is RequestState.COUNTERSIGNED:
        service.requests.review(req.id, actor=people["reviewer2"], decision=Action.APPROVE)
    assert service.requests.get(req.id).state is RequestState.APPROVED
    return req.id
