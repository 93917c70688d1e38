"""Issue 6 in the UI: the test → formal rules on a formal request's page, the evidence on record for the
unit, recording evidence (fields, roles, CSRF), downloading a document, and approval refused with the
reason; on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from markupsafe import escape
from sqlmodel import select

from pki.clock import FixedClock
from pki.enums import EvidenceType, RequestState
from pki.models import AuditRecord
from pki.services import Actor, Service
from tests.integration.test_cutover import BEIJING, HEBEI, add_evidence, countersigned, issue, uscc
from tests.web.conftest import post

PDF = b"%PDF-1.4 report"


def _rules(page: str) -> dict[str, tuple[str, str]]:
    """rule -> (通过/未通过, reason) as the panel shows them."""
    rows = re.findall(
        r'<tr class="rule (?:passed|failed)" data-rule="([^"]+)"><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td>',
        page,
    )
    return {rule: (outcome, reason) for rule, outcome, reason in rows}


def _upload(client: FlaskClient, rid: int, **fields: object) -> object:
    data: dict[str, object] = {
        "evidence_type": "software-test",
        "evidence_reference": "软测字〔2020〕001号",
        "evidence_date": "2020-10-19",
        "evidence_file": (PDF, "软件测试报告.pdf"),
    }
    data.update(fields)
    content, name = data["evidence_file"]  # type: ignore[misc]
    data["evidence_file"] = (io.BytesIO(content), name)
    return post(client, f"/requests/{rid}/evidence", data, content_type="multipart/form-data")


def test_fast_track_province_passes_and_is_approved(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = countersigned(ca_service, people, uscc(BEIJING))
    client = client_as("reviewer")
    page = client.get(f"/requests/{rid}").get_data(as_text=True)
    assert _rules(page) == {"fast_track": ("通过", "北京属于可直接正式接入地区")}
    assert 'id="prerequisites-state">已满足' in page
    assert 'id="form-evidence"' not in page  # the reviewer does not record evidence
    version = ca_service.requests.get(rid).version
    got = post(client, f"/requests/{rid}/review", {"decision": "approve", "version": version})
    assert got.status_code == 302
    assert ca_service.requests.get(rid).state is RequestState.APPROVED


def test_missing_reports_fail_and_approval_is_refused_with_the_reason(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = countersigned(ca_service, people, uscc(HEBEI))
    client = client_as("reviewer")
    page = client.get(f"/requests/{rid}").get_data(as_text=True)
    assert _rules(page) == {
        "test_certificate": ("未通过", "未持有测试证书（须持有测试证书满30天）"),
        "report:software-test": ("未通过", "第三方软件测试报告缺失"),
        "report:classified-protection": ("未通过", "等级保护测评报告缺失"),
    }
    assert "暂无备案材料" in page
    version = ca_service.requests.get(rid).version
    got = post(client, f"/requests/{rid}/review", {"decision": "approve", "version": version})
    refused = got.get_data(as_text=True)
    assert got.status_code == 409
    beside = re.search(r'id="err-decision">([^<]+)<', refused)
    assert beside and "不能审核通过" in beside.group(1) and "等级保护测评报告缺失" in beside.group(1)
    assert ca_service.requests.get(rid).state is RequestState.COUNTERSIGNED


def test_reports_recorded_in_the_ui_and_30_days_pass(
    ca_service: Service,
    people: dict[str, Actor],
    clock: FixedClock,
    client_as: Callable[[str], FlaskClient],
) -> None:
    number = uscc(HEBEI)
    test_cert = issue(ca_service, people, number, "test")
    rid = countersigned(ca_service, people, number)
    clerk = client_as("clerk")
    assert 'id="form-evidence"' in clerk.get(f"/requests/{rid}").get_data(as_text=True)
    assert _upload(clerk, rid).status_code == 302
    got = _upload(
        clerk,
        rid,
        evidence_type="classified-protection",
        evidence_reference="等保字〔2020〕7号",
        evidence_file=(PDF + b" 2", "等保测评.pdf"),
    )
    assert got.status_code == 302
    recorded = ca_service.parties.list_evidence(credential_number=number)
    assert {(e.evidence_type, e.reference, e.filename) for e in recorded} == {
        (EvidenceType.SOFTWARE_TEST, "软测字〔2020〕001号", "软件测试报告.pdf"),
        (EvidenceType.CLASSIFIED_PROTECTION, "等保字〔2020〕7号", "等保测评.pdf"),
    }

    clock.set(test_cert.not_valid_before + timedelta(days=30))
    reviewer = client_as("reviewer")
    page = reviewer.get(f"/requests/{rid}").get_data(as_text=True)
    rules = _rules(page)
    assert {r: outcome for r, (outcome, _) in rules.items()} == {
        "test_certificate": "通过",
        "report:software-test": "通过",
        "report:classified-protection": "通过",
    }
    assert rules["test_certificate"][1] == "测试证书已持有30天（须满30天）"
    for text in ("第三方软件测试报告", "软测字〔2020〕001号", "2020-10-19", "等保测评.pdf"):
        assert text in page
    version = ca_service.requests.get(rid).version
    got = post(reviewer, f"/requests/{rid}/review", {"decision": "approve", "version": version})
    assert got.status_code == 302
    assert ca_service.requests.get(rid).state is RequestState.APPROVED


def test_a_waiver_letter_passes(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    number = uscc(HEBEI)
    rid = countersigned(ca_service, people, number)
    add_evidence(ca_service, people, number, EvidenceType.WAIVER)
    page = client_as("reviewer").get(f"/requests/{rid}").get_data(as_text=True)
    assert _rules(page) == {"waiver": ("通过", "已有来函说明")}
    assert "来函说明" in page and "waiver-2020-001" in page


def test_test_requests_have_no_panel(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    rid = countersigned(service, people, uscc(HEBEI), kind="test")
    page = client_as("clerk").get(f"/requests/{rid}").get_data(as_text=True)
    assert 'id="prerequisites"' not in page and 'id="form-evidence"' not in page


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"evidence_type": ""}, "evidence_type", "材料类型无效"),
        ({"evidence_type": "photo"}, "evidence_type", "材料类型无效"),
        ({"evidence_reference": "  "}, "evidence_reference", "文号：必填"),
        ({"evidence_reference": "x" * 129}, "evidence_reference", "文号"),
        ({"evidence_date": "2020-13-01"}, "evidence_date", "日期格式应为年-月-日"),
        ({"evidence_date": "2020-10-21"}, "evidence_date", "日期不能晚于今天"),
        ({"evidence_file": (b"", "empty.pdf")}, "evidence_file", "文件为空"),
        ({"evidence_file": (PDF, "")}, "evidence_file", "文件"),
    ],
)
def test_each_bad_field_is_named_beside_it(
    fields: dict[str, object],
    field: str,
    words: str,
    service: Service,
    people: dict[str, Actor],
    client_as: Callable[[str], FlaskClient],
) -> None:
    number = uscc(HEBEI)
    rid = countersigned(service, people, number)
    got = _upload(client_as("acceptor"), rid, **fields)
    page = got.get_data(as_text=True)
    assert got.status_code == 400
    beside = re.search(rf'id="err-{field}">([^<]+)<', page)
    assert beside and words in beside.group(1)
    assert len(re.findall(r'class="field-error"', page)) == 1  # only that field, not the attachment form's
    assert service.parties.list_evidence(credential_number=number) == []


def test_upload_refused_for_the_wrong_role_and_without_csrf(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    number = uscc(HEBEI)
    rid = countersigned(service, people, number)
    head = client_as("head")
    assert 'id="form-evidence"' not in head.get(f"/requests/{rid}").get_data(as_text=True)
    got = _upload(head, rid)
    assert got.status_code == 403 and "无权" in got.get_data(as_text=True)
    clerk = client_as("clerk")
    no_token = clerk.post(
        f"/requests/{rid}/evidence",
        data={
            "evidence_type": "waiver",
            "evidence_reference": "函〔2020〕1号",
            "evidence_date": "2020-10-19",
            "evidence_file": (io.BytesIO(PDF), "letter.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert no_token.status_code == 400 and "表单已失效" in no_token.get_data(as_text=True)
    assert service.parties.list_evidence(credential_number=number) == []


def test_download_is_role_checked_and_audited(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    number = uscc(HEBEI)
    rid = countersigned(service, people, number)
    assert _upload(client_as("clerk"), rid).status_code == 302
    (record,) = service.parties.list_evidence(credential_number=number)
    reviewer = client_as("reviewer")
    page = reviewer.get(f"/requests/{rid}").get_data(as_text=True)
    link = f'href="/requests/evidence/{record.id}"'
    assert link in page
    got = reviewer.get(f"/requests/evidence/{record.id}")
    assert got.status_code == 200 and got.data == PDF
    assert got.mimetype == "application/pdf"
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''" in disposition
    distributor = client_as("distributor")
    assert link not in distributor.get(f"/requests/{rid}").get_data(as_text=True)
    assert distributor.get(f"/requests/evidence/{record.id}").status_code == 403
    assert reviewer.get("/requests/evidence/999999").status_code == 404
    with service.ctx.read() as s:
        actions = [(a.actor, a.action) for a in s.exec(select(AuditRecord)) if a.subject_type == "evidence"]
    assert ("reviewer", "evidence.read") in actions and ("distributor", "security.denied") in actions


def test_hostile_reference_and_file_name_are_escaped(
    service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    number = uscc(HEBEI)
    rid = countersigned(service, people, number)
    reference = "<script>alert(1)</script>"
    filename = "<img src=x onerror=alert(2)>'.pdf"
    clerk = client_as("clerk")
    got = _upload(clerk, rid, evidence_reference=reference, evidence_file=(PDF, filename))
    assert got.status_code == 302, re.findall(r"field-error[^>]*>[^<]*", got.get_data(as_text=True))
    page = clerk.get(f"/requests/{rid}").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert str(escape(reference)) in page and str(escape(filename)) in page
    (record,) = service.parties.list_evidence(credential_number=number)
    disposition = clerk.get(f"/requests/evidence/{record.id}").headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "\n" not in disposition and "\r" not in disposition
    # a refused form keeps the hostile text, escaped, in its field
    again = _upload(clerk, rid, evidence_reference=reference, evidence_date="bad")
    assert again.status_code == 400
    assert "<script>alert(1)" not in again.get_data(as_text=True)
