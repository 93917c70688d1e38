"""Acceptance points in the clerks' UI (Flask's test client): for every role, a 武汉 user's lists, queue and
search never show 长沙's request or certificate, and their URLs answer 404 like missing ones; the provincial
point sees 武汉's work; the acceptance form offers the models the point has in stock."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from pki.enums import Action, RequestState, Role
from pki.services import Actor, Service
from policies import load_policies
from tests.support.points import (
    CHANGSHA,
    PROVINCIAL,
    WUHAN,
    Issued,
    add_points,
    certificate_at,
    request_at,
    staff_at,
)
from tests.web.conftest import post

WORKFLOW = load_policies().workflow

_ROW = re.compile(r'<td><a href="/requests/(\d+)">\d+</a></td>')


def _ids(html: str) -> set[int]:
    return {int(x) for x in _ROW.findall(html)}


def _usbkey_options(html: str) -> list[str]:
    found = re.search(r'<select id="a-usbkey" name="usbkey">(.*?)</select>', html, re.S)
    assert found, "no USBKEY select on the page"
    return re.findall(r'<option value="([^"]*)"', found.group(1))


@pytest.fixture
def world(ca_service: Service, people: dict[str, Actor]) -> dict[str, object]:
    add_points(ca_service, people["admin"])
    for point in (PROVINCIAL, WUHAN, CHANGSHA):
        staff_at(ca_service, point)
    return {
        "theirs": request_at(ca_service, people, CHANGSHA, unit_name="长沙某单位"),
        "their_cert": certificate_at(ca_service, people, CHANGSHA),
        "mine": request_at(ca_service, people, WUHAN, unit_name="武汉某单位"),
        "my_cert": certificate_at(ca_service, people, WUHAN),
    }


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_a_wuhan_user_never_sees_changshas_work(
    client_as: Callable[[str], FlaskClient], world: dict[str, object], role: Role
) -> None:
    client = client_as(f"wh-{role.value}")
    theirs, mine = world["theirs"], world["mine"]
    their_cert, my_cert = world["their_cert"], world["my_cert"]
    assert isinstance(their_cert, Issued) and isinstance(my_cert, Issued)
    everything = _ids(client.get("/requests/").get_data(as_text=True))
    assert mine in everything and theirs not in everything and their_cert.request_id not in everything
    assert _ids(client.get("/requests/?q=长沙某单位").get_data(as_text=True)) == set()
    assert theirs not in _ids(client.get("/requests/queue").get_data(as_text=True))
    missing = client.get("/requests/999999")
    for path in (f"/requests/{theirs}", f"/requests/{theirs}/print", f"/requests/{theirs}/edit"):
        got = client.get(path)
        assert got.status_code == missing.status_code == 404, path
        assert "页面不存在" in got.get_data(as_text=True) or "不存在" in got.get_data(as_text=True)
    certs = client.get("/certificates/").get_data(as_text=True)
    assert my_cert.serial in certs and their_cert.serial not in certs
    for path in (f"/certificates/{their_cert.serial}", f"/certificates/{their_cert.serial}.pem"):
        assert client.get(path).status_code == 404, path
    assert client.get(f"/certificates/{my_cert.serial}").status_code == 200
    forced = post(client, f"/requests/{theirs}/cancel", {"cancel_reason": "撤回"}, page="/requests/")
    # A role that may cancel is told the request does not exist; the others are refused by role first.
    assert forced.status_code == (404 if WORKFLOW.role_allows({role.value}, Action.CANCEL) else 403)


def test_the_provincial_point_sees_wuhan_and_a_center_user_sees_both(
    client_as: Callable[[str], FlaskClient], world: dict[str, object]
) -> None:
    provincial = client_as(f"hb-{Role.REVIEWER.value}")
    seen = _ids(provincial.get("/requests/").get_data(as_text=True))
    assert world["mine"] in seen and world["theirs"] not in seen
    assert provincial.get(f"/requests/{world['mine']}").status_code == 200
    center = _ids(client_as("reviewer").get("/requests/").get_data(as_text=True))
    assert {world["mine"], world["theirs"]} <= center


def test_the_acceptance_form_offers_the_models_in_stock(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    add_points(ca_service, people["admin"])
    staff_at(ca_service, WUHAN)
    rid = request_at(ca_service, people, WUHAN)
    client = client_as(f"wh-{Role.ACCEPTOR.value}")
    options = _usbkey_options(client.get(f"/requests/{rid}").get_data(as_text=True))
    assert options == ["", "SoftHSM2", "飞天诚信 ePass3003", "飞天诚信 ePass2003"]  # no stock kept yet: all
    ca_service.stock.intake(["K1"], model="ePass2003", point=WUHAN, actor=people["ops"])
    page = client.get(f"/requests/{rid}").get_data(as_text=True)
    assert _usbkey_options(page) == ["", "飞天诚信 ePass2003"]
    refused = post(
        client, f"/requests/{rid}/accept", {"opinion": "agree", "usbkey": "SoftHSM2"}, page=f"/requests/{rid}"
    )
    assert refused.status_code == 400 and "本受理点没有该型号的USB Key库存" in refused.get_data(as_text=True)
    done = post(
        client,
        f"/requests/{rid}/accept",
        {"opinion": "agree", "usbkey": "飞天诚信 ePass2003"},
        page=f"/requests/{rid}",
    )
    assert done.status_code == 302
    req = ca_service.requests.get(rid)
    assert req.state is RequestState.ACCEPTED and req.usbkey_model == "飞天诚信 ePass2003"
    assert Action.COUNTERSIGN not in ca_service.requests.allowed_actions(rid, people["acceptor"])
