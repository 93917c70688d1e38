"""Each acceptance point's stock of USB keys through the service (SQLite and PostgreSQL): intake by serial
and model, transfer with acceptance at the receiving point, defective returns, counts per point and state,
and acceptance naming a model the request's point has in stock."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from pki.enums import RequestState, Role, TokenState
from pki.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from pki.models import AuditRecord, Point, UsbToken
from pki.services import Actor, Service
from pki.services.stock import serials_from_csv
from tests.support.points import CHANGSHA, PROVINCIAL, WUHAN, add_points, request_at, staff_at


@pytest.fixture
def staff(service: Service, people: dict[str, Actor]) -> dict[str, dict[Role, Actor]]:
    add_points(service, people["admin"])
    return {p: staff_at(service, p) for p in (PROVINCIAL, WUHAN, CHANGSHA)}


def _token(service: Service, serial: str) -> UsbToken:
    with Session(service.ctx.engine) as s:
        return s.exec(select(UsbToken).where(UsbToken.serial == serial)).one()


def _point_name(service: Service, point_id: int | None) -> str | None:
    return service.points.name_of(point_id)


def test_intake_takes_blank_keys_into_a_points_stock(
    service: Service, people: dict[str, Actor], staff: dict[str, dict[Role, Actor]]
) -> None:
    wuhan = staff[WUHAN][Role.DISTRIBUTOR]
    done = service.stock.intake([" WH-001 ", "WH-002"], model="ePass3003", actor=wuhan)
    assert (done.serials, done.point, done.state) == (["WH-001", "WH-002"], WUHAN, "blank")
    key = _token(service, "WH-001")
    assert (key.model, key.state, _point_name(service, key.point_id)) == (
        "飞天诚信 ePass3003",
        TokenState.BLANK,
        WUHAN,
    )
    center = service.stock.intake(["CS-001"], model="SoftHSM2", point=CHANGSHA, actor=people["ops"])
    assert center.point == CHANGSHA
    with Session(service.ctx.engine) as s:
        kept = dict(s.exec(select(Point.name, Point.stock_kept)).all())
        trail = s.exec(select(AuditRecord).where(AuditRecord.action == "token.intake")).all()
    assert kept[WUHAN] and kept[CHANGSHA] and not kept[PROVINCIAL]
    assert [(r.subject_id, json.loads(r.details)["point"]) for r in trail] == [
        ("WH-001", WUHAN),
        ("WH-002", WUHAN),
        ("CS-001", CHANGSHA),
    ]


@pytest.mark.parametrize(
    ("serials", "model", "point", "field"),
    [
        ([], "ePass3003", WUHAN, "serial"),
        (["A", "A"], "ePass3003", WUHAN, "serial"),
        (["A\nB"], "ePass3003", WUHAN, "serial"),
        (["x" * 65], "ePass3003", WUHAN, "serial"),
        (["A"], "某品牌 某型号", WUHAN, "model"),
        (["A"], "ePass3003", "火星受理点", "point"),
        (["A"], "ePass3003", None, "point"),  # a center user names the point
    ],
    ids=["none", "twice", "two-lines", "too-long", "unknown-model", "unknown-point", "no-point"],
)
def test_intake_refuses_bad_input_naming_the_field(
    service: Service,
    people: dict[str, Actor],
    staff: dict[str, dict[Role, Actor]],
    serials: list[str],
    model: str,
    point: str | None,
    field: str,
) -> None:
    with pytest.raises(ValidationError) as refused:
        service.stock.intake(serials, model=model, point=point, actor=people["ops"])
    assert [e.field for e in refused.value.errors] == [field]


def test_intake_is_all_or_nothing_and_for_the_stock_roles(
    service: Service, people: dict[str, Actor], staff: dict[str, dict[Role, Actor]]
) -> None:
    service.stock.intake(["K1"], model="ePass3003", point=WUHAN, actor=people["ops"])
    with pytest.raises(ConflictError, match="already recorded: K1"):
        service.stock.intake(["K2", "K1"], model="ePass3003", point=WUHAN, actor=people["ops"])
    with Session(service.ctx.engine) as s:
        assert s.exec(select(UsbToken.serial)).all() == ["K1"]
    with pytest.raises(PermissionDeniedError):
        service.stock.intake(["K3"], model="ePass3003", actor=staff[WUHAN][Role.ENTRY])
    denied = service.audit.recent(limit=1)[0]
    assert denied.action == "security.denied" and json.loads(denied.details)["attempted"] == "token.intake"
    with pytest.raises(ValidationError):  # a point outside one's own: as unknown
        service.stock.intake(["K3"], model="ePass3003", point=CHANGSHA, actor=staff[WUHAN][Role.DISTRIBUTOR])


def test_a_transfer_is_in_transit_until_received_at_the_other_point(
    service: Service, people: dict[str, Actor], staff: dict[str, dict[Role, Actor]]
) -> None:
    wuhan, changsha = staff[WUHAN][Role.DISTRIBUTOR], staff[CHANGSHA][Role.DISTRIBUTOR]
    service.stock.intake(["T1", "T2"], model="ePass3003", actor=wuhan)
    sent = service.stock.transfer(["T1"], to=CHANGSHA, actor=wuhan)
    assert (sent.point, sent.state) == (CHANGSHA, "in_transit")
    key = _token(service, "T1")
    assert (
        _point_name(service, key.point_id) == WUHAN and _point_name(service, key.transfer_to_id) == CHANGSHA
    )
    # Both ends see it; the sender counts it as in transit, not in stock.
    seen = {t.serial: t for t in service.inventory.tokens(actor=changsha)}
    assert seen["T1"].point == WUHAN and seen["T1"].transfer_to == CHANGSHA and "T2" not in seen
    counts = {(c.point, c.state): c.count for c in service.stock.counts(actor=wuhan)}
    assert counts == {(WUHAN, "blank"): 1, (WUHAN, "in_transit"): 1}
    assert service.stock.acceptable_models(key.point_id) == ["飞天诚信 ePass3003"]
    with pytest.raises(InvalidTransitionError, match="in transit"):
        service.stock.transfer(["T1"], to=PROVINCIAL, actor=wuhan)
    with pytest.raises(InvalidTransitionError, match="not on its way to your point"):
        service.stock.receive(["T1"], actor=wuhan)
    with pytest.raises(NotFoundError, match="token T2 is not recorded"):
        service.stock.receive(["T2"], actor=changsha)  # another point's key, not coming here
    received = service.stock.receive(["T1"], actor=changsha)
    assert (received.point, received.state) == (CHANGSHA, "in_stock")
    key = _token(service, "T1")
    assert _point_name(service, key.point_id) == CHANGSHA and key.transfer_to_id is None
    assert "T1" not in {t.serial for t in service.inventory.tokens(actor=wuhan)}
    with pytest.raises(ValidationError, match="already"):
        service.stock.transfer(["T1"], to=CHANGSHA, actor=changsha)
    actions = [r.action for r in service.audit.recent(limit=10, subject_type="token", subject_id="T1")]
    assert actions == ["token.intake", "token.transfer", "token.receive"]


def test_defective_keys_go_back_and_leave_the_stock(
    service: Service, people: dict[str, Actor], staff: dict[str, dict[Role, Actor]]
) -> None:
    ops = staff[WUHAN][Role.OPS]
    service.stock.intake(["D1", "D2"], model="ePass3003", actor=ops)
    with pytest.raises(ValidationError) as no_reason:
        service.stock.return_defective(["D1"], reason=" ", actor=ops)
    assert no_reason.value.errors[0].field == "reason"
    done = service.stock.return_defective(["D1"], reason="无法识别", actor=ops)
    assert done.state == "defective" and _token(service, "D1").state is TokenState.DEFECTIVE
    for again in (
        lambda: service.stock.return_defective(["D1"], reason="x", actor=ops),
        lambda: service.stock.transfer(["D1"], to=CHANGSHA, actor=ops),
    ):
        with pytest.raises(InvalidTransitionError, match="only keys in stock"):
            again()
    counts = {(c.point, c.state): c.count for c in service.stock.counts(actor=people["ops"])}
    assert counts == {(WUHAN, "blank"): 1, (WUHAN, "defective"): 1}
    reason = service.audit.recent(limit=1, subject_type="token", subject_id="D1")[0]
    assert reason.action == "token.return" and json.loads(reason.details) == {"reason": "无法识别"}


def test_the_stock_summary_per_point_and_model_in_scope(
    service: Service, people: dict[str, Actor], staff: dict[str, dict[Role, Actor]]
) -> None:
    wuhan, changsha = staff[WUHAN][Role.DISTRIBUTOR], staff[CHANGSHA][Role.DISTRIBUTOR]
    service.stock.intake(["S1", "S2", "S3", "S4"], model="ePass3003", actor=wuhan)
    service.stock.intake(["S5"], model="ePass2003", actor=wuhan)
    service.stock.intake(["S6"], model="SoftHSM2", actor=changsha)
    service.stock.transfer(["S2"], to=CHANGSHA, actor=wuhan)
    service.stock.transfer(["S3"], to=PROVINCIAL, actor=wuhan)
    service.stock.return_defective(["S4"], reason="无法识别", actor=wuhan)

    def summary(actor: Actor) -> dict[tuple[str, str], tuple[int, dict[str, int]]]:
        return {(x.point, x.model): (x.available, x.counts) for x in service.stock.summary(actor=actor)}

    e3003, e2003 = "飞天诚信 ePass3003", "飞天诚信 ePass2003"
    assert summary(wuhan) == {
        (WUHAN, e3003): (1, {"blank": 1, "outgoing": 2, "defective": 1}),
        (WUHAN, e2003): (1, {"blank": 1}),
    }
    assert summary(changsha) == {
        (CHANGSHA, e3003): (0, {"incoming": 1}),
        (CHANGSHA, "SoftHSM2"): (1, {"blank": 1}),
    }
    # The provincial point: its own incoming key and Wuhan's stock; listed in the order points were added.
    provincial = service.stock.summary(actor=staff[PROVINCIAL][Role.OPS])
    assert [(x.point, x.model, x.counts) for x in provincial] == [
        (PROVINCIAL, e3003, {"incoming": 1}),
        (WUHAN, e2003, {"blank": 1}),
        (WUHAN, e3003, {"blank": 1, "outgoing": 2, "defective": 1}),
    ]
    assert len(service.stock.summary(actor=people["ops"])) == 5  # the center: every point
    service.stock.receive(["S2"], actor=changsha)
    assert summary(changsha)[(CHANGSHA, e3003)] == (1, {"blank": 1})
    assert summary(wuhan)[(WUHAN, e3003)] == (1, {"blank": 1, "outgoing": 1, "defective": 1})


def test_acceptance_names_a_model_the_requests_point_has_in_stock(
    service: Service, people: dict[str, Actor], staff: dict[str, dict[Role, Actor]]
) -> None:
    at_wuhan = request_at(service, people, WUHAN)
    # No stock kept there yet: any model of tokens.toml (as before points), and only those.
    with pytest.raises(ValidationError) as unknown:
        service.requests.accept(at_wuhan, actor=people["acceptor"], agree=True, usbkey_model="某品牌 某型号")
    assert unknown.value.errors[0].field == "usbkey"
    service.stock.intake(["S1"], model="SoftHSM2", point=WUHAN, actor=people["ops"])
    with pytest.raises(ValidationError, match="no 飞天诚信 ePass3003 key in stock \\(in stock: SoftHSM2\\)"):
        service.requests.accept(at_wuhan, actor=people["acceptor"], agree=True, usbkey_model="ePass3003")
    assert service.stock.acceptable_models(service.requests.get(at_wuhan).point_id) == ["SoftHSM2"]
    done = service.requests.accept(at_wuhan, actor=people["acceptor"], agree=True, usbkey_model="softhsm v2")
    assert done.usbkey_model == "SoftHSM2" and done.state is RequestState.ACCEPTED
    # Another point's stock does not count, and disagreeing needs no model.
    at_changsha = request_at(service, people, CHANGSHA)
    service.stock.intake(["S2"], model="SoftHSM2", point=CHANGSHA, actor=people["ops"])
    service.stock.transfer(["S2"], to=WUHAN, actor=people["ops"])
    with pytest.raises(ValidationError, match="in stock: none"):
        service.requests.accept(at_changsha, actor=people["acceptor"], agree=True, usbkey_model="SoftHSM2")
    assert service.requests.accept(at_changsha, actor=people["acceptor"], agree=False, comment="材料不全")


def test_serials_from_a_csv() -> None:
    assert serials_from_csv("\ufeff序列号,备注\nA1,新\n\n A2 ,\n") == ["A1", "A2"]
    assert serials_from_csv("B1\nB2\n") == ["B1", "B2"]


def test_all_approved_pairs_each_request_with_a_key_its_point_may_issue_onto(
    service: Service, people: dict[str, Actor], staff: dict[str, dict[Role, Actor]]
) -> None:
    service.stock.intake(["C1"], model="SoftHSM2", point=CHANGSHA, actor=people["ops"])
    at_wuhan = request_at(service, people, WUHAN, RequestState.APPROVED, usbkey_model="SoftHSM2")
    at_changsha = request_at(service, people, CHANGSHA, RequestState.APPROVED, usbkey_model="SoftHSM2")
    queue = service.token_issuance.approved_queue(actor=people["distributor"])
    assert [q.id for q in queue] == [at_wuhan, at_changsha]
    # C1 is 长沙's; NEW is unknown, fit only where no stock is kept (武汉).
    pairs = service.token_issuance.pairs(queue, ["C1", "NEW"])
    assert [(q.id, serial) for q, serial in pairs] == [(at_wuhan, "NEW"), (at_changsha, "C1")]
    theirs = service.token_issuance.approved_queue(actor=staff[CHANGSHA][Role.DISTRIBUTOR])
    assert [q.id for q in theirs] == [at_changsha]
    assert service.token_issuance.pairs(theirs, ["NEW"]) == []
