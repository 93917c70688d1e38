"""Acceptance points for tests: a provincial point (湖北) with a point under it (武汉), another point (长沙), a
user per role at each, and work (a request in any state, a certificate, a party, a key) at a point."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sqlmodel import Session, select

from pki.enums import Action, RequestState, Role
from pki.models import Point, User
from pki.services import Actor, Service
from tests.conftest import T0
from tests.support.data import application, make_uscc
from tests.support.pki import csr_for, key

PROVINCIAL = "湖北省受理中心"
WUHAN = "武汉受理点"  # under PROVINCIAL
CHANGSHA = "长沙受理点"
PREFIX = {PROVINCIAL: "hb", WUHAN: "wh", CHANGSHA: "cs"}
_units = itertools.count(81000000)
_keys = itertools.count(500)


def add_points(service: Service, admin: Actor) -> None:
    service.points.add(PROVINCIAL, province="湖北", actor=admin)
    service.points.add(WUHAN, province="湖北省", parent=PROVINCIAL, actor=admin)
    service.points.add(CHANGSHA, province="湖南", actor=admin)


def point_id(service: Service, name: str) -> int:
    with Session(service.ctx.engine) as s:
        found = s.exec(select(Point.id).where(Point.name == name)).one()
    assert found is not None
    return found


def staff_at(service: Service, point: str) -> dict[Role, Actor]:
    """One user per role at ``point`` (named like wh-entry), as real rows with an unusable password (the
    service re-reads roles and point from them)."""
    pid = point_id(service, point)
    out = {role: Actor(f"{PREFIX[point]}-{role.value}", frozenset({role.value})) for role in Role}
    with Session(service.ctx.engine) as s:
        for role, a in out.items():
            s.add(User(username=a.username, password_hash="!", roles=role.value, created_at=T0, point_id=pid))
        s.commit()
    return out


def uscc() -> str:
    return make_uscc("110101", str(next(_units)))  # 北京, as application() says


def request_at(
    service: Service,
    people: dict[str, Actor],
    point: str,
    state: RequestState = RequestState.ENTERED,
    *,
    usbkey_model: str = "飞天诚信 ePass3003",
    **overrides: object,
) -> int:
    """A request of ``point`` entered and walked to ``state`` by the center's users (who see every point);
    ``overrides`` are application fields."""
    overrides.setdefault("credential_number", uscc())
    req = service.requests.create(application(**overrides), actor=people["clerk"], point=point)
    assert req.id is not None
    rid = req.id
    if state is RequestState.ENTERED:
        return rid
    service.requests.accept(rid, actor=people["acceptor"], agree=True, usbkey_model=usbkey_model)
    if state is RequestState.ACCEPTED:
        return rid
    service.requests.countersign(rid, actor=people["head"])
    if state is RequestState.COUNTERSIGNED:
        return rid
    if state is RequestState.RETURNED:
        service.requests.review(rid, actor=people["reviewer"], decision=Action.RETURN, reason="请补充")
        return rid
    service.requests.review(rid, actor=people["reviewer"], decision=Action.APPROVE)
    assert state is RequestState.APPROVED
    return rid


@dataclass(frozen=True)
class Issued:
    request_id: int
    serial: str


def certificate_at(service: Service, people: dict[str, Actor], point: str) -> Issued:
    """An issued certificate (from a CSR) of a request of ``point``; ``service`` has its CA hierarchy."""
    rid = request_at(service, people, point, RequestState.APPROVED)
    cert = service.issuance.issue_from_csr(
        rid, csr_for(key("ec-p256", next(_keys))), actor=people["distributor"]
    )
    return Issued(rid, cert.serial)
