"""The full authorization matrix through the web UI: every role × every action a page offers.

Expectations are generated from workflow.toml (roles per action) and the state machine: an allowed action is
offered on the detail page and moves the request to ``transition(state, action)``; a refused one is not
offered, and forcing the POST anyway is refused with 403 and changes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from pki.enums import Action, RequestState, Role
from pki.lifecycle import transition
from pki.services import Actor, Service
from policies import load_policies
from tests.support.data import application
from tests.web.conftest import post

WORKFLOW = load_policies().workflow
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64

# action -> (state the request must be in, route suffix, form, the detail page's form id that offers it)
WEB_ACTIONS: dict[str, tuple[RequestState | None, str, dict[str, object], str]] = {
    "enter": (None, "/requests/new", {}, ""),
    "edit": (RequestState.RETURNED, "/edit", {}, ""),
    "accept": (
        RequestState.ENTERED,
        "/accept",
        {"opinion": "agree", "usbkey": "飞天诚信 ePass3003"},
        "form-accept",
    ),
    "disagree": (
        RequestState.ENTERED,
        "/accept",
        {"opinion": "disagree", "comment": "材料不全"},
        "form-accept",
    ),
    "countersign": (RequestState.ACCEPTED, "/countersign", {}, "form-countersign"),
    "approve": (RequestState.COUNTERSIGNED, "/review", {"decision": "approve"}, "form-review"),
    "return": (
        RequestState.COUNTERSIGNED,
        "/review",
        {"decision": "return", "reason": "请补充传真"},
        "form-review",
    ),
    "reject": (
        RequestState.COUNTERSIGNED,
        "/review",
        {"decision": "reject", "reason": "不符合条件"},
        "form-review",
    ),
    "cancel": (RequestState.ENTERED, "/cancel", {"cancel_reason": "单位撤回申请"}, "form-cancel"),
    "attach": (RequestState.ENTERED, "/attachments", {"kind": "signed_form"}, "form-attach"),
}


def _allowed(role: Role, action: str) -> bool:
    if action == "attach":
        return WORKFLOW.operation_allows({role.value}, "attach")
    return WORKFLOW.role_allows({role.value}, Action(action))


def _walk(service: Service, people: dict[str, Actor], state: RequestState) -> int:
    req = service.requests.create(application(), actor=people["clerk"])
    assert req.id is not None
    rid = req.id
    if state is RequestState.ENTERED:
        return rid
    service.requests.accept(rid, actor=people["acceptor"], agree=True, usbkey_model="飞天诚信 ePass3003")
    if state is RequestState.ACCEPTED:
        return rid
    service.requests.countersign(rid, actor=people["head"])
    if state is RequestState.COUNTERSIGNED:
        return rid
    assert state is RequestState.RETURNED
    service.requests.review(rid, actor=people["reviewer"], decision=Action.RETURN, reason="请补充")
    return rid


def _form(overrides: dict[str, object]) -> dict[str, object]:
    data = {k: ("true" if v is True else str(v)) for k, v in application(**overrides).items()}
    return data


MATRIX = [pytest.param(role, action, id=f"{role.value}-{action}") for role in Role for action in WEB_ACTIONS]


@pytest.mark.parametrize(("role", "action"), MATRIX)
def test_role_action(
    role: Role,
    action: str,
    service: Service,
    people: dict[str, Actor],
    role_users: dict[Role, str],
    client_as: Callable[[str], FlaskClient],
) -> None:
    state, suffix, form, form_id = WEB_ACTIONS[action]
    client = client_as(role_users[role])
    allowed = _allowed(role, action)

    if action == "enter":
        page = client.get("/requests/new")
        assert page.status_code == (200 if allowed else 403)
        got = post(client, "/requests/new", _form({}))
        if allowed:
            assert got.status_code == 302
            rid = int(got.headers["Location"].rsplit("/", 1)[1])
            assert service.requests.get(rid).state is RequestState.ENTERED
            assert service.requests.get(rid).entered_by == role_users[role]
        else:
            assert got.status_code == 403
            assert service.requests.find() == []
        return

    assert state is not None
    rid = _walk(service, people, state)
    before = service.requests.get(rid)
    detail = client.get(f"/requests/{rid}").get_data(as_text=True)
    if action == "edit":
        offered = f'href="/requests/{rid}/edit"' in detail
        data = _form({"unit_fax": "010-87654321"}) | {"version": before.version}
        got = post(client, f"/requests/{rid}/edit", data)
    elif action == "attach":
        offered = 'id="form-attach"' in detail
        got = post(
            client,
            f"/requests/{rid}/attachments",
            {**form, "file": (__import__("io").BytesIO(PNG), "scan.png")},
            content_type="multipart/form-data",
        )
    else:
        offered = f'id="{form_id}"' in detail and (
            action not in ("accept", "disagree", "approve", "return", "reject")
            or f'value="{form.get("opinion") or form.get("decision")}"' in detail
        )
        got = post(client, f"/requests/{rid}{suffix}", {**form, "version": before.version})
    after = service.requests.get(rid)

    assert offered is allowed
    if allowed:
        assert got.status_code == 302, got.get_data(as_text=True)
        if action == "attach":
            assert [a.filename for a in service.attachments.list_for(rid, actor=people["acceptor"])] == [
                "scan.png"
            ]
        else:
            assert after.state is transition(before.state, Action(action))
            assert after.version == before.version + 1
    else:
        assert got.status_code == 403
        assert "无权" in got.get_data(as_text=True)
        assert (after.state, after.version) == (before.state, before.version)


@pytest.mark.parametrize("route", ["/accept", "/countersign", "/review", "/cancel"])
def test_separation_of_duties_is_refused_when_forced(
    route: str, service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    """'omni' holds every role: having entered the request, the service still refuses every later step."""
    req = service.requests.create(application(), actor=people["omni"])
    assert req.id is not None
    client = client_as("omni")
    detail = client.get(f"/requests/{req.id}").get_data(as_text=True)
    assert 'id="form-accept"' not in detail  # not offered
    form = {
        "opinion": "agree",
        "usbkey": "ePass3003",
        "decision": "approve",
        "cancel_reason": "撤回",
        "version": req.version,
    }
    got = post(client, f"/requests/{req.id}{route}", form)
    if route == "/cancel":  # the clerk who entered it may withdraw it
        assert got.status_code == 302
        assert service.requests.get(req.id).state is RequestState.CANCELLED
    elif route in ("/accept", "/review"):  # separation of duties is checked before the state
        assert got.status_code == 403 and "录入人不得受理或审核同一申请" in got.get_data(as_text=True)
        assert service.requests.get(req.id).state is RequestState.ENTERED
    else:  # no duty conflict, but the wrong state
        assert got.status_code == 409 and "不允许" in got.get_data(as_text=True)
        assert service.requests.get(req.id).state is RequestState.ENTERED


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_evidence_upload_by_role(
    role: Role,
    service: Service,
    people: dict[str, Actor],
    role_users: dict[Role, str],
    client_as: Callable[[str], FlaskClient],
) -> None:
    """Recording a report (issue 6) on a formal request: offered and accepted exactly for the roles of the
    ``evidence_record`` operation; forced by any other role, refused with 403 and nothing recorded."""
    from tests.integration.test_cutover import HEBEI, countersigned, uscc

    number = uscc(HEBEI)
    rid = countersigned(service, people, number)
    allowed = WORKFLOW.operation_allows({role.value}, "evidence_record")
    client = client_as(role_users[role])
    offered = 'id="form-evidence"' in client.get(f"/requests/{rid}").get_data(as_text=True)
    form = {
        "evidence_type": "waiver",
        "evidence_reference": "函〔2020〕9号",
        "evidence_date": "2020-10-19",
        "evidence_file": (io.BytesIO(b"%PDF-1.4 letter"), "letter.pdf"),
    }
    got = post(client, f"/requests/{rid}/evidence", form, content_type="multipart/form-data")
    recorded = service.parties.list_evidence(credential_number=number)
    assert offered is allowed
    if allowed:
        assert got.status_code == 302 and [e.recorded_by for e in recorded] == [role_users[role]]
    else:
        assert got.status_code == 403 and "无权" in got.get_data(as_text=True) and recorded == []
