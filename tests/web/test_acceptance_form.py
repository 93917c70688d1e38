"""The acceptor's form: what is missing before agreeing (the stamped scan for a formal request) and the warning
when the unit's credit code is on record under another unit name, with links to the other records and a
confirmation the service insists on."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

from flask.testing import FlaskClient

from pki.enums import RequestState
from pki.services import Actor, Service
from tests.support.data import SCAN_PDF, application, make_uscc
from tests.support.pki import approved, csr_for, key
from tests.web.conftest import post

CODE = make_uscc("110101", "71000001")
AGREE = {"opinion": "agree", "usbkey": "飞天诚信 ePass3003"}


def _under_another_name(service: Service, people: dict[str, Actor], **more: object) -> int:
    """A request for 北京乙公司 under the credit code 北京甲公司 already has a request with."""
    service.requests.create(
        application(credential_number=CODE, unit_name="北京甲公司"), actor=people["clerk"]
    )
    again = application(credential_number=CODE, unit_name="北京乙公司", target_system="另一个系统", **more)
    return service.requests.create(again, actor=people["clerk"]).id or 0


def test_a_formal_request_asks_for_the_stamped_scan_first(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = service.requests.create(application(access_type="formal"), actor=people["clerk"]).id
    acceptor = client_as("acceptor")
    page = acceptor.get(f"/requests/{rid}").get_data(as_text=True)
    assert re.search(r'id="missing-attachments">同意受理前须上传：签字盖章的申请表扫描件<', page)
    refused = post(acceptor, f"/requests/{rid}/accept", AGREE)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert re.search(r'id="err-attachments">受理前须上传：签字盖章的申请表扫描件<', html)
    assert 'value="飞天诚信 ePass3003"' in html  # the form kept as typed
    uploaded = post(
        acceptor,
        f"/requests/{rid}/attachments",
        {"kind": "signed_form", "file": (io.BytesIO(SCAN_PDF), "盖章申请表.pdf")},
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 302
    assert 'id="missing-attachments"' not in acceptor.get(f"/requests/{rid}").get_data(as_text=True)
    assert post(acceptor, f"/requests/{rid}/accept", AGREE).status_code == 302
    assert service.requests.get(rid or 0).state is RequestState.ACCEPTED


def test_a_test_request_needs_no_scan(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = service.requests.create(application(), actor=people["clerk"]).id
    acceptor = client_as("acceptor")
    assert 'id="missing-attachments"' not in acceptor.get(f"/requests/{rid}").get_data(as_text=True)
    assert post(acceptor, f"/requests/{rid}/accept", AGREE).status_code == 302


def test_the_credit_code_warning_links_the_other_records_and_asks_to_confirm(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    first = approved(ca_service, people, credential_number=CODE, unit_name="北京甲公司")
    cert = ca_service.issuance.issue_from_csr(first, csr_for(key("ec-p256", 71)), actor=people["distributor"])
    rid = ca_service.requests.create(
        application(credential_number=CODE, unit_name="北京乙公司", target_system="另一个系统"),
        actor=people["clerk"],
    ).id
    acceptor = client_as("acceptor")
    page = acceptor.get(f"/requests/{rid}").get_data(as_text=True)
    warning = page[page.index('id="uscc-warning"') : page.index("</div>", page.index('id="uscc-warning"'))]
    assert f"统一社会信用代码 {CODE} 已登记在其他单位名下" in warning
    assert f'<a href="/requests/{first}">申请 {first}</a>：北京甲公司' in warning
    assert 'name="confirm_uscc" value="yes"' in warning
    refused = post(acceptor, f"/requests/{rid}/accept", AGREE)
    assert refused.status_code == 400
    assert re.search(
        r'id="err-confirm_uscc">统一社会信用代码 [0-9A-Z]{18} 已登记在其他单位名下，请核实',
        refused.get_data(as_text=True),
    )
    assert ca_service.requests.get(rid or 0).state is RequestState.ENTERED
    done = post(acceptor, f"/requests/{rid}/accept", AGREE | {"confirm_uscc": "yes"})
    assert done.status_code == 302 and ca_service.requests.get(rid or 0).state is RequestState.ACCEPTED
    history = client_as("head").get(f"/requests/{rid}").get_data(as_text=True)
    assert f"已核实的信用代码重名记录：申请 {first}" in history[history.index("办理记录") :]
    assert cert.serial  # the certificate of the first request is its request's record, not listed twice
    assert page.count(f"/certificates/{cert.serial}") == 0


def test_disagreeing_is_never_held_up(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = _under_another_name(service, people, access_type="formal")
    got = post(
        client_as("acceptor"), f"/requests/{rid}/accept", {"opinion": "disagree", "comment": "名称与代码不符"}
    )
    assert got.status_code == 302 and service.requests.get(rid).state is RequestState.REJECTED


def test_only_the_acceptor_sees_the_acceptance_checks(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = _under_another_name(service, people)
    assert 'id="uscc-warning"' in client_as("acceptor").get(f"/requests/{rid}").get_data(as_text=True)
    assert 'id="uscc-warning"' not in client_as("reviewer").get(f"/requests/{rid}").get_data(as_text=True)
