"""Acceptance points through the service, on SQLite and PostgreSQL: a user of one point is refused on another
point's request, party, certificate and key exactly as on a missing one (and the attempt is audited), for
every role; a provincial user sees the work of the points under it; center users see all; new work takes
its point."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import Session, select

from pki.enums import Action, RequestState, Role
from pki.errors import (
    ConflictError,
    NotFoundError,
    OutOfScopeError,
    PermissionDeniedError,
    ValidationError,
)
from pki.models import AuditRecord, CertificateRequest, Point, User
from pki.models.point import DEFAULT_POINT
from pki.services import Actor, CertificateFilter, RequestFilter, Service
from policies import load_policies
from tests.support.data import application
from tests.support.points import (
    CHANGSHA,
    PROVINCIAL,
    WUHAN,
    add_points,
    certificate_at,
    point_id,
    request_at,
    staff_at,
    uscc,
)

WORKFLOW = load_policies().workflow
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@dataclass
class Work:
    """One point's work: a request in each state, an issued certificate, a party and a key in stock."""

    requests: dict[RequestState, int]
    issued: int
    serial: str
    party: str
    token: str


@dataclass
class World:
    staff: dict[str, dict[Role, Actor]]
    work: dict[str, Work]


def _work(svc: Service, people: dict[str, Actor], point: str, tag: str) -> Work:
    states = (
        RequestState.ENTERED,
        RequestState.ACCEPTED,
        RequestState.COUNTERSIGNED,
        RequestState.RETURNED,
        RequestState.APPROVED,
    )
    requests = {st: request_at(svc, people, point, st) for st in states}
    cert = certificate_at(svc, people, point)
    party = uscc()
    svc.parties.import_list(
        f"单位名称,统一社会信用代码\n{point}某单位,{party}\n".encode(), actor=people["ops"], point=point
    )
    token = f"KEY-{tag}"
    svc.stock.intake([token], model="ePass3003", point=point, actor=people["ops"])
    return Work(requests, cert.request_id, cert.serial, party, token)


@pytest.fixture
def world(ca_service: Service, people: dict[str, Actor]) -> World:
    add_points(ca_service, people["admin"])
    staff = {p: staff_at(ca_service, p) for p in (PROVINCIAL, WUHAN, CHANGSHA)}
    work = {p: _work(ca_service, people, p, tag) for p, tag in ((WUHAN, "WH"), (CHANGSHA, "CS"))}
    return World(staff, work)


def _denials(svc: Service, username: str) -> list[dict[str, Any]]:
    with Session(svc.ctx.engine) as s:
        rows = s.exec(
            select(AuditRecord).where(AuditRecord.actor == username, AuditRecord.action == "security.denied")
        ).all()
    return [json.loads(r.details) for r in rows]


def _out_of_scope(svc: Service, username: str) -> int:
    return sum(1 for d in _denials(svc, username) if d["code"] == "out_of_scope")


def _state(svc: Service, rid: int) -> RequestState:
    return svc.requests.get(rid).state


# The workflow actions, each on a request of the state it needs.
ACTIONS: dict[Action, tuple[RequestState, Callable[[Service, int, Actor], object]]] = {
    Action.EDIT: (
        RequestState.RETURNED,
        lambda s, r, a: s.requests.edit(r, application(county="东城区"), actor=a),
    ),
    Action.ACCEPT: (
        RequestState.ENTERED,
        lambda s, r, a: s.requests.accept(r, actor=a, agree=True, usbkey_model="ePass3003"),
    ),
    Action.DISAGREE: (
        RequestState.ENTERED,
        lambda s, r, a: s.requests.accept(r, actor=a, agree=False, comment="材料不全"),
    ),
    Action.COUNTERSIGN: (RequestState.ACCEPTED, lambda s, r, a: s.requests.countersign(r, actor=a)),
    Action.APPROVE: (
        RequestState.COUNTERSIGNED,
        lambda s, r, a: s.requests.review(r, actor=a, decision=Action.APPROVE),
    ),
    Action.RETURN: (
        RequestState.COUNTERSIGNED,
        lambda s, r, a: s.requests.review(r, actor=a, decision=Action.RETURN, reason="请补充"),
    ),
    Action.REJECT: (
        RequestState.COUNTERSIGNED,
        lambda s, r, a: s.requests.review(r, actor=a, decision=Action.REJECT, reason="不符合"),
    ),
    Action.ISSUE: (
        RequestState.APPROVED,
        lambda s, r, a: s.issuance.issue_from_csr(r, _csr(), actor=a),
    ),
    Action.CANCEL: (RequestState.ENTERED, lambda s, r, a: s.requests.cancel(r, actor=a, reason="撤回")),
}


def _csr() -> bytes:
    from tests.support.pki import csr_for, key

    return csr_for(key("ec-p256", 901))


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_a_point_user_is_refused_on_another_points_work_as_on_missing_work(
    ca_service: Service, world: World, role: Role
) -> None:
    svc = ca_service
    me = world.staff[WUHAN][role]
    theirs, mine = world.work[CHANGSHA], world.work[WUHAN]
    refusals = 0

    # Requests: lists leave them out; show, history, actions and attachments refuse them as missing.
    listed = {r.id for r in svc.requests.find(RequestFilter(limit=1000), actor=me)}
    assert set(mine.requests.values()) | {mine.issued} <= listed
    assert listed.isdisjoint(set(theirs.requests.values()) | {theirs.issued})
    rid = theirs.requests[RequestState.ENTERED]
    with pytest.raises(NotFoundError) as missing:
        svc.requests.get(2_000_000, actor=me)
    for read in (
        lambda: svc.requests.get(rid, actor=me),
        lambda: svc.requests.history(rid, actor=me),
        lambda: svc.requests.allowed_actions(rid, me),
        lambda: svc.cutover.prerequisites(rid, actor=me),
    ):
        with pytest.raises(NotFoundError) as refused:
            read()
        assert refused.value.code == missing.value.code == "not_found"
        assert refused.value.message == f"request {rid} not found"
        assert refused.value.message_zh == f"申请 {rid} 不存在"
        refusals += 1
    assert svc.audit.for_request(rid, actor=me) == []
    refusals += 1

    for action, (state, act) in ACTIONS.items():
        target = theirs.requests[state]
        if not WORKFLOW.role_allows(me.roles, action):
            with pytest.raises(PermissionDeniedError):
                act(svc, target, me)  # the role check first: it says nothing about the request
            continue
        with pytest.raises(OutOfScopeError) as refused:
            act(svc, target, me)
        assert refused.value.message == f"request {target} not found"
        assert _state(svc, target) is state
        refusals += 1
    if WORKFLOW.operation_allows(me.roles, "attach"):
        with pytest.raises(NotFoundError):
            svc.attachments.add(rid, kind="signed_form", filename="a.png", data=PNG, actor=me)
        refusals += 1
    if WORKFLOW.operation_allows(me.roles, "read_attachments"):
        with pytest.raises(NotFoundError):
            svc.attachments.list_for(rid, actor=me)
        refusals += 1
    if WORKFLOW.role_allows(me.roles, Action.DISTRIBUTE):
        with pytest.raises(NotFoundError):
            svc.distribution.distribute(theirs.issued, recipient="王五", actor=me)
        refusals += 1

    # Certificates belong to their request's point.
    serials = {c.serial for c in svc.certificates.find(CertificateFilter(limit=1000), actor=me)}
    assert mine.serial in serials and theirs.serial not in serials
    for read_cert in (
        lambda: svc.certificates.get(theirs.serial, actor=me),
        lambda: svc.certificates.export(theirs.serial, "pem", actor=me),
    ):
        with pytest.raises(NotFoundError, match=f"no certificate with serial {theirs.serial}"):
            read_cert()
        refusals += 1
    if WORKFLOW.operation_allows(me.roles, "revoke"):
        with pytest.raises(NotFoundError, match="no certificate with serial"):
            svc.revocation.revoke(theirs.serial, "keyCompromise", actor=me)
        refusals += 1
    if WORKFLOW.operation_allows(me.roles, "renew"):
        with pytest.raises(NotFoundError, match="no certificate with serial"):
            svc.renewal.renew(theirs.serial, actor=me)
        refusals += 1
    assert svc.certificates.get(theirs.serial).status.value == "valid"

    # Parties and keys.
    parties = {p.credential_number for p in svc.parties.list_parties(actor=me)}
    assert parties == {mine.party}
    with pytest.raises(NotFoundError):
        svc.parties.get(theirs.party, actor=me)
    tokens = {t.serial for t in svc.inventory.tokens(actor=me)}
    assert mine.token in tokens and theirs.token not in tokens
    if WORKFLOW.operation_allows(me.roles, "token_mark"):
        with pytest.raises(NotFoundError, match=f"token {theirs.token} is not recorded"):
            svc.inventory.mark(theirs.token, "destroyed", actor=me)
        refusals += 1
    if WORKFLOW.operation_allows(me.roles, "token_stock"):
        with pytest.raises(NotFoundError, match=f"token {theirs.token} is not recorded"):
            svc.stock.transfer([theirs.token], to=WUHAN, actor=me)
        with pytest.raises(NotFoundError, match=f"token {theirs.token} is not recorded"):
            svc.stock.return_defective([theirs.token], reason="坏了", actor=me)
        refusals += 2
    if WORKFLOW.operation_allows(me.roles, "token_clean"):
        with pytest.raises(NotFoundError, match=f"token {theirs.token} is not recorded"):
            svc.token_cleanup.begin_removal(theirs.token, [], actor=me)
        refusals += 1

    # Every refusal of their work is on the record, as a refusal of the other point's, told only there.
    assert _out_of_scope(svc, me.username) == refusals
    assert all(
        "outside the actor's points" in d["reason"]
        for d in _denials(svc, me.username)
        if d["code"] == "out_of_scope"
    )


def test_a_provincial_user_sees_the_points_under_it_and_center_users_see_all(
    ca_service: Service, world: World, people: dict[str, Actor]
) -> None:
    svc = ca_service
    wuhan, changsha = world.work[WUHAN], world.work[CHANGSHA]
    provincial = world.staff[PROVINCIAL]
    listed = {r.id for r in svc.requests.find(RequestFilter(limit=1000), actor=provincial[Role.ENTRY])}
    assert set(wuhan.requests.values()) <= listed and listed.isdisjoint(changsha.requests.values())
    assert svc.certificates.get(wuhan.serial, actor=provincial[Role.OPS]).serial == wuhan.serial
    assert {t.serial for t in svc.inventory.tokens(actor=provincial[Role.DISTRIBUTOR])} >= {wuhan.token}
    # It acts on them too: the provincial acceptor accepts a request of 武汉.
    rid = wuhan.requests[RequestState.ENTERED]
    svc.requests.accept(rid, actor=provincial[Role.ACCEPTOR], agree=True, usbkey_model="ePass3003")
    # 武汉's users do not see the provincial point's own work.
    own = request_at(svc, people, PROVINCIAL)
    with pytest.raises(NotFoundError):
        svc.requests.get(own, actor=world.staff[WUHAN][Role.ENTRY])
    # Center users (no point) see everything, as before points.
    everything = {r.id for r in svc.requests.find(RequestFilter(limit=1000), actor=people["clerk"])}
    assert set(wuhan.requests.values()) | set(changsha.requests.values()) | {own} <= everything
    assert {c.serial for c in svc.certificates.find(actor=people["ops"])} >= {wuhan.serial, changsha.serial}
    assert {p.credential_number for p in svc.parties.list_parties(actor=people["ops"])} == {
        wuhan.party,
        changsha.party,
    }
    figures = svc.stats.dashboard(actor=world.staff[CHANGSHA][Role.HEAD])
    assert sum(figures.requests_by_state.values()) == len(changsha.requests) + 1
    assert sum(n for (_, status), n in figures.certificates_by_kind_status.items() if status == "valid") == 1


def test_new_work_takes_the_point_of_whoever_enters_it(service: Service, people: dict[str, Actor]) -> None:
    add_points(service, people["admin"])
    wuhan, provincial = staff_at(service, WUHAN), staff_at(service, PROVINCIAL)
    mine = service.requests.create(application(credential_number=uscc()), actor=wuhan[Role.ENTRY])
    assert mine.point_id == point_id(service, WUHAN)
    center = service.requests.create(application(credential_number=uscc()), actor=people["clerk"])
    assert center.point_id == point_id(service, DEFAULT_POINT)
    named = service.requests.create(
        application(credential_number=uscc()), actor=people["clerk"], point=CHANGSHA
    )
    assert named.point_id == point_id(service, CHANGSHA)
    below = service.requests.create(
        application(credential_number=uscc()), actor=provincial[Role.ENTRY], point=WUHAN
    )
    assert below.point_id == point_id(service, WUHAN)
    # A point outside one's scope is refused exactly as a point that does not exist, and audited.
    with pytest.raises(ValidationError) as unknown:
        service.requests.create(
            application(credential_number=uscc()), actor=wuhan[Role.ENTRY], point="火星受理点"
        )
    with pytest.raises(ValidationError) as elsewhere:
        service.requests.create(
            application(credential_number=uscc()), actor=wuhan[Role.ENTRY], point=CHANGSHA
        )
    assert [e.field for e in elsewhere.value.errors] == [e.field for e in unknown.value.errors] == ["point"]
    assert elsewhere.value.message_zh == unknown.value.message_zh == "受理点不存在"
    assert _out_of_scope(service, wuhan[Role.ENTRY].username) == 1
    # The one-open-request rule is the whole center's; the clash's number only where it may be looked up.
    number = uscc()
    other = service.requests.create(
        application(credential_number=number), actor=people["clerk"], point=CHANGSHA
    )
    with pytest.raises(ConflictError) as clash:
        service.requests.create(application(credential_number=number), actor=wuhan[Role.ENTRY])
    assert clash.value.message.endswith("already has an open test request for this system")
    with pytest.raises(ConflictError, match=f"request {other.id}"):
        service.requests.create(application(credential_number=number), actor=people["clerk"])


def test_bulk_imports_take_the_point_too(service: Service, people: dict[str, Actor]) -> None:
    from tests.support.data import batch_defaults

    add_points(service, people["admin"])
    wuhan = staff_at(service, WUHAN)
    csv = f"单位名称,统一社会信用代码\n武汉某厂,{uscc()}\n武汉某站,{uscc()}\n".encode()
    done = service.bulk.import_units(
        csv, actor=wuhan[Role.ENTRY], defaults=batch_defaults(), label="武汉第一批"
    )
    with Session(service.ctx.engine) as s:
        points = set(
            s.exec(
                select(CertificateRequest.point_id).where(CertificateRequest.batch_id == done.batch_id)
            ).all()
        )
    assert points == {point_id(service, WUHAN)}


def test_points_are_added_by_admins_and_nest_one_level(service: Service, people: dict[str, Actor]) -> None:
    add_points(service, people["admin"])
    listed = [(p.name, p.province, p.parent) for p in service.points.list()]
    assert listed == [
        (DEFAULT_POINT, "", None),
        (PROVINCIAL, "湖北", None),
        (WUHAN, "湖北", PROVINCIAL),
        (CHANGSHA, "湖南", None),
    ]
    with pytest.raises(PermissionDeniedError):
        service.points.add("某受理点", province="北京", actor=people["ops"])
    assert _denials(service, "ops")[-1]["attempted"] == "point.add"
    with pytest.raises(ValidationError) as bad:
        service.points.add(" ", province="火星", actor=people["admin"])
    assert [e.field for e in bad.value.errors] == ["name", "province"]
    with pytest.raises(ValidationError, match="points nest one level deep"):
        service.points.add("汉口受理点", province="湖北", parent=WUHAN, actor=people["admin"])
    with pytest.raises(ValidationError, match="no acceptance point named '火星受理点'"):
        service.points.add("汉口受理点", province="湖北", parent="火星受理点", actor=people["admin"])
    with pytest.raises(ConflictError):
        service.points.add(WUHAN, province="湖北", actor=people["admin"])


def test_the_points_a_user_may_enter_for_and_the_admins_list(
    service: Service, people: dict[str, Actor]
) -> None:
    add_points(service, people["admin"])
    staff = {p: staff_at(service, p) for p in (PROVINCIAL, WUHAN, CHANGSHA)}

    def names(actor: Actor) -> list[str]:
        return [p.name for p in service.points.for_new_work(actor=actor)]

    assert names(people["clerk"]) == [DEFAULT_POINT, PROVINCIAL, WUHAN, CHANGSHA]
    assert names(staff[PROVINCIAL][Role.ENTRY]) == [PROVINCIAL, WUHAN]
    assert names(staff[WUHAN][Role.ENTRY]) == [WUHAN]
    assert names(Actor("nobody", frozenset({"entry"}))) == []  # an unknown user: nothing
    listed = service.points.directory(actor=people["admin"])
    assert [(p.name, p.users) for p in listed] == [
        (DEFAULT_POINT, 0),
        (PROVINCIAL, len(Role)),
        (WUHAN, len(Role)),
        (CHANGSHA, len(Role)),
    ]
    assert service.points.directory(actor=staff[PROVINCIAL][Role.ADMIN]) == listed  # an admin at a point too
    with pytest.raises(PermissionDeniedError):
        service.points.directory(actor=staff[WUHAN][Role.OPS])
    assert _denials(service, "wh-ops")[-1]["attempted"] == "point.list"


def test_users_are_placed_at_points_and_named(service: Service, people: dict[str, Actor]) -> None:
    add_points(service, people["admin"])
    user = service.users.add(
        "zhang", "a-long-password", ["entry"], actor=people["admin"], point=WUHAN, display_name=" 张  三 "
    )
    assert user.point_id == point_id(service, WUHAN) and user.display_name == "张 三"
    with pytest.raises(ValidationError, match="no acceptance point"):
        service.users.add("li", "a-long-password", ["entry"], actor=people["admin"], point="火星受理点")
    moved = service.users.update("zhang", actor=people["admin"], point=CHANGSHA, display_name="张三")
    assert moved.point_id == point_id(service, CHANGSHA) and moved.display_name == "张三"
    center = service.users.update("zhang", actor=people["admin"], center=True)
    assert center.point_id is None
    updates = [json.loads(r.details) for r in service.audit.recent(limit=5) if r.action == "user.update"]
    assert updates == [{"point": CHANGSHA, "display_name": "张三"}, {"point": None}]  # oldest first
    with pytest.raises(ValidationError):
        service.users.update("zhang", actor=people["admin"], display_name="x" * 65)
    with pytest.raises(ValidationError):
        service.users.update("zhang", actor=people["admin"], point=WUHAN, center=True)


def test_the_whole_audit_trail_and_the_cutover_are_the_centers(
    service: Service, people: dict[str, Actor]
) -> None:
    add_points(service, people["admin"])
    wuhan = staff_at(service, WUHAN)
    assert service.audit.recent(limit=5, actor=people["ops"])
    with pytest.raises(PermissionDeniedError, match="center's users"):
        service.audit.recent(limit=5, actor=wuhan[Role.OPS])
    with pytest.raises(PermissionDeniedError, match="center's users"):
        service.cutover.run(actor=wuhan[Role.OPS], rehearse=True)
    mine = request_at(service, people, WUHAN)
    assert [r.action for r in service.audit.for_request(mine, actor=wuhan[Role.OPS])] == ["request.enter"]


def test_existing_rows_and_users_keep_working_without_points(
    service: Service, people: dict[str, Actor]
) -> None:
    """Center users (no point) see and act as before: every request, whatever its point."""
    req = service.requests.create(application(), actor=people["clerk"])
    with Session(service.ctx.engine) as s:
        default = s.exec(select(Point).where(Point.name == DEFAULT_POINT)).one()
        users = s.exec(select(User.point_id)).all()
    assert req.point_id == default.id and set(users) == {None}
    assert [r.id for r in service.requests.find(actor=people["reviewer"])] == [req.id]
