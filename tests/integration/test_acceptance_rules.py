"""What agreeing to accept needs (workflow.toml [acceptance]), through the service on SQLite and PostgreSQL:
the stamped form's scan per access type, and the acceptor's confirmation when the unit's credit code is on
record under another unit name."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from pki.enums import Action, RequestState
from pki.errors import ValidationError
from pki.models import AuditRecord, Certificate
from pki.services import Actor, Service
from policies import load_policies
from policies._load import PACKAGED
from tests.support.data import SCAN_PDF, application, make_uscc
from tests.support.pki import approved, csr_for, key

CODE = make_uscc("110101", "51000001")


def _entered(service: Service, people: dict[str, Actor], **overrides: object) -> int:
    req = service.requests.create(application(**overrides), actor=people["clerk"])
    assert req.id is not None
    return req.id


def _refused_fields(call: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as exc:
        call()  # type: ignore[operator]
    return {e.field: e.message_zh for e in exc.value.errors}


def _scan(service: Service, rid: int, people: dict[str, Actor], kind: str = "signed_form") -> None:
    service.attachments.add(rid, kind=kind, filename="盖章申请表.pdf", data=SCAN_PDF, actor=people["clerk"])


def test_formal_needs_the_stamped_scan_test_does_not(service: Service, people: dict[str, Actor]) -> None:
    formal = _entered(service, people, access_type="formal")
    test = _entered(service, people, credential_number=make_uscc("110101", "51000002"))
    agree = {"actor": people["acceptor"], "agree": True, "usbkey_model": "飞天诚信 ePass3003"}
    refused = _refused_fields(lambda: service.requests.accept(formal, **agree))
    assert refused == {"attachments": "受理前须上传：签字盖章的申请表扫描件"}
    assert service.requests.get(formal).state is RequestState.ENTERED
    check = service.requests.acceptance_check(formal)
    assert check.missing_attachments == ("signed_form",) and not check.conflicts
    _scan(service, formal, people, kind="credential")  # another scan is not the stamped form
    assert "attachments" in _refused_fields(lambda: service.requests.accept(formal, **agree))
    _scan(service, formal, people)
    assert service.requests.acceptance_check(formal).missing_attachments == ()
    assert service.requests.accept(formal, **agree).state is RequestState.ACCEPTED
    assert service.requests.accept(test, **agree).state is RequestState.ACCEPTED  # test: no scan needed


def test_disagreeing_needs_no_scan_and_no_confirmation(service: Service, people: dict[str, Actor]) -> None:
    _entered(service, people, credential_number=CODE, unit_name="北京甲公司")
    other = _entered(
        service,
        people,
        credential_number=CODE,
        unit_name="北京乙公司",
        access_type="formal",
        target_system="另一个系统",
    )
    done = service.requests.accept(
        other, actor=people["acceptor"], agree=False, comment="单位名称与信用代码不符"
    )
    assert done.state is RequestState.REJECTED


def test_switches_are_policy_per_access_type(
    engine: object, clock: object, tmp_path: Path, people: dict[str, Actor]
) -> None:
    """The scan for test access too and no confirmation: an edit of workflow.toml, no code."""
    text = (PACKAGED / "workflow.toml").read_text(encoding="utf-8")
    text = text.replace("test = []", 'test = ["signed_form", "credential"]')
    text = text.replace("confirm_uscc_name_conflict = true", "confirm_uscc_name_conflict = false")
    (tmp_path / "workflow.toml").write_text(text, encoding="utf-8")
    from tests.conftest import fixed_seal

    svc = Service(engine, clock=clock, policies=load_policies(tmp_path), audit_seal=fixed_seal(tmp_path))  # type: ignore[arg-type]
    _entered(svc, people, credential_number=CODE, unit_name="北京甲公司")
    rid = _entered(svc, people, credential_number=CODE, unit_name="北京乙公司", target_system="另一个系统")
    agree = {"actor": people["acceptor"], "agree": True, "usbkey_model": "飞天诚信 ePass3003"}
    refused = _refused_fields(lambda: svc.requests.accept(rid, **agree))
    assert refused == {"attachments": "受理前须上传：签字盖章的申请表扫描件、单位有效证件扫描件"}
    _scan(svc, rid, people)
    _scan(svc, rid, people, kind="credential")
    check = svc.requests.acceptance_check(rid)
    assert len(check.conflicts) == 1 and not check.confirmation_needed  # shown, not required
    assert svc.requests.accept(rid, **agree).state is RequestState.ACCEPTED


def test_a_credit_code_under_another_name_needs_confirmation(
    service: Service, people: dict[str, Actor]
) -> None:
    first = _entered(service, people, credential_number=CODE, unit_name="北京甲公司")
    same = _entered(
        service, people, credential_number=CODE, unit_name="北京甲公司", target_system="另一个系统"
    )
    assert service.requests.acceptance_check(same).conflicts == ()  # the same unit, another system
    other = _entered(
        service, people, credential_number=CODE, unit_name="北京乙公司", target_system="第三个系统"
    )
    check = service.requests.acceptance_check(other)
    assert [(c.kind, c.ref, c.unit_name) for c in check.conflicts] == [
        ("request", str(same), "北京甲公司"),
        ("request", str(first), "北京甲公司"),
    ]
    assert check.confirmation_needed
    agree = {"actor": people["acceptor"], "agree": True, "usbkey_model": "飞天诚信 ePass3003"}
    refused = _refused_fields(lambda: service.requests.accept(other, **agree))
    assert set(refused) == {"confirm_uscc"} and CODE in refused["confirm_uscc"]
    assert service.requests.get(other).state is RequestState.ENTERED
    done = service.requests.accept(other, **agree, confirm_uscc=True)
    assert done.state is RequestState.ACCEPTED
    with Session(service.ctx.engine) as s:
        record = s.exec(
            select(AuditRecord).where(
                AuditRecord.action == "request.accept", AuditRecord.subject_id == str(other)
            )
        ).one()
    assert f'"uscc_confirmed":["request:{same}","request:{first}"]' in record.details
    # The earlier requests see the newer one under the other name too.
    assert [c.ref for c in service.requests.acceptance_check(first).conflicts] == [str(other)]


def test_full_width_and_spaces_are_the_same_name(service: Service, people: dict[str, Actor]) -> None:
    _entered(service, people, credential_number=CODE, unit_name="ABC能源有限公司")
    rid = _entered(
        service, people, credential_number=CODE, unit_name="ＡＢＣ 能源有限公司", target_system="另一个系统"
    )
    assert service.requests.acceptance_check(rid).conflicts == ()


def test_cancelled_requests_are_not_on_record(service: Service, people: dict[str, Actor]) -> None:
    wrong = _entered(service, people, credential_number=CODE, unit_name="录错的单位名称")
    service.requests.cancel(wrong, actor=people["clerk"], reason="单位名称录错")
    rid = _entered(service, people, credential_number=CODE, unit_name="北京甲公司")
    assert service.requests.acceptance_check(rid).conflicts == ()


def test_a_certificate_under_another_name_is_a_conflict(
    ca_service: Service, people: dict[str, Actor]
) -> None:
    """A certificate whose own request is listed is not listed twice; one whose request is not, is."""
    issued_for = approved(ca_service, people, credential_number=CODE, unit_name="北京甲公司")
    cert = ca_service.issuance.issue_from_csr(
        issued_for, csr_for(key("ec-p256", 51)), actor=people["distributor"]
    )
    rid = _entered(
        ca_service, people, credential_number=CODE, unit_name="北京乙公司", target_system="另一个系统"
    )
    assert [(c.kind, c.ref) for c in ca_service.requests.acceptance_check(rid).conflicts] == [
        ("request", str(issued_for))
    ]
    with ca_service.ctx.engine.begin() as conn:  # as a certificate from before requests were kept here
        conn.execute(update(Certificate).where(Certificate.serial == cert.serial).values(request_id=None))
    conflicts = ca_service.requests.acceptance_check(rid).conflicts
    assert [(c.kind, c.ref, c.unit_name) for c in conflicts] == [
        ("request", str(issued_for), "北京甲公司"),
        ("certificate", cert.serial, "北京甲公司"),
    ]


def test_a_refused_acceptance_writes_nothing(service: Service, people: dict[str, Actor]) -> None:
    rid = _entered(service, people, access_type="formal")
    with Session(service.ctx.engine) as s:
        before = len(s.exec(select(AuditRecord)).all())
    _refused_fields(
        lambda: service.requests.accept(
            rid, actor=people["acceptor"], agree=True, usbkey_model="飞天诚信 ePass3003"
        )
    )
    with Session(service.ctx.engine) as s:
        assert len(s.exec(select(AuditRecord)).all()) == before
    got = service.requests.get(rid)
    assert got.accepted_by is None and got.version == 1 and got.state is RequestState.ENTERED
    assert Action.ACCEPT in service.requests.allowed_actions(rid, people["acceptor"])
