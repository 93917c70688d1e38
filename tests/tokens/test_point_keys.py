"""A USB key is issued onto only at the acceptance point that holds it (SoftHSM2 as the key): refused for a key
of another point, one in transit, a defective one, and a key new to pkictl where the point keeps stock;
nothing is generated on the key when refused."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from pki.enums import RequestState, Role, TokenState
from pki.errors import ConflictError, NotFoundError
from pki.models import UsbToken
from pki.services import Actor, Service
from tests.support.points import CHANGSHA, WUHAN, add_points, point_id, request_at, staff_at
from tests.support.softhsm import Token
from tests.tokens.test_usbkey_issuance import objects
from tokens.usbkey import UsbKey

SOFTHSM = "SoftHSM2"


@pytest.fixture
def points(ca_service: Service, people: dict[str, Actor]) -> dict[str, dict[Role, Actor]]:
    add_points(ca_service, people["admin"])
    return {p: staff_at(ca_service, p) for p in (WUHAN, CHANGSHA)}


def _approved_at(service: Service, people: dict[str, Actor], point: str) -> int:
    return request_at(service, people, point, RequestState.APPROVED, usbkey_model=SOFTHSM)


def test_a_key_of_another_point_is_refused_until_transferred_and_received(
    ca_service: Service,
    people: dict[str, Actor],
    points: dict[str, dict[Role, Actor]],
    device: UsbKey,
    token: Token,
) -> None:
    ca_service.stock.intake([token.serial], model=SOFTHSM, point=CHANGSHA, actor=people["ops"])
    rid = _approved_at(ca_service, people, WUHAN)  # 武汉 keeps no stock yet: any model
    before = objects(token)
    for issuer in (people["distributor"], points[WUHAN][Role.DISTRIBUTOR]):
        with pytest.raises(ConflictError, match="held by another acceptance point"):
            ca_service.token_issuance.issue(rid, device, actor=issuer, key_type="ec-p256")
    # 长沙's distributor holds the key but may not see 武汉's request at all.
    with pytest.raises(NotFoundError, match=f"request {rid} not found"):
        ca_service.token_issuance.issue(
            rid, device, actor=points[CHANGSHA][Role.DISTRIBUTOR], key_type="ec-p256"
        )
    ca_service.stock.transfer([token.serial], to=WUHAN, actor=points[CHANGSHA][Role.DISTRIBUTOR])
    with pytest.raises(ConflictError, match="in transit"):
        ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
    assert objects(token) == before and ca_service.requests.get(rid).state is RequestState.APPROVED
    ca_service.stock.receive([token.serial], actor=points[WUHAN][Role.DISTRIBUTOR])
    done = ca_service.token_issuance.issue(
        rid, device, actor=points[WUHAN][Role.DISTRIBUTOR], key_type="ec-p256"
    )
    assert ca_service.requests.get(rid).state is RequestState.ISSUED and done.token_serial == token.serial
    with Session(ca_service.ctx.engine) as s:
        key = s.exec(select(UsbToken).where(UsbToken.serial == token.serial)).one()
    assert key.state is TokenState.ISSUED and key.point_id == point_id(ca_service, WUHAN)


def test_a_new_key_is_recorded_at_a_point_without_stock_and_refused_where_stock_is_kept(
    ca_service: Service,
    people: dict[str, Actor],
    points: dict[str, dict[Role, Actor]],
    device: UsbKey,
    token: Token,
) -> None:
    ca_service.stock.intake(["SOME-OTHER-KEY"], model=SOFTHSM, point=CHANGSHA, actor=people["ops"])
    at_changsha = _approved_at(ca_service, people, CHANGSHA)
    with pytest.raises(ConflictError, match=r"not in the stock of request .* take it in first"):
        ca_service.token_issuance.precheck(
            at_changsha, actor=people["distributor"], token_serial=token.serial
        )
    with pytest.raises(ConflictError, match="take it in first"):
        ca_service.token_issuance.issue(at_changsha, device, actor=people["distributor"], key_type="ec-p256")
    at_wuhan = _approved_at(ca_service, people, WUHAN)
    ca_service.token_issuance.issue(at_wuhan, device, actor=people["distributor"], key_type="ec-p256")
    with Session(ca_service.ctx.engine) as s:
        key = s.exec(select(UsbToken).where(UsbToken.serial == token.serial)).one()
    assert key.point_id == point_id(ca_service, WUHAN)


def test_a_defective_key_takes_nothing(
    ca_service: Service,
    people: dict[str, Actor],
    points: dict[str, dict[Role, Actor]],
    device: UsbKey,
    token: Token,
) -> None:
    rid = _approved_at(ca_service, people, WUHAN)
    ca_service.stock.intake([token.serial], model=SOFTHSM, point=WUHAN, actor=people["ops"])
    ca_service.stock.return_defective([token.serial], reason="无法识别", actor=people["ops"])
    with pytest.raises(ConflictError, match="recorded as defective"):
        ca_service.token_issuance.issue(rid, device, actor=people["distributor"], key_type="ec-p256")
