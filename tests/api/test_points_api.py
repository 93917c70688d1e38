"""Acceptance points through the desks' API (Flask's test client over the test service, both databases): for
every role, a session of a 武汉 user gets 404 for 长沙's request, certificate and key, the same problem as
for missing ones, and lists without them; points and key stock through the contract's operations."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from pki.enums import Action, RequestState, Role
from pki.services import Actor, Service
from policies import load_policies
from tests.api.conftest import bearer
from tests.support.points import (
    CHANGSHA,
    WUHAN,
    add_points,
    certificate_at,
    request_at,
    staff_at,
)
from web import create_app

WORKFLOW = load_policies().workflow


@pytest.fixture
def client(ca_service: Service) -> FlaskClient:
    return create_app(ca_service, {"TESTING": True}).test_client()


@pytest.fixture
def work(ca_service: Service, people: dict[str, Actor]) -> dict[str, Any]:
    add_points(ca_service, people["admin"])
    staff_at(ca_service, WUHAN)
    ca_service.stock.intake(["CS-KEY"], model="ePass3003", point=CHANGSHA, actor=people["ops"])
    return {
        "entered": request_at(ca_service, people, CHANGSHA),
        "countersigned": request_at(ca_service, people, CHANGSHA, RequestState.COUNTERSIGNED),
        "certificate": certificate_at(ca_service, people, CHANGSHA),
        "mine": request_at(ca_service, people, WUHAN),
    }


def _same_as_missing(answer: Any, missing: Any, number: str | int, missing_number: str) -> None:
    """The same problem document as for a record that does not exist, but for the number it names."""
    assert answer.status_code == missing.status_code == 404
    assert answer.json["code"] == missing.json["code"] == "not_found"
    assert answer.json["detail_zh"] == missing.json["detail_zh"].replace(missing_number, str(number))
    assert answer.json["detail"] == missing.json["detail"].replace(missing_number, str(number))
    assert set(answer.json) == set(missing.json)


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_every_role_at_wuhan_gets_404_for_changshas_work(
    client: FlaskClient, ca_service: Service, work: dict[str, Any], role: Role
) -> None:
    h = bearer(ca_service, f"wh-{role.value}")
    rid = work["entered"]
    missing = client.get("/api/v1/requests/999999", headers=h)
    _same_as_missing(client.get(f"/api/v1/requests/{rid}", headers=h), missing, rid, "999999")
    listed = {r["id"] for r in client.get("/api/v1/requests?limit=1000", headers=h).json}
    assert work["mine"] in listed and rid not in listed
    serial = work["certificate"].serial
    gone = client.get("/api/v1/certificates/ABCDEF0123", headers=h)
    _same_as_missing(client.get(f"/api/v1/certificates/{serial}", headers=h), gone, serial, "ABCDEF0123")
    assert client.get("/api/v1/certificates", headers=h).json == []
    assert client.get(f"/api/v1/certificates/{serial}/export", headers=h).status_code == 404
    assert client.get("/api/v1/parties", headers=h).json == []
    tokens = client.post("/api/v1/tokens/inventory", json={"seen": []}, headers=h).json
    assert [t["serial"] for t in tokens] == []
    if WORKFLOW.role_allows(frozenset({role.value}), Action.ACCEPT):
        answer = client.post(
            f"/api/v1/requests/{rid}/accept", json={"opinion": "agree", "usbkey": "ePass3003"}, headers=h
        )
        assert answer.status_code == 404
    if WORKFLOW.role_allows(frozenset({role.value}), Action.APPROVE):
        target = work["countersigned"]
        answer = client.post(f"/api/v1/requests/{target}/review", json={"decision": "approve"}, headers=h)
        assert answer.status_code == 404
    if WORKFLOW.operation_allows(frozenset({role.value}), "revoke"):
        answer = client.post(
            "/api/v1/revocations", json={"serials": [serial], "reason": "keyCompromise"}, headers=h
        )
        assert answer.status_code == 404
    if WORKFLOW.operation_allows(frozenset({role.value}), "token_mark"):
        assert client.post("/api/v1/tokens/CS-KEY/marks", json={"mark": "lost"}, headers=h).status_code == 404
    assert ca_service.requests.get(rid).state is RequestState.ENTERED
    assert ca_service.certificates.get(serial).status.value == "valid"


def test_points_and_stock_through_the_api(
    client: FlaskClient, ca_service: Service, people: dict[str, Actor]
) -> None:
    add_points(ca_service, people["admin"])
    wuhan = staff_at(ca_service, WUHAN)
    staff_at(ca_service, CHANGSHA)
    admin = bearer(ca_service, "admin")
    added = client.post("/api/v1/points", json={"name": "宜昌受理点", "province": "湖北"}, headers=admin)
    assert added.status_code == 201 and added.json["province"] == "湖北" and added.json["parent"] is None
    refused = client.post(
        "/api/v1/points", json={"name": "某点", "province": "湖北"}, headers=bearer(ca_service, "ops")
    )
    assert refused.status_code == 403
    names = [p["name"] for p in client.get("/api/v1/points", headers=bearer(ca_service, "clerk")).json]
    assert "宜昌受理点" in names and WUHAN in names
    dist = bearer(ca_service, wuhan[Role.DISTRIBUTOR].username)
    taken = client.post(
        "/api/v1/tokens/intake", json={"serials": ["A-1", "A-2"], "model": "SoftHSM2"}, headers=dist
    )
    assert taken.status_code == 201 and taken.json["point"] == WUHAN
    sent = client.post("/api/v1/tokens/transfers", json={"serials": ["A-1"], "to": CHANGSHA}, headers=dist)
    assert sent.status_code == 200 and sent.json["state"] == "in_transit"
    there = bearer(ca_service, f"cs-{Role.DISTRIBUTOR.value}")
    assert client.post("/api/v1/tokens/receipts", json={"serials": ["A-1"]}, headers=there).status_code == 200
    back = client.post("/api/v1/tokens/returns", json={"serials": ["A-2"], "reason": "坏了"}, headers=dist)
    assert back.json["state"] == "defective"
    counts = client.get("/api/v1/tokens/stock", headers=there).json
    assert counts == [{"point": CHANGSHA, "model": "SoftHSM2", "state": "blank", "count": 1}]
