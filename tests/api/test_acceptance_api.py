"""The acceptance rules through the desks' API (the same operation as the CLI's): a problem document naming
``attachments`` or ``confirm_uscc``, and ``confirm_uscc`` in the contract."""

from __future__ import annotations

from flask.testing import FlaskClient

from pki.enums import RequestState
from pki.services import Actor, Service
from tests.api.test_api import bearer, client  # noqa: F401 (the fixture)
from tests.support.data import application, attach_required_scans, make_uscc

CODE = make_uscc("110101", "92000001")
AGREE = {"opinion": "agree", "usbkey": "飞天诚信 ePass3003"}


def test_accept_names_what_is_missing_and_takes_the_confirmation(
    client: FlaskClient,  # noqa: F811
    ca_service: Service,
    people: dict[str, Actor],
) -> None:
    ca_service.requests.create(
        application(credential_number=CODE, unit_name="北京甲公司"), actor=people["clerk"]
    )
    rid = (
        ca_service.requests.create(
            application(
                credential_number=CODE,
                unit_name="北京乙公司",
                target_system="另一个系统",
                access_type="formal",
            ),
            actor=people["clerk"],
        ).id
        or 0
    )
    headers = bearer(ca_service, "acceptor")
    refused = client.post(
        f"/api/v1/requests/{rid}/accept", json=AGREE, headers=headers | {"Idempotency-Key": "a1"}
    )
    assert refused.status_code == 400 and refused.mimetype == "application/problem+json"
    fields = {e["field"]: e for e in refused.json["errors"]}
    assert set(fields) == {"attachments", "confirm_uscc"}
    assert fields["confirm_uscc"]["message_zh"].startswith(f"统一社会信用代码 {CODE} 已登记在其他单位名下")
    attach_required_scans(ca_service, rid, people["clerk"])
    still = client.post(
        f"/api/v1/requests/{rid}/accept", json=AGREE, headers=headers | {"Idempotency-Key": "a2"}
    )
    assert [e["field"] for e in still.json["errors"]] == ["confirm_uscc"]
    done = client.post(
        f"/api/v1/requests/{rid}/accept",
        json=AGREE | {"confirm_uscc": True},
        headers=headers | {"Idempotency-Key": "a3"},
    )
    assert done.status_code == 200, done.json
    assert done.json["state"] == "accepted" and ca_service.requests.get(rid).state is RequestState.ACCEPTED
    wrong_type = client.post(
        f"/api/v1/requests/{rid}/accept",
        json=AGREE | {"confirm_uscc": "maybe"},
        headers=headers | {"Idempotency-Key": "a4"},
    )
    assert wrong_type.status_code == 400 and wrong_type.json["errors"][0]["field"] == "confirm_uscc"


def test_the_contract_documents_confirm_uscc(client: FlaskClient) -> None:  # noqa: F811
    document = client.get("/api/v1/openapi.json").json
    accept = document["components"]["schemas"]["Accept"]["properties"]
    assert accept["confirm_uscc"]["type"] == "boolean" and accept["confirm_uscc"]["default"] is False
