"""The API through Flask's test client over the test service (fixed clock, both databases): sessions,
transport, idempotency, validation before the service, problem documents, the role matrix, the contract."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from pki.clock import FixedClock
from pki.desk.contract import operations
from pki.enums import Action, Deal, Role
from pki.models import ApiSession, Certificate, IdempotencyRecord
from pki.services import Actor, Service
from pki.services.sessions import token_hash
from tests.api.conftest import bearer
from tests.conftest import T0
from tests.support.data import application, make_uscc
from tests.support.pki import approved, csr_for, key
from web import create_app

PASSWORD = "api-test-password"


@pytest.fixture
def client(ca_service: Service) -> FlaskClient:
    return create_app(ca_service, {"TESTING": True}).test_client()


def test_login_gives_a_token_the_server_keeps_only_as_a_hash(client: FlaskClient, service: Service) -> None:
    service.users.add("root", PASSWORD, ["admin"], actor=None)
    opened = client.post("/api/v1/sessions", json={"username": "root", "password": PASSWORD})
    assert opened.status_code == 201
    token = opened.json["token"]
    assert opened.json["expires_at"] == (T0 + service.ctx.policies.access.desk_absolute).isoformat()
    with Session(service.ctx.engine) as s:
        stored = s.exec(select(ApiSession)).one()
    assert stored.token_hash == token_hash(token) and token not in stored.token_hash
    me = client.get("/api/v1/sessions/current", headers={"Authorization": f"Bearer {token}"})
    assert me.json == {"username": "root", "roles": ["admin"]}


def test_wrong_passwords_are_throttled_like_every_login(client: FlaskClient, service: Service) -> None:
    service.users.add("root", PASSWORD, ["admin"], actor=None)
    limit = service.ctx.policies.access.max_failures_per_user
    for _ in range(limit):
        bad = client.post("/api/v1/sessions", json={"username": "root", "password": "wrong-password"})
        assert bad.status_code == 401 and bad.json["code"] == "authentication"
    throttled = client.post("/api/v1/sessions", json={"username": "root", "password": PASSWORD})
    assert throttled.status_code == 429 and throttled.json["code"] == "throttled"
    assert throttled.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("advance", "why"),
    [
        (lambda p: p.desk_idle + timedelta(seconds=1), "expired (idle)"),
        (lambda p: None, "expired"),
    ],
    ids=["idle", "absolute"],
)
def test_sessions_end(client: FlaskClient, service: Service, clock: FixedClock, people, advance, why) -> None:
    headers = bearer(service, "clerk")
    policy = service.ctx.policies.access
    step = advance(policy)
    if step is None:  # used every so often until the absolute limit passes
        while clock.now() < T0 + policy.desk_absolute:
            clock.advance(policy.desk_idle / 2)
            client.get("/api/v1/sessions/current", headers=headers)
    else:
        clock.advance(step)
    answer = client.get("/api/v1/requests", headers=headers)
    assert answer.status_code == 401
    assert answer.json["detail"] == f"session {why}: log in again with 'pkictl login'"


def test_no_token_no_service(client: FlaskClient, people) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer nope"},
    ):
        answer = client.get("/api/v1/requests", headers=headers)
        assert answer.status_code == 401, headers


def test_secrets_are_refused_over_plain_http_from_elsewhere(
    client: FlaskClient, service: Service, people
) -> None:
    headers = bearer(service, "clerk")
    far = {"REMOTE_ADDR": "192.0.2.7"}
    plain = client.get("/api/v1/requests", headers=headers, environ_base=far)
    assert plain.status_code == 403 and plain.json["code"] == "insecure_transport"
    login = client.post("/api/v1/sessions", json={"username": "x", "password": "y"}, environ_base=far)
    assert login.status_code == 403
    tls = client.get("/api/v1/requests", headers=headers, environ_base=far, base_url="https://center.example")
    assert tls.status_code == 200


def _issue(client: FlaskClient, headers: dict[str, str], rid: int, csr: bytes, key_: str):
    body = {"csr": base64.b64encode(csr).decode()}
    return client.post(
        f"/api/v1/requests/{rid}/certificate", json=body, headers=headers | {"Idempotency-Key": key_}
    )


def test_a_retried_issuance_issues_once(client: FlaskClient, ca_service: Service, people) -> None:
    rid = approved(ca_service, people)
    headers = bearer(ca_service, "distributor")
    csr = csr_for(key("ec-p256", 41))
    first = _issue(client, headers, rid, csr, "k-1")
    again = _issue(client, headers, rid, csr, "k-1")
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert again.json == first.json
    with Session(ca_service.ctx.engine) as s:
        assert len(s.exec(select(Certificate).where(Certificate.request_id == rid)).all()) == 1
    # The same key for another request is refused; a new key for the same request meets the state machine.
    other = _issue(client, headers, rid, csr_for(key("ec-p256", 42)), "k-1")
    assert other.status_code == 409 and "different request" in other.json["detail"]
    fresh = _issue(client, headers, rid, csr, "k-2")
    assert fresh.status_code == 409 and fresh.json["code"] == "invalid_transition"


def test_a_refused_write_claims_no_key(client: FlaskClient, ca_service: Service, people) -> None:
    rid = approved(ca_service, people)
    csr = csr_for(key("ec-p256", 43))
    refused = _issue(client, bearer(ca_service, "clerk"), rid, csr, "k-9")  # no distributor role
    assert refused.status_code == 403
    with Session(ca_service.ctx.engine) as s:
        assert s.exec(select(IdempotencyRecord)).all() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"application": {"unit_name": {"nested": 1}}}, "application.unit_name"),
        ({"application": {}, "extra": 1}, "extra"),
        ({}, "application"),
    ],
)
def test_bodies_are_validated_before_the_service(
    client: FlaskClient, service: Service, people, body, field
) -> None:
    answer = client.post("/api/v1/requests", json=body, headers=bearer(service, "clerk"))
    assert answer.status_code == 400
    assert any(e["field"].startswith(field) for e in answer.json["errors"]), answer.json
    assert all(e["message_zh"] for e in answer.json["errors"])


def test_deep_or_huge_bodies_are_refused(client: FlaskClient, service: Service, people) -> None:
    headers = bearer(service, "clerk") | {"Content-Type": "application/json"}
    deep = '{"application":' + "[" * 100_000 + "]" * 100_000 + "}"
    answer = client.post("/api/v1/requests", data=deep, headers=headers)
    assert answer.status_code == 400 and "nested" in answer.json["detail"]
    huge = client.post("/api/v1/requests", data=b"{" + b" " * (25 * 1024 * 1024) + b"}", headers=headers)
    assert huge.status_code == 413 and huge.headers["content-type"] == "application/problem+json"


def test_unknown_paths_and_methods_are_problems(client: FlaskClient, service: Service, people) -> None:
    headers = bearer(service, "clerk")
    for answer, status in (
        (client.get("/api/v1/nowhere", headers=headers), 404),
        (client.patch("/api/v1/requests", headers=headers), 405),
        (client.get("/api/v1/requests/18446744073709551616", headers=headers), 404),
        (client.get("/api/v1/requests/0", headers=headers), 404),
    ):
        assert answer.status_code == status
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json["status"] == status


# What each role may do to a request in the state that allows the step (policies/workflow.toml).
STEPS = {
    "accept": (
        "entered",
        lambda rid: (f"/api/v1/requests/{rid}/accept", {"opinion": "agree", "usbkey": "飞天诚信 ePass3003"}),
    ),
    "countersign": ("accepted", lambda rid: (f"/api/v1/requests/{rid}/countersign", {})),
    "approve": ("countersigned", lambda rid: (f"/api/v1/requests/{rid}/review", {"decision": "approve"})),
    "return": (
        "countersigned",
        lambda rid: (f"/api/v1/requests/{rid}/review", {"decision": "return", "reason": "补正"}),
    ),
    "reject": (
        "countersigned",
        lambda rid: (f"/api/v1/requests/{rid}/review", {"decision": "reject", "reason": "不符"}),
    ),
    "cancel": ("entered", lambda rid: (f"/api/v1/requests/{rid}/cancel", {"reason": "撤回"})),
    "edit": ("entered", lambda rid: (f"/api/v1/requests/{rid}", None)),
}


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
@pytest.mark.parametrize("step", list(STEPS))
def test_role_matrix_through_the_api(
    client: FlaskClient, service: Service, people, role: Role, step: str
) -> None:
    from pki.enums import Action

    state, where = STEPS[step]
    uscc = make_uscc("110101", str(83000000 + list(STEPS).index(step) * 10 + list(Role).index(role)))
    req = service.requests.create(application(credential_number=uscc), actor=people["clerk"])
    assert req.id is not None
    if state in ("accepted", "countersigned"):
        service.requests.accept(
            req.id, actor=people["acceptor"], agree=True, usbkey_model="飞天诚信 ePass3003"
        )
    if state == "countersigned":
        service.requests.countersign(req.id, actor=people["head"])
    actor_name = f"matrix-{role.value}"
    from pki.models import User

    with Session(service.ctx.engine) as s:
        s.add(User(username=actor_name, password_hash="!", roles=role.value, created_at=T0))
        s.commit()
    path, body = where(req.id)
    headers = bearer(service, actor_name)
    if body is None:
        answer = client.put(
            path,
            json={"application": application(credential_number=uscc, unit_fax="010-87654321")},
            headers=headers,
        )
    else:
        answer = client.post(path, json=body, headers=headers)
    allowed = service.ctx.policies.workflow.role_allows([role.value], Action(step))
    if allowed:
        assert answer.status_code == 200, answer.json
    else:
        assert answer.status_code == 403 and answer.json["code"] == "forbidden", answer.json


def test_separation_of_duties_through_the_api(
    client: FlaskClient, service: Service, people: dict[str, Actor]
) -> None:
    from pki.models import User

    with Session(service.ctx.engine) as s:
        s.add(User(username="both", password_hash="!", roles="acceptor,entry", created_at=T0))
        s.commit()
    headers = bearer(service, "both")
    made = client.post("/api/v1/requests", json={"application": application()}, headers=headers)
    assert made.status_code == 201
    own = client.post(
        f"/api/v1/requests/{made.json['id']}/accept",
        json={"opinion": "agree", "usbkey": "ePass3003"},
        headers=headers,
    )
    assert own.status_code == 403 and own.json["code"] == "separation_of_duties"


def test_the_contract_is_published_from_the_models(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    ids = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert ids == set(operations())
    new = doc["paths"]["/api/v1/requests"]["post"]
    assert (
        new["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        == "#/components/schemas/NewRequest"
    )
    assert "Request" in doc["components"]["schemas"]
    assert set(doc["components"]["schemas"]["Request"]["properties"]) >= {"unit_name", "state", "entered_at"}
    json.dumps(doc)  # a JSON document, all of it


def _csv_units() -> str:
    uscc = make_uscc("110101", "86000001")
    return base64.b64encode(f"单位名称,统一社会信用代码\n某单位,{uscc}\n".encode()).decode()


# Operations beyond a request's own steps: (kind in workflow.toml, its name, method, path, body). The request
# they act on is approved; an allowed role may still meet another refusal (not found, wrong state), never 403.
OTHER_OPERATIONS = {
    "request.new": (
        "action",
        "enter",
        "POST",
        "/api/v1/requests",
        lambda rid: {"application": application(credential_number=make_uscc("110101", str(86100000 + rid)))},
    ),
    "request.import": (
        "action",
        "enter",
        "POST",
        "/api/v1/requests/imports",
        lambda rid: {"csv": _csv_units(), "label": "批次", "defaults": {}},
    ),
    "issue.csr": (
        "action",
        "issue",
        "POST",
        "/api/v1/requests/{rid}/certificate",
        lambda rid: {"csr": base64.b64encode(csr_for(key("ec-p256", 45))).decode()},
    ),
    "token.begin": ("action", "issue", "POST", "/api/v1/requests/{rid}/token-issuance", lambda rid: {}),
    "distribute": (
        "action",
        "distribute",
        "POST",
        "/api/v1/requests/{rid}/distribution",
        lambda rid: {"recipient": "王五"},
    ),
    "revoke": (
        "operation",
        "revoke",
        "POST",
        "/api/v1/revocations",
        lambda rid: {"serials": ["0A0B"], "reason": "keyCompromise"},
    ),
    "renew": ("operation", "renew", "POST", "/api/v1/certificates/0A0B/renewal", lambda rid: {}),
    # 续期 onto the USB key holding the key pair: the same roles as renew
    "renew.token.begin": (
        "operation",
        "renew",
        "POST",
        "/api/v1/certificates/0A0B/renewal/token",
        lambda rid: {},
    ),
    "renew.token.record": (
        "operation",
        "renew",
        "POST",
        "/api/v1/certificates/0A0B/renewal/token/certificate",
        lambda rid: {"token_serial": "T1", "csr": base64.b64encode(csr_for(key("ec-p256", 48))).decode()},
    ),
    "renew.token.pending": (
        "operation",
        "renew",
        "GET",
        "/api/v1/certificates/0A0B/renewal/token",
        lambda rid: {},
    ),
    "renew.token.deliver": (
        "operation",
        "renew",
        "POST",
        "/api/v1/certificates/0A0B/renewal/token/delivery",
        lambda rid: {"token_serial": "T1", "renewal": "0C0D"},
    ),
    "hold": ("operation", "hold", "POST", "/api/v1/certificates/0A0B/hold", lambda rid: {}),
    "release": ("operation", "hold", "POST", "/api/v1/certificates/0A0B/release", lambda rid: {}),
    "token.mark": (
        "operation",
        "token_mark",
        "POST",
        "/api/v1/tokens/NO-SUCH-KEY/marks",
        lambda rid: {"mark": "lost"},
    ),
    "token.so_pin.register": (
        "operation",
        "token_admin",
        "PUT",
        "/api/v1/tokens/KEY-{rid}/so-pin",
        lambda rid: {"so_pin": "so-pin-12345678"},
    ),
    # [deals.unlock] roles.complete and [operations] token_admin name the same roles (distributor, ops).
    "token.unlock.begin": (
        "operation",
        "token_admin",
        "POST",
        "/api/v1/tokens/KEY-{rid}/unlock",
        lambda rid: {},
    ),
    "token.unlock.finish": (
        "operation",
        "token_admin",
        "POST",
        "/api/v1/tokens/KEY-{rid}/unlock/done",
        lambda rid: {"request_id": rid + 100000, "so_pin_changed": True},
    ),
}


# The operations an approved deal also opens to the roles that carry it out (workflow.toml [deals]).
CARRIED_OUT = {
    "revoke": ((Action.COMPLETE, Deal.REVOKE),),
    "renew": ((Action.ISSUE, Deal.RENEW), (Action.ISSUE, Deal.REKEY)),
    **{
        name: ((Action.ISSUE, Deal.RENEW), (Action.ISSUE, Deal.REKEY))
        for name in ("renew.token.begin", "renew.token.record", "renew.token.pending", "renew.token.deliver")
    },
    "hold": ((Action.COMPLETE, Deal.HOLD),),
    "release": ((Action.COMPLETE, Deal.RELEASE),),
}


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
@pytest.mark.parametrize("name", list(OTHER_OPERATIONS))
def test_operation_matrix_through_the_api(
    client: FlaskClient, ca_service: Service, people, role: Role, name: str
) -> None:
    from pki.enums import Action
    from pki.models import User

    kind, rule, method, path, body = OTHER_OPERATIONS[name]
    rid = approved(ca_service, people)
    actor_name = f"op-{role.value}"
    with Session(ca_service.ctx.engine) as s:
        s.add(User(username=actor_name, password_hash="!", roles=role.value, created_at=T0))
        s.commit()
    answer = client.open(
        path.format(rid=rid), method=method, json=body(rid), headers=bearer(ca_service, actor_name)
    )
    policy = ca_service.ctx.policies.workflow
    allowed = (
        policy.role_allows([role.value], Action(rule))
        if kind == "action"
        else policy.operation_allows([role.value], rule)
        # or, without the operation's role, the step that carries out an approved deal of that kind
        or any(policy.role_allows([role.value], step, deal) for step, deal in CARRIED_OUT.get(name, ()))
    )
    if allowed:
        assert answer.status_code != 403, answer.json
        assert answer.status_code < 500
    else:
        assert answer.status_code == 403 and answer.json["code"] == "forbidden", answer.json


def test_nul_characters_are_refused_by_field(client: FlaskClient, service: Service, people) -> None:
    headers = bearer(service, "clerk")
    query = client.get("/api/v1/parties?platform=x%00y", headers=headers)
    assert query.status_code == 400 and query.json["errors"][0]["field"] == "platform"
    body = client.post(
        "/api/v1/requests", json={"application": application(unit_name="某\x00单位")}, headers=headers
    )
    assert body.status_code == 400 and body.json["errors"][0]["field"] == "application.unit_name"


def test_one_key_for_another_request_is_refused_not_replayed(
    client: FlaskClient, service: Service, people
) -> None:
    a = service.requests.create(application(), actor=people["clerk"])
    b = service.requests.create(
        application(credential_number=make_uscc("110101", "86200001")), actor=people["clerk"]
    )
    headers = bearer(service, "acceptor") | {"Idempotency-Key": "same"}
    body = {"opinion": "agree", "usbkey": "飞天诚信 ePass3003"}
    first = client.post(f"/api/v1/requests/{a.id}/accept", json=body, headers=headers)
    other = client.post(f"/api/v1/requests/{b.id}/accept", json=body, headers=headers)
    assert first.status_code == 200
    assert other.status_code == 409 and "different request" in other.json["detail"]
    assert service.requests.get(b.id or 0).state.value == "entered"


def test_the_center_checks_the_key_type_it_is_told(client: FlaskClient, ca_service: Service, people) -> None:
    rid = approved(ca_service, people, usbkey_model="飞天诚信 ePass3003")  # tokens.toml: RSA-2048 only
    headers = bearer(ca_service, "distributor")
    label = ca_service.token_handshake.begin(rid, actor=people["distributor"]).label

    def record(key_type: str):
        return client.post(
            f"/api/v1/requests/{rid}/token-issuance/certificate",
            json={
                "token_serial": "T1",
                "key_id": "0102",
                "key_type": key_type,
                "label": label,
                "csr": base64.b64encode(csr_for(key("ec-p256", 47))).decode(),
            },
            headers=headers,
        )

    unsupported, mislabelled = record("ec-p256"), record("rsa-2048")
    assert unsupported.status_code == 400 and unsupported.json["errors"][0]["field"] == "key_type"
    assert mislabelled.status_code == 400 and "CSR's key is not rsa-2048" in mislabelled.json["detail"]


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("GET", "/api/v1/parties?after_id=99999999999", None, "after_id"),
        ("POST", "/api/v1/access-checks", {"at": "0001-01-01T00:00:00+14:00"}, "at"),
        ("GET", "/api/v1/cutover/plan?at=9999-12-31T23:59:59%2B00:00&days=3650", None, "at"),
    ],
)
def test_far_values_are_refused_by_field(
    client: FlaskClient, service: Service, people, method, url, body, field
) -> None:
    answer = client.open(url, method=method, json=body, headers=bearer(service, "clerk"))
    assert answer.status_code == 400, answer.json
    assert answer.json["errors"][0]["field"] == field
