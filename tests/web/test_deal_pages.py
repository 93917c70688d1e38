"""The desk's deals in the clerks' UI, on SQLite and PostgreSQL: the certificate page offers each person the
deals their roles may enter on it and the server steps (revoke, hold, release) they may take, and nothing
else; each form's refusals come back in Chinese beside the field; a POST forced by a wrong role is a Chinese
403 that changes nothing; the request page shows the deal type and the certificate it concerns; the lists
show the deal type, and the approved queue is named for deals."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from pki.clock import FixedClock
from pki.enums import Action, CertificateStatus, Deal, RequestState, RevocationReason
from pki.models import AuditRecord, Certificate
from pki.services import Actor, Service
from tests.support.data import application
from tests.support.pki import approved, csr_for, key
from tests.web.conftest import post

_keys = itertools.count(1600)
USBKEY = "飞天诚信 ePass3003"


def issued(service: Service, people: dict[str, Actor], **overrides: object) -> str:
    """A certificate issued (from a CSR) for a request walked to 'approved'; its serial."""
    rid = approved(service, people, **overrides)
    cert = service.issuance.issue_from_csr(
        rid, csr_for(key("ec-p256", next(_keys))), actor=people["distributor"]
    )
    return cert.serial


def _cert(service: Service, serial: str) -> Certificate:
    return service.certificates.get(serial)


def _page(client: FlaskClient, path: str) -> str:
    got = client.get(path)
    assert got.status_code == 200, (path, got.status_code)
    return got.get_data(as_text=True)


def _forms(html: str) -> set[str]:
    return set(re.findall(r'id="form-((?:deal-)?[a-z-]+)"', html))


def _accept_and_approve(service: Service, people: dict[str, Actor], rid: int) -> None:
    """A deal walked on through its steps to 'approved' (the acceptor, then the reviewer when it has one)."""
    service.requests.accept(rid, actor=people["acceptor"], agree=True, usbkey_model=USBKEY)
    if service.requests.get(rid).state is RequestState.COUNTERSIGNED:
        service.requests.review(rid, actor=people["reviewer"], decision=Action.APPROVE)
    assert service.requests.get(rid).state is RequestState.APPROVED


def _deal_id(response) -> int:  # type: ignore[no-untyped-def]
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[1])


# -- what the certificate page offers ---------------------------------------------------------------------


def test_the_certificate_page_offers_what_each_role_may_do(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    serial = issued(ca_service, people)
    path = f"/certificates/{serial}"

    clerk = _page(client_as("clerk"), path)
    # The clerk enters deals; none of the server steps is theirs. A valid certificate on no recorded USB key,
    # at the start of its life: hold, revoke and change now, renewals later, nothing about the key.
    assert _forms(clerk) == {"deal-hold", "deal-revoke", "deal-change"}
    assert 'href="/certificates/' + serial + '/change"' in clerk
    assert "form-revoke" not in clerk and "form-hold" not in clerk and "form-release" not in clerk
    unavailable = clerk[clerk.index('id="deals-unavailable"') :]
    for label in ("续期", "更新", "补办（遗失）", "补办（损坏）", "解锁", "解冻"):
        assert f"<li>{label}：" in unavailable, label
    assert "不在登记的USB Key中" in unavailable and "证书有效，不能办理解冻" in unavailable
    # The revoke deal's reasons are the RFC 5280 reasons in Chinese (the hold has its own deal).
    revoke_form = clerk[clerk.index('id="form-deal-revoke"') :]
    revoke_form = revoke_form[: revoke_form.index("</form>")]
    assert re.findall(r'<option value="(\w+)"', revoke_form) == [
        "unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation",
        "privilegeWithdrawn",
    ]  # fmt: skip
    assert "密钥泄露" in revoke_form and "certificateHold" not in revoke_form

    ops = _page(client_as("ops"), path)
    # ops acts directly (workflow.toml [operations] revoke, hold) and may enter the deals [deals] lets it.
    assert _forms(ops) == {"revoke", "hold", "deal-hold", "deal-revoke"}
    assert 'name="confirm" value="yes" id="revoke-confirm"' in ops

    for role in ("reviewer", "head", "admin"):
        html = _page(client_as(role), path)
        assert 'id="deals"' not in html, role  # nothing to offer: no section at all


def test_renewals_are_offered_inside_their_window(
    ca_service: Service,
    people: dict[str, Actor],
    client_as: Callable[[str], FlaskClient],
    clock: FixedClock,
) -> None:
    serial = issued(ca_service, people)
    clock.set(_cert(ca_service, serial).not_valid_after - timedelta(days=30))
    client = client_as("clerk")
    html = _page(client, f"/certificates/{serial}")
    assert {"deal-renew", "deal-rekey"} <= _forms(html)
    assert '<option value="">与原申请相同</option>' in html and "24个月" in html

    rid = _deal_id(post(client, f"/certificates/{serial}/deals", {"deal": "renew", "months": "24"}))
    req = ca_service.requests.get(rid)
    assert (req.deal, req.validity_months, req.state) == (Deal.RENEW, 24, RequestState.ENTERED)


# -- a revoke deal from entry to completion ------------------------------------------------------------


def test_a_revoke_deal_entered_by_a_clerk_is_carried_out_by_ops(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    serial = issued(ca_service, people)
    clerk = client_as("clerk")
    got = post(
        clerk,
        f"/certificates/{serial}/deals",
        {"deal": "revoke", "reason": "keyCompromise", "comment": "经办人报告密钥泄露"},
    )
    rid = _deal_id(got)
    page = _page(clerk, f"/requests/{rid}")
    assert "注销业务已录入" in page
    assert '<dd id="deal-type">注销</dd>' in page
    assert (
        f'<a href="/certificates/{serial}">{serial}</a>（<span id="deal-certificate-status">有效</span>）'
        in page
    )
    assert '<dd id="deal-reason">密钥泄露</dd>' in page and "经办人报告密钥泄露" in page
    assert '<dd id="deal-key">无登记的USBKEY</dd>' in page
    # The certificate page now names the open deal, and no other deal may be entered meanwhile.
    cert_page = _page(clerk, f"/certificates/{serial}")
    assert f'href="/requests/{rid}">注销（申请 {rid}，已录入）' in cert_page
    assert "deal-entry" not in cert_page
    again = post(clerk, f"/certificates/{serial}/deals", {"deal": "hold"})
    assert again.status_code == 409 and "该证书已有在办业务" in again.get_data(as_text=True)
    # The list shows the deal type.
    listing = _page(clerk, "/requests/")
    assert re.search(rf'<a href="/requests/{rid}">{rid}</a></td>\s*<td class="deal">注销</td>', listing)

    _accept_and_approve(ca_service, people, rid)
    ops = client_as("ops")
    html = _page(ops, f"/certificates/{serial}")
    form = html[html.index('id="form-revoke"') :]
    form = form[: form.index("</form>")]
    assert "办理已批准的" in form and f"注销业务（申请 {rid}）" in form and "吊销原因：密钥泄露" in form
    assert "<select" not in form  # the deal says the reason
    assert f'id="complete-hint">待办理：请在<a href="/certificates/{serial}">证书页面</a>办理注销' in _page(
        ops, f"/requests/{rid}"
    )

    unconfirmed = post(ops, f"/certificates/{serial}/revoke", {"comment": "核实无误"})
    assert unconfirmed.status_code == 400
    assert re.search(r'id="err-revoke-confirm">请勾选确认后再提交', unconfirmed.get_data(as_text=True))
    disagreeing = post(ops, f"/certificates/{serial}/revoke", {"confirm": "yes", "reason": "superseded"})
    assert disagreeing.status_code == 400
    assert 'id="err-revoke-reason">吊销原因须与注销业务申请一致' in disagreeing.get_data(as_text=True)
    assert _cert(ca_service, serial).status is CertificateStatus.VALID

    done = post(ops, f"/certificates/{serial}/revoke", {"confirm": "yes", "comment": "核实无误"})
    assert done.status_code == 302 and done.headers["Location"] == f"/certificates/{serial}"
    html = _page(ops, f"/certificates/{serial}")
    assert "证书已吊销" in html and '<dd id="cert-status">已吊销</dd>' in html
    assert '<dd id="revocation-reason">密钥泄露</dd>' in html and "核实无误" in html
    assert _forms(html) == set()  # nothing more to do on a revoked certificate
    assert "<li>冻结：证书已吊销，不能办理冻结</li>" in html
    cert = _cert(ca_service, serial)
    assert cert.revocation_reason is RevocationReason.KEY_COMPROMISE and cert.revoked_by == "ops"
    req_page = _page(ops, f"/requests/{rid}")
    assert '<span class="badge" id="state">已办结</span>' in req_page
    assert '<span id="deal-certificate-status">已吊销</span>' in req_page
    assert re.search(r"<td>办理</td><td class=\"details\">[^<]*证书序列号：" + serial, req_page)


def test_ops_holds_and_releases_from_the_certificate_page(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    serial = issued(ca_service, people)
    ops = client_as("ops")
    got = post(ops, f"/certificates/{serial}/hold", {"confirm": "yes", "comment": "单位申请暂停"})
    assert got.status_code == 302
    html = _page(ops, f"/certificates/{serial}")
    assert '<dd id="cert-status">已冻结</dd>' in html and "冻结说明" in html and "单位申请暂停" in html
    assert _forms(html) == {"revoke", "release", "deal-release", "deal-revoke"}
    assert post(ops, f"/certificates/{serial}/release", {"confirm": "yes"}).status_code == 302
    assert '<dd id="cert-status">有效</dd>' in _page(ops, f"/certificates/{serial}")
    direct = post(ops, f"/certificates/{serial}/revoke", {"confirm": "yes"})
    assert direct.status_code == 400 and 'id="err-revoke-reason">请选择吊销原因' in direct.get_data(
        as_text=True
    )
    assert (
        post(
            ops, f"/certificates/{serial}/revoke", {"confirm": "yes", "reason": "cessationOfOperation"}
        ).status_code
        == 302
    )
    assert _cert(ca_service, serial).revocation_reason is RevocationReason.CESSATION_OF_OPERATION


# -- refusals ---------------------------------------------------------------------------------------------


def test_a_post_by_a_wrong_role_is_a_chinese_403_that_changes_nothing(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    serial = issued(ca_service, people)
    clerk, reviewer = client_as("clerk"), client_as("reviewer")
    cases = [
        (clerk, "revoke", {"confirm": "yes", "reason": "keyCompromise"}, "当前用户无权执行该操作"),
        (clerk, "hold", {"confirm": "yes"}, "当前用户无权执行该操作"),
        (clerk, "release", {"confirm": "yes"}, "当前用户无权执行该操作"),
        (clerk, "hold", {}, "当前用户无权执行该操作"),  # not offered: no tick asked for
        (reviewer, "deals", {"deal": "hold"}, "当前用户无权执行“录入”（冻结）"),
        (reviewer, "deals", {"deal": "replace-lost"}, "当前用户无权执行“录入”（补办（遗失））"),
    ]
    for client, step, form, said in cases:
        got = post(client, f"/certificates/{serial}/{step}", form)
        body = got.get_data(as_text=True)
        assert got.status_code == 403, (step, form, got.status_code)
        assert "<title>无权操作" in body and said in body, (step, said)
    assert client_as("reviewer").get(f"/certificates/{serial}/change").status_code == 403
    assert _cert(ca_service, serial).status is CertificateStatus.VALID
    assert ca_service.requests.find() and all(r.deal is Deal.NEW for r in ca_service.requests.find())
    with Session(ca_service.ctx.engine) as s:
        denied = s.exec(select(AuditRecord).where(AuditRecord.action == "security.denied")).all()
    assert len(denied) >= 4  # the service's refusals are on record


@pytest.mark.parametrize(
    ("form", "field", "said"),
    [
        ({"deal": "revoke", "reason": "bogus"}, "deal-revoke-reason", "吊销原因无效"),
        ({"deal": "revoke", "reason": "certificateHold"}, "deal-revoke-reason", "冻结请使用冻结操作"),
        ({"deal": "hold", "reason": "keyCompromise"}, "deal-hold-reason", "仅注销和补办（损坏）业务需填写原因"),
        ({"deal": "hold", "comment": "长" * 501}, "deal-hold-comment", "备注过长"),
        ({"deal": "revoke", "months": "12"}, "deal-revoke-months", "仅续期、更新业务可选择有效期"),
        ({"deal": "revoke", "months": "9" * 5000}, "deal-revoke-months", "有效期无效"),
        ({"deal": "revoke", "months": "-1"}, "deal-revoke-months", "有效期无效"),
        ({"deal": "bogus"}, "deal", "业务类型：请选择"),
        ({"deal": "new"}, "deal", "业务类型：请选择"),
        ({"deal": "change"}, "deal", "业务类型：请选择"),
        ({}, "deal", "业务类型：请选择"),
        ({"deal": "x" * 5000}, "deal", "业务类型：请选择"),
    ],
    ids=[
        "unknown-reason", "hold-as-reason", "reason-on-a-hold", "long-comment", "months-on-a-revoke",
        "5000-digit-months", "negative-months", "unknown-deal", "new", "change-without-form", "no-deal",
        "5000-char-deal",
    ],
)  # fmt: skip
def test_deal_entry_refusals_name_the_field_in_chinese(
    ca_service: Service,
    people: dict[str, Actor],
    client_as: Callable[[str], FlaskClient],
    form: dict[str, str],
    field: str,
    said: str,
) -> None:
    serial = issued(ca_service, people)
    got = post(client_as("clerk"), f"/certificates/{serial}/deals", form)
    assert got.status_code == 400, got.status_code
    assert re.search(rf'id="err-{field}">[^<]*{re.escape(said)}', got.get_data(as_text=True)), said
    assert all(r.deal is Deal.NEW for r in ca_service.requests.find())


def test_hostile_values_on_the_server_steps_are_refused_cleanly(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    serial = issued(ca_service, people)
    ops = client_as("ops")
    for form, field, said in [
        ({"confirm": "yes", "reason": "x" * 5000}, "revoke-reason", "吊销原因无效"),
        ({"confirm": "yes", "reason": "keyCompromise", "comment": "长" * 501}, "revoke-comment", "备注过长"),
        ({"confirm": "no", "reason": "keyCompromise"}, "revoke-confirm", "请勾选确认"),
    ]:
        got = post(ops, f"/certificates/{serial}/revoke", form)
        assert got.status_code == 400
        assert re.search(rf'id="err-{field}">[^<]*{said}', got.get_data(as_text=True)), field
        assert got.get_data(as_text=True).count("field-error") == 1  # beside its form only, not the deal's
    got = post(
        ops, f"/certificates/{serial}/hold", {"confirm": "yes", "comment": '<script>alert("x")</script>'}
    )
    assert got.status_code == 302
    html = _page(ops, f"/certificates/{serial}")
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert post(ops, f"/certificates/{serial}/hold", {"confirm": "yes"}).status_code == 409  # already held


# -- change ---------------------------------------------------------------------------------------------


def test_a_change_starts_from_the_units_record(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    serial = issued(ca_service, people, unit_name="北京市甲能源监测中心")
    clerk = client_as("clerk")
    form_page = _page(clerk, f"/certificates/{serial}/change")
    assert "<h1>变更申请" in form_page and 'id="change-of"' in form_page
    assert 'name="unit_name" value="北京市甲能源监测中心"' in form_page
    values = {k: ("true" if v is True else str(v)) for k, v in application().items()}
    values |= {
        "unit_name": "北京市甲能源监测中心",
        "credential_number": _cert(ca_service, serial).credential_number,
        "application_date": ca_service.ctx.today().isoformat(),
    }
    same = post(clerk, f"/certificates/{serial}/change", values, page=f"/certificates/{serial}/change")
    assert same.status_code == 400 and 'id="err-application">没有变更任何内容' in same.get_data(as_text=True)
    other_unit = post(
        clerk,
        f"/certificates/{serial}/change",
        values | {"unit_name": "北京市乙能源监测中心", "credential_number": "91110000600037341L"},
        page=f"/certificates/{serial}/change",
    )
    body = other_unit.get_data(as_text=True)
    assert other_unit.status_code == 400 and 'id="err-credential_number">变更不能修改证件号码' in body
    assert 'value="北京市乙能源监测中心"' in body  # kept as typed
    got = post(
        clerk,
        f"/certificates/{serial}/change",
        values | {"unit_name": "北京市乙能源监测中心", "comment": "单位更名"},
        page=f"/certificates/{serial}/change",
    )
    rid = _deal_id(got)
    page = _page(clerk, f"/requests/{rid}")
    assert (
        '<dd id="deal-type">变更</dd>' in page
        and '<dd data-field="unit_name">北京市乙能源监测中心</dd>' in page
    )
    assert '<dd id="deal-comment">单位更名</dd>' in page
    assert (
        client_as("clerk").get(f"/certificates/{serial}/change").status_code == 409
    )  # one open deal at a time


# -- the request pages ----------------------------------------------------------------------------------


def test_distribution_in_the_browser_and_the_queues_named_for_deals(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    serial = issued(ca_service, people)
    rid = _cert(ca_service, serial).request_id
    distributor = client_as("distributor")
    page = _page(distributor, f"/requests/{rid}")
    assert 'id="form-distribute"' in page and '<dd id="deal-type">新办</dd>' in page
    assert f'<a href="/certificates/{serial}">{serial}</a>' in page  # the certificate it was issued
    empty = post(distributor, f"/requests/{rid}/distribute", {"recipient": "  "})
    assert empty.status_code == 400 and 'id="err-recipient">领取人姓名：必填' in empty.get_data(as_text=True)
    long = post(distributor, f"/requests/{rid}/distribute", {"recipient": "李" * 65})
    assert long.status_code == 400
    assert post(client_as("clerk"), f"/requests/{rid}/distribute", {"recipient": "李四"}).status_code == 403
    assert post(distributor, f"/requests/{rid}/distribute", {"recipient": "李四"}).status_code == 302
    page = _page(distributor, f"/requests/{rid}")
    assert '<span class="badge" id="state">已分发</span>' in page and "领取人：李四" in page

    # An approved hold deal waits for ops, who carry it out (待办理); the distributor issues and carries out
    # unlocks (待签发/待办理).
    hold = _deal_id(post(client_as("clerk"), f"/certificates/{serial}/deals", {"deal": "hold"}))
    _accept_and_approve(ca_service, people, hold)
    ops_queue = _page(client_as("ops"), "/requests/queue")
    assert "待办理（审核通过）" in ops_queue and "待签发" not in ops_queue
    assert "待签发/待办理（审核通过）" in _page(distributor, "/requests/queue")
    assert re.search(r'data-queue="approved">\s*<div><a [^>]*>待办理</a>', _page(client_as("ops"), "/"))
    assert "冻结" in _page(client_as("ops"), f"/requests/{hold}/print")


def test_the_history_speaks_of_deals_in_chinese(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    serial = issued(ca_service, people)
    clerk = client_as("clerk")
    rid = _deal_id(post(clerk, f"/certificates/{serial}/deals", {"deal": "revoke", "reason": "superseded"}))
    page = _page(clerk, f"/requests/{rid}")
    assert "业务类型：注销" in page and "证书序列号：" + serial in page
    csv_body = clerk.get("/requests/export.csv").get_data().decode("utf-8-sig")
    assert ",注销," in csv_body and ",新办," in csv_body
    assert application()  # the record the deal carries is the certificate's own


def test_a_refusal_for_a_form_not_shown_is_still_said(
    ca_service: Service, people: dict[str, Actor], client_as: Callable[[str], FlaskClient]
) -> None:
    serial = issued(ca_service, people)
    # replace-lost is not offered (the certificate is on no recorded key); a forced post with a bad comment
    # is refused for the comment, and the page says so although the form is not there.
    got = post(
        client_as("clerk"), f"/certificates/{serial}/deals", {"deal": "replace-lost", "comment": "长" * 501}
    )
    assert got.status_code == 400
    assert 'id="err-deal-replace-lost-comment">备注过长' in got.get_data(as_text=True)
    got = post(
        client_as("reviewer"), f"/certificates/{serial}/deals", {"deal": "hold", "comment": "长" * 501}
    )
    assert got.status_code == 400 and 'id="err-deal-hold-comment">备注过长' in got.get_data(as_text=True)
