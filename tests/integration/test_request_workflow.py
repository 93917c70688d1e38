"""The request workflow through the service, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, func, select

from pki.clock import FixedClock
from pki.enums import Action, RequestState
from pki.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from pki.models import AuditRecord, CertificateRequest
from pki.services import Actor, RequestFilter, Service
from tests.support.data import application, make_uscc


def audit_count(service: Service) -> int:
    with Session(service.ctx.engine) as s:
        return int(s.exec(select(func.count()).select_from(AuditRecord)).one())


def request_count(service: Service) -> int:
    with Session(service.ctx.engine) as s:
        return int(s.exec(select(func.count()).select_from(CertificateRequest)).one())


def to_approved(service: Service, p: dict[str, Actor], **overrides: object) -> int:
    req = service.requests.create(application(**overrides), actor=p["clerk"])
    assert req.id is not None
    service.requests.accept(req.id, actor=p["acceptor"], agree=True, usbkey_model="飞天诚信 ePass3003")
    service.requests.countersign(req.id, actor=p["head"])
    service.requests.review(req.id, actor=p["reviewer"], decision=Action.APPROVE)
    return req.id


def test_full_path_records_each_signer_and_time(
    service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.state is RequestState.ENTERED and req.entered_by == "clerk" and req.version == 1
    assert req.id is not None
    clock.advance(timedelta(hours=1))
    service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model=" 飞天诚信 ePass3003 ")
    clock.advance(timedelta(hours=1))
    service.requests.countersign(req.id, actor=people["head"])
    clock.advance(timedelta(hours=1))
    done = service.requests.review(req.id, actor=people["reviewer"], decision=Action.APPROVE)
    got = service.requests.get(req.id)
    assert got.state is RequestState.APPROVED == done.state
    assert (got.accepted_by, got.countersigned_by, got.reviewed_by) == ("acceptor", "head", "reviewer")
    assert got.usbkey_model == "飞天诚信 ePass3003" and got.acceptance_opinion == "agree"
    assert got.accepted_at is not None and got.countersigned_at is not None and got.reviewed_at is not None
    assert got.accepted_at.utcoffset() == timedelta(0)
    assert got.reviewed_at - got.accepted_at == timedelta(hours=2)
    assert got.version == 4
    actions = [h.action for h in service.requests.history(req.id)]
    assert actions == ["request.enter", "request.accept", "request.countersign", "request.approve"]


def test_disagree_rejects_with_reason(service: Service, people: dict[str, Actor]) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    with pytest.raises(ValidationError) as info:
        service.requests.accept(req.id, actor=people["acceptor"], agree=False)
    assert info.value.errors[0].field == "comment"
    out = service.requests.accept(req.id, actor=people["acceptor"], agree=False, comment="材料不全")
    assert out.state is RequestState.REJECTED and out.acceptance_opinion == "disagree"
    with pytest.raises(InvalidTransitionError):
        service.requests.edit(req.id, application(), actor=people["clerk"])


def test_agree_needs_usbkey_model(service: Service, people: dict[str, Actor]) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    with pytest.raises(ValidationError) as info:
        service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="  ")
    assert info.value.errors[0].field == "usbkey"
    assert service.requests.get(req.id).state is RequestState.ENTERED


@pytest.mark.parametrize("decision", [Action.RETURN, Action.REJECT])
def test_return_and_reject_need_a_reason(
    service: Service, people: dict[str, Actor], decision: Action
) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    service.requests.countersign(req.id, actor=people["head"])
    with pytest.raises(ValidationError):
        service.requests.review(req.id, actor=people["reviewer"], decision=decision, reason=" ")
    out = service.requests.review(req.id, actor=people["reviewer"], decision=decision, reason="邮编有误")
    expected = RequestState.RETURNED if decision is Action.RETURN else RequestState.REJECTED
    assert out.state is expected and out.review_reason == "邮编有误"


def test_returned_request_is_corrected_and_goes_round_again(
    service: Service, people: dict[str, Actor]
) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    service.requests.countersign(req.id, actor=people["head"])
    service.requests.review(req.id, actor=people["reviewer"], decision=Action.RETURN, reason="传真号错误")
    fixed = service.requests.edit(req.id, application(unit_fax="010-87654321"), actor=people["clerk"])
    assert fixed.state is RequestState.ENTERED and fixed.unit_fax == "010-87654321"
    assert fixed.accepted_by is None and fixed.review_decision is None
    # The same acceptor and reviewer may take the same steps again on the corrected request.
    service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    service.requests.countersign(req.id, actor=people["head"])
    assert (
        service.requests.review(req.id, actor=people["reviewer"], decision=Action.APPROVE).state
        is RequestState.APPROVED
    )


@pytest.mark.parametrize("stage", ["accepted", "countersigned"])
def test_edit_after_acceptance_voids_it(service: Service, people: dict[str, Actor], stage: str) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    if stage == "countersigned":
        service.requests.countersign(req.id, actor=people["head"])
    out = service.requests.edit(req.id, application(handler_name="王五"), actor=people["clerk2"])
    assert out.state is RequestState.ENTERED
    assert (out.accepted_by, out.accepted_at, out.countersigned_by, out.usbkey_model) == (
        None,
        None,
        None,
        "",
    )
    last = service.requests.history(req.id)[-1]
    assert last.action == "request.edit" and '"acceptance_voided":true' in last.details
    assert '"changed":["handler_name"]' in last.details
    # The head cannot countersign a voided acceptance.
    with pytest.raises(InvalidTransitionError):
        service.requests.countersign(req.id, actor=people["head"])


def test_approved_request_cannot_be_edited(service: Service, people: dict[str, Actor]) -> None:
    rid = to_approved(service, people)
    with pytest.raises(InvalidTransitionError):
        service.requests.edit(rid, application(), actor=people["clerk"])


@pytest.mark.parametrize("stage", ["entered", "accepted", "countersigned", "returned", "approved"])
def test_cancel_where_it_makes_sense(service: Service, people: dict[str, Actor], stage: str) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    rid = req.id
    assert rid is not None
    if stage != "entered":
        service.requests.accept(rid, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    if stage in ("countersigned", "returned", "approved"):
        service.requests.countersign(rid, actor=people["head"])
    if stage == "returned":
        service.requests.review(rid, actor=people["reviewer"], decision=Action.RETURN, reason="补材料")
    if stage == "approved":
        service.requests.review(rid, actor=people["reviewer"], decision=Action.APPROVE)
    with pytest.raises(ValidationError):
        service.requests.cancel(rid, actor=people["ops"], reason="")
    out = service.requests.cancel(rid, actor=people["ops"], reason="单位撤回申请")
    assert out.state is RequestState.CANCELLED
    with pytest.raises(InvalidTransitionError):
        service.requests.cancel(rid, actor=people["ops"], reason="again")


@pytest.mark.parametrize(
    ("who", "call"),
    [
        ("acceptor", lambda svc, rid, a: svc.requests.create(application(), actor=a)),
        (
            "clerk",
            lambda svc, rid, a: svc.requests.accept(rid, actor=a, agree=True, usbkey_model="ePass3003"),
        ),
        ("acceptor", lambda svc, rid, a: svc.requests.countersign(rid, actor=a)),
        ("head", lambda svc, rid, a: svc.requests.review(rid, actor=a, decision=Action.APPROVE)),
        ("distributor", lambda svc, rid, a: svc.requests.edit(rid, application(), actor=a)),
        ("reviewer", lambda svc, rid, a: svc.requests.cancel(rid, actor=a, reason="x")),
        (
            "admin",
            lambda svc, rid, a: svc.requests.accept(rid, actor=a, agree=True, usbkey_model="ePass3003"),
        ),
    ],
    ids=[
        "acceptor-enters",
        "clerk-accepts",
        "acceptor-countersigns",
        "head-reviews",
        "distributor-edits",
        "reviewer-cancels",
        "admin-accepts",
    ],
)
def test_roles_are_enforced(service: Service, people: dict[str, Actor], who: str, call: object) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    before = audit_count(service), request_count(service)
    with pytest.raises(PermissionDeniedError) as info:
        call(service, req.id, people[who])  # type: ignore[operator]
    assert who in info.value.message
    # Nothing changed but one security event: the refused attempt, by whom.
    assert (audit_count(service), request_count(service)) == (before[0] + 1, before[1])
    last = service.audit.recent(limit=1)[0]
    assert (last.action, last.actor) == ("security.denied", who)
    assert '"code":"forbidden"' in last.details
    assert service.audit.verify().ok


def test_refused_operations_write_nothing(service: Service, people: dict[str, Actor]) -> None:
    before = audit_count(service), request_count(service)
    with pytest.raises(ValidationError) as info:
        service.requests.create(application(credential_number="11110000000012343A"), actor=people["clerk"])
    assert [e.field for e in info.value.errors] == ["credential_number"]
    with pytest.raises(NotFoundError):
        service.requests.countersign(424242, actor=people["head"])
    assert (audit_count(service), request_count(service)) == before


def test_stale_version_is_refused(service: Service, people: dict[str, Actor]) -> None:
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    service.requests.edit(req.id, application(county="东城区"), actor=people["clerk"], expected_version=1)
    with pytest.raises(ConflictError):
        service.requests.accept(
            req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003", expected_version=1
        )
    assert (
        service.requests.accept(
            req.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003", expected_version=2
        ).state
        is RequestState.ACCEPTED
    )


def test_list_filters_and_keyset_pages(service: Service, people: dict[str, Actor]) -> None:
    clerk = people["clerk"]
    ids = []
    for i in range(5):
        r = service.requests.create(
            application(
                unit_name=f"上海能源单位{i}",
                province="上海",
                credential_number=make_uscc("310101", f"1000000{i}"),
                access_type="formal" if i % 2 else "test",
            ),
            actor=clerk,
        )
        ids.append(r.id)
    beijing = service.requests.create(application(), actor=clerk)
    assert [r.id for r in service.requests.find()] == [*ids, beijing.id]
    assert [r.id for r in service.requests.find(RequestFilter(province="上海", access_type="formal"))] == [
        ids[1],
        ids[3],
    ]
    assert [r.id for r in service.requests.find(RequestFilter(search="单位3"))] == [ids[3]]
    code = make_uscc("310101", "10000002")
    assert [r.id for r in service.requests.find(RequestFilter(search=code.lower()))] == [ids[2]]
    assert service.requests.find(RequestFilter(search="%")) == []
    page1 = service.requests.find(RequestFilter(limit=2))
    page2 = service.requests.find(RequestFilter(limit=2, after_id=page1[-1].id))
    assert [r.id for r in page1 + page2] == ids[:4]
    service.requests.accept(beijing.id, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")  # type: ignore[arg-type]
    assert [r.id for r in service.requests.find(RequestFilter(state=RequestState.ACCEPTED))] == [beijing.id]


def test_allowed_actions_combines_state_role_and_duties(service: Service, people: dict[str, Actor]) -> None:
    omni = people["omni"]
    req = service.requests.create(application(), actor=omni)
    assert req.id is not None
    # omni entered it: may edit, cancel, but not accept or disagree.
    assert service.requests.allowed_actions(req.id, omni) == {Action.EDIT, Action.CANCEL}
    assert service.requests.allowed_actions(req.id, people["acceptor"]) == {Action.ACCEPT, Action.DISAGREE}
    assert service.requests.allowed_actions(req.id, people["head"]) == {Action.CANCEL}
    assert service.requests.allowed_actions(req.id, people["distributor"]) == frozenset()
