"""Each separation-of-duties rule, enforced by the service whatever roles a person holds.

'omni' holds every role, so only the duty rules can stop them.
"""

from __future__ import annotations

import itertools

import pytest

from pki.enums import Action, RequestState
from pki.errors import SeparationOfDutiesError
from pki.services import Actor, Service
from tests.support.data import application, make_uscc

_codes = itertools.count(10000000)


def _entered(service: Service, by: Actor) -> int:
    """A fresh request, each for its own unit (a unit may have one open request per kind and system)."""
    req = service.requests.create(
        application(credential_number=make_uscc("110101", str(next(_codes)))), actor=by
    )
    assert req.id is not None
    return req.id


def _accepted(service: Service, p: dict[str, Actor], *, entered_by: Actor, accepted_by: Actor) -> int:
    rid = _entered(service, entered_by)
    service.requests.accept(rid, actor=accepted_by, agree=True, usbkey_model="ePass3003")
    return rid


def _countersigned(service: Service, p: dict[str, Actor], **who: Actor) -> int:
    rid = _accepted(
        service,
        p,
        entered_by=who.get("entered_by", p["clerk"]),
        accepted_by=who.get("accepted_by", p["acceptor"]),
    )
    service.requests.countersign(rid, actor=who.get("head", p["head"]))
    return rid


@pytest.mark.parametrize("agree", [True, False], ids=["accept", "disagree"])
def test_enterer_may_not_accept(service: Service, people: dict[str, Actor], agree: bool) -> None:
    rid = _entered(service, people["omni"])
    with pytest.raises(SeparationOfDutiesError) as info:
        service.requests.accept(rid, actor=people["omni"], agree=agree, usbkey_model="ePass3003", comment="c")
    assert "entered" in info.value.message and "录入人" in info.value.message_zh
    assert service.requests.get(rid).state is RequestState.ENTERED
    denied = service.audit.recent(limit=1)[0]
    assert (denied.action, denied.actor, denied.subject_id) == ("security.denied", "omni", str(rid))
    assert '"code":"separation_of_duties"' in denied.details


def test_editor_counts_as_enterer(service: Service, people: dict[str, Actor]) -> None:
    rid = _entered(service, people["clerk"])
    service.requests.edit(rid, application(county="东城区"), actor=people["omni"])
    with pytest.raises(SeparationOfDutiesError):
        service.requests.accept(rid, actor=people["omni"], agree=True, usbkey_model="ePass3003")


@pytest.mark.parametrize("decision", [Action.APPROVE, Action.RETURN, Action.REJECT])
def test_enterer_may_not_review(service: Service, people: dict[str, Actor], decision: Action) -> None:
    rid = _countersigned(service, people, entered_by=people["omni"])
    with pytest.raises(SeparationOfDutiesError):
        service.requests.review(rid, actor=people["omni"], decision=decision, reason="r")
    assert service.requests.get(rid).state is RequestState.COUNTERSIGNED


def test_acceptor_may_not_countersign(service: Service, people: dict[str, Actor]) -> None:
    rid = _accepted(service, people, entered_by=people["clerk"], accepted_by=people["omni"])
    with pytest.raises(SeparationOfDutiesError) as info:
        service.requests.countersign(rid, actor=people["omni"])
    assert "acceptor" in info.value.message
    assert service.requests.get(rid).state is RequestState.ACCEPTED


@pytest.mark.parametrize("decision", [Action.APPROVE, Action.RETURN, Action.REJECT])
def test_acceptor_may_not_review(service: Service, people: dict[str, Actor], decision: Action) -> None:
    rid = _countersigned(service, people, accepted_by=people["omni"])
    with pytest.raises(SeparationOfDutiesError):
        service.requests.review(rid, actor=people["omni"], decision=decision, reason="r")


def test_voided_acceptance_still_bars_the_acceptor_from_review(
    service: Service, people: dict[str, Actor]
) -> None:
    rid = _accepted(service, people, entered_by=people["clerk"], accepted_by=people["omni"])
    service.requests.edit(rid, application(county="东城区"), actor=people["clerk"])
    service.requests.accept(rid, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    service.requests.countersign(rid, actor=people["head"])
    with pytest.raises(SeparationOfDutiesError):
        service.requests.review(rid, actor=people["omni"], decision=Action.APPROVE)


@pytest.mark.parametrize("decision", [Action.APPROVE, Action.RETURN])
def test_reviewer_may_not_issue_or_distribute(
    service: Service, people: dict[str, Actor], decision: Action
) -> None:
    rid = _countersigned(service, people)
    service.requests.review(rid, actor=people["omni"], decision=decision, reason="r")
    if decision is Action.RETURN:  # round again with another reviewer approving
        service.requests.edit(rid, application(county="东城区"), actor=people["clerk"])
        service.requests.accept(rid, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
        service.requests.countersign(rid, actor=people["head"])
        service.requests.review(rid, actor=people["reviewer"], decision=Action.APPROVE)
    assert Action.ISSUE not in service.requests.allowed_actions(rid, people["omni"])
    assert Action.ISSUE in service.requests.allowed_actions(rid, people["distributor"])


def test_enterer_may_countersign(service: Service, people: dict[str, Actor]) -> None:
    """Only the listed combinations are barred: the shipped policy lets the enterer countersign."""
    rid = _accepted(service, people, entered_by=people["omni"], accepted_by=people["acceptor"])
    assert service.requests.countersign(rid, actor=people["omni"]).state is RequestState.COUNTERSIGNED


@pytest.mark.parametrize("decision", [Action.APPROVE, Action.RETURN, Action.REJECT])
def test_head_may_not_review_what_they_countersigned(
    service: Service, people: dict[str, Actor], decision: Action
) -> None:
    rid = _countersigned(service, people, head=people["omni"])
    with pytest.raises(SeparationOfDutiesError) as info:
        service.requests.review(rid, actor=people["omni"], decision=decision, reason="r")
    assert "countersigned" in info.value.message


def test_separation_is_per_request(service: Service, people: dict[str, Actor]) -> None:
    mine = _entered(service, people["omni"])
    other = _entered(service, people["clerk"])
    assert (
        service.requests.accept(other, actor=people["omni"], agree=True, usbkey_model="ePass3003").state
        is RequestState.ACCEPTED
    )
    with pytest.raises(SeparationOfDutiesError):
        service.requests.accept(mine, actor=people["omni"], agree=True, usbkey_model="ePass3003")
