"""Hostile path segments and form fields in the clerks' UI, on SQLite and PostgreSQL: an id beyond any column
(or one with thousands of digits) is 404 on every page and action form, a malformed serial 400; never a 5xx,
and nothing is written."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from pki.services import Actor, Service
from tests.web.conftest import post

IDS = [str(2**64 + 7), str(2**31), "9" * 5000]


def audit_count(service: Service) -> int:
    with service.ctx.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM audit_record WHERE action NOT LIKE 'auth.%'")
            ).scalar_one()
        )


@pytest.mark.parametrize("rid", IDS, ids=["2^64", "2^31", "5000-digits"])
def test_request_pages_and_forms_with_ids_out_of_range_are_404(
    client_as: Callable[[str], FlaskClient], service: Service, people: dict[str, Actor], rid: str
) -> None:
    client = client_as("omni")
    before = audit_count(service)
    for path in (f"/requests/{rid}", f"/requests/{rid}/edit", f"/requests/{rid}/print",
                 f"/requests/{rid}/attachments/1", f"/requests/1/attachments/{rid}",
                 f"/requests/evidence/{rid}"):  # fmt: skip
        got = client.get(path)
        assert got.status_code == 404, (path, got.status_code)
        assert "页面不存在" in got.get_data(as_text=True) or "不存在" in got.get_data(as_text=True), path
    forms = {
        "accept": {"opinion": "agree", "usbkey_model": "飞天诚信 ePass3003"},
        "countersign": {},
        "review": {"decision": "approve"},
        "cancel": {"reason": "r"},
        "attachments": {"kind": "scan"},
        "evidence": {"evidence_type": "waiver"},
        "edit": {"unit_name": "x"},
        "distribute": {"recipient": "李四"},
    }
    for action, data in forms.items():
        got = post(client, f"/requests/{rid}/{action}", data, page="/requests/")
        assert got.status_code == 404, (action, got.status_code)
    assert audit_count(service) == before


@pytest.mark.parametrize(
    ("serial", "status"),
    [("1" * 41, 400), ("not-hex", 400), ("ABCDEF", 404), ("0", 404)],
    ids=["41-digits", "not-hex", "unknown", "zero"],
)
def test_certificate_pages_with_bad_serials(
    client_as: Callable[[str], FlaskClient],
    service: Service,
    people: dict[str, Actor],
    serial: str,
    status: int,
) -> None:
    client = client_as("omni")
    for path in (f"/certificates/{serial}", f"/certificates/{serial}.pem", f"/certificates/{serial}/change"):
        assert client.get(path).status_code == status, path
    before = audit_count(service)
    forms = {
        "deals": {"deal": "hold", "comment": "x"},
        "change": {"unit_name": "x"},
        "revoke": {"confirm": "yes", "reason": "keyCompromise"},
        "hold": {"confirm": "yes"},
        "release": {},
    }
    for action, data in forms.items():
        got = post(client, f"/certificates/{serial}/{action}", data, page="/certificates/")
        assert got.status_code == status, (action, got.status_code)
        assert "<title>" in got.get_data(as_text=True) and "Traceback" not in got.get_data(as_text=True)
    assert audit_count(service) == before


def test_list_bounds_out_of_range_are_a_clear_400(
    client_as: Callable[[str], FlaskClient], people: dict[str, Actor]
) -> None:
    client = client_as("omni")
    for path in (f"/requests/?before={2**64}", f"/certificates/?after={2**64}"):
        got = client.get(path)
        assert got.status_code == 400, (path, got.status_code)
        assert "应为 0 到 2147483647 之间的整数" in got.get_data(as_text=True), path
    assert client.get(f"/requests/?before={2**31 - 1}").status_code == 200  # the largest id is fine
