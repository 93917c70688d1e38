"""Issue 6 at its edges: the party registry and evidence, test → formal prerequisites in review, the cutover
plan and run, and access decisions; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from pki.ca.keystore import FileKeyStore
from pki.clock import CHINA_TZ, FixedClock
from pki.enums import Action, EvidenceType, PartyState, Readiness
from pki.errors import (
    ConflictError,
    CutoverNotDueError,
    ImportRowsError,
    PermissionDeniedError,
    PrerequisiteMissingError,
    ValidationError,
)
from pki.models import AuditRecord, Certificate, CutoverDecision, CutoverRun, Party
from pki.services import Actor, Service
from policies import load_policies
from tests.conftest import CA_PASSPHRASE, T0, fixed_seal
from tests.support.data import application, attach_required_scans, make_uscc
from tests.support.pki import approved, csr_for, key

CUTOVER = datetime(2020, 11, 14, 16, 0, tzinfo=UTC)  # 2020-11-15 00:00 China Standard Time
JUST_BEFORE = CUTOVER - timedelta(seconds=1)
_keys = iter(range(20_000, 30_000))
_bodies = iter(range(30000000, 40000000))

HEBEI = "130100"  # not on the fast-track list
BEIJING = "110101"  # on it


def uscc(division: str = HEBEI) -> str:
    return make_uscc(division, str(next(_bodies)))


def province_of(division: str) -> str:
    return {"130100": "河北", "110101": "北京", "540100": "西藏"}[division]


def issue(
    service: Service, people: dict[str, Actor], number: str, kind: str = "test", **extra: object
) -> Certificate:
    division = number[2:8]
    rid = approved(
        service,
        people,
        credential_number=number,
        province=province_of(division),
        access_type=kind,
        application_date=service.ctx.today().isoformat(),
        **extra,
    )
    return service.issuance.issue_from_csr(
        rid, csr_for(key("ec-p256", next(_keys))), actor=people["distributor"]
    )


def countersigned(service: Service, people: dict[str, Actor], number: str, kind: str = "formal") -> int:
    req = service.requests.create(
        application(
            credential_number=number,
            province=province_of(number[2:8]),
            access_type=kind,
            application_date=service.ctx.today().isoformat(),
        ),
        actor=people["clerk"],
    )
    assert req.id is not None
    attach_required_scans(service, req.id, people["clerk"])
    service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model="飞天诚信 ePass3003")
    service.requests.countersign(req.id, actor=people["head"])
    return req.id


def add_evidence(service: Service, people: dict[str, Actor], number: str, kind: EvidenceType) -> None:
    service.parties.add_evidence(
        credential_number=number,
        evidence_type=kind,
        reference=f"{kind.value}-2020-001",
        document_date=service.ctx.today(),
        filename=f"{kind.value}.pdf",
        content=f"%PDF-1.4 {kind.value} {number}".encode(),
        actor=people["clerk"],
    )


def unit_list(*rows: tuple[str, str], extra_header: str = "") -> bytes:
    header = "单位名称,统一社会信用代码,行业,地点" + extra_header
    lines = [header] + [f"{name},{number},制造业,某地" for name, number in rows]
    return ("\n".join(lines) + "\n").encode("gb18030")


# -- the registry and evidence ------------------------------------------------------------------------


def test_party_import_derives_province_and_is_all_or_nothing(
    service: Service, people: dict[str, Actor]
) -> None:
    hebei, beijing = uscc(HEBEI), uscc(BEIJING)
    result = service.parties.import_list(
        unit_list(("河北某钢铁厂", hebei), ("北京某热电厂", beijing)),
        actor=people["ops"],
        source_name="附件5.csv",
    )
    assert (result.total, result.imported, result.already_registered) == (2, 2, [])
    parties = {p.credential_number: p for p in service.parties.list_parties()}
    assert parties[hebei].province == "河北" and parties[beijing].province == "北京"
    assert parties[hebei].state is PartyState.REGISTERED and parties[hebei].industry == "制造业"
    assert [p.credential_number for p in service.parties.list_parties(province="北京市")] == [beijing]

    again = service.parties.import_list(unit_list(("河北某钢铁厂", hebei)), actor=people["ops"])
    assert again.imported == 0 and again.already_registered == [hebei]

    bad = hebei[:-1] + ("0" if hebei[-1] != "0" else "1")
    with pytest.raises(ImportRowsError) as caught:
        service.parties.import_list(
            unit_list(("新单位", uscc(HEBEI)), ("错误单位", bad), ("重复", beijing), ("重复", beijing)),
            actor=people["ops"],
        )
    assert [r.row for r in caught.value.rows] == [3, 5]
    assert caught.value.rows[0].errors[0].field == "credential_number"
    assert len(service.parties.list_parties()) == 2  # nothing of the refused file

    with pytest.raises(PermissionDeniedError):
        service.parties.import_list(unit_list(("某单位", uscc())), actor=people["reviewer"])
    with Session(service.ctx.engine) as s:
        assert s.exec(select(AuditRecord).where(AuditRecord.action == "party.import")).all()


def test_party_import_province_override_and_column(service: Service, people: dict[str, Actor]) -> None:
    number = uscc(HEBEI)
    service.parties.import_list(unit_list(("兵团某单位", number)), actor=people["ops"], province="新疆")
    assert service.parties.get(number).province == "新疆"
    other = uscc(HEBEI)
    data = f"单位名称,统一社会信用代码,省份\n某单位,{other},西藏\n".encode()
    service.parties.import_list(data, actor=people["ops"], platform="test")
    assert service.parties.get(other, platform="test").province == "西藏"
    with pytest.raises(ValidationError, match="unknown province"):
        service.parties.import_list(unit_list(("某单位", uscc())), actor=people["ops"], province="火星")


def test_evidence_is_recorded_with_its_document(service: Service, people: dict[str, Actor]) -> None:
    number = uscc()
    content = b"%PDF-1.4 report"
    record = service.parties.add_evidence(
        credential_number=number.lower(),
        evidence_type="software-test",
        reference="软测字〔2020〕第12号",
        document_date="2020-10-12",
        filename="C:\\scans\\report.pdf",
        content=content,
        actor=people["clerk"],
    )
    assert record.credential_number == number and record.filename == "report.pdf"
    assert record.sha256 == hashlib.sha256(content).hexdigest()
    read, document = service.parties.read_evidence(record.id, actor=people["clerk"])
    assert (read.filename, document) == ("report.pdf", content)
    listed = service.parties.list_evidence(credential_number=number)
    assert [(e.evidence_type, e.reference) for e in listed] == [
        (EvidenceType.SOFTWARE_TEST, "软测字〔2020〕第12号")
    ]

    with pytest.raises(ConflictError):
        service.parties.add_evidence(
            credential_number=number,
            evidence_type="software-test",
            reference="again",
            document_date="2020-10-12",
            filename="copy.pdf",
            content=content,
            actor=people["clerk"],
        )
    with pytest.raises(ValidationError) as caught:
        service.parties.add_evidence(
            credential_number="123",
            evidence_type="photo",
            reference="",
            document_date="2099-01-01",
            filename="x.pdf",
            content=b"",
            actor=people["clerk"],
        )
    assert {e.field for e in caught.value.errors} == {
        "credential_number",
        "type",
        "reference",
        "date",
        "file",
    }
    assert "材料类型无效" in caught.value.message_zh
    with pytest.raises(PermissionDeniedError):
        add_evidence(service, people, number, EvidenceType.WAIVER)  # clerk may; ops may not:
        service.parties.add_evidence(
            credential_number=number,
            evidence_type="waiver",
            reference="r",
            document_date="2020-10-12",
            filename="w.pdf",
            content=b"w",
            actor=people["ops"],
        )


# -- test → formal prerequisites in review -------------------------------------------------------------


def test_fast_track_province_formal_without_test_certificate(
    ca_service: Service, people: dict[str, Actor]
) -> None:
    rid = countersigned(ca_service, people, uscc(BEIJING))
    report = ca_service.cutover.prerequisites(rid)
    assert report.applies and report.passed
    assert [(r.rule, r.passed) for r in report.rules] == [("fast_track", True)]
    ca_service.requests.review(rid, actor=people["reviewer"], decision=Action.APPROVE)


def test_non_fast_track_at_29_and_30_days(
    ca_service: Service, people: dict[str, Actor], clock: FixedClock
) -> None:
    number = uscc(HEBEI)
    test_cert = issue(ca_service, people, number, "test")
    add_evidence(ca_service, people, number, EvidenceType.SOFTWARE_TEST)
    add_evidence(ca_service, people, number, EvidenceType.CLASSIFIED_PROTECTION)
    rid = countersigned(ca_service, people, number)

    clock.set(test_cert.not_valid_before + timedelta(days=30) - timedelta(seconds=1))  # 29 days and a bit
    report = ca_service.cutover.prerequisites(rid)
    assert [(r.rule, r.passed) for r in report.rules] == [
        ("test_certificate", False),
        ("report:software-test", True),
        ("report:classified-protection", True),
    ]
    assert "held 29 days (needs 30)" in report.failed[0].reason
    with pytest.raises(PrerequisiteMissingError) as caught:
        ca_service.requests.review(rid, actor=people["reviewer"], decision=Action.APPROVE)
    assert caught.value.rule == "test_certificate"
    assert "须满30天" in caught.value.message_zh
    assert ca_service.requests.get(rid).state.value == "countersigned"  # nothing written

    clock.set(test_cert.not_valid_before + timedelta(days=30))
    assert ca_service.cutover.prerequisites(rid).passed
    approved_req = ca_service.requests.review(rid, actor=people["reviewer"], decision=Action.APPROVE)
    assert approved_req.state.value == "approved"


def test_missing_reports_are_named_and_returning_is_still_possible(
    ca_service: Service, people: dict[str, Actor]
) -> None:
    rid = countersigned(ca_service, people, uscc(HEBEI))
    with pytest.raises(PrerequisiteMissingError) as caught:
        ca_service.requests.review(rid, actor=people["reviewer"], decision=Action.APPROVE)
    message = caught.value.message
    assert "no test certificate held" in message and "software-test report missing" in message
    assert "classified-protection report missing" in message
    assert "等级保护测评报告缺失" in caught.value.message_zh
    # the rules gate approval only: the reviewer can still send it back
    ca_service.requests.review(rid, actor=people["reviewer"], decision=Action.RETURN, reason="缺少测试报告")


def test_a_waiver_letter_satisfies_the_rules(ca_service: Service, people: dict[str, Actor]) -> None:
    number = uscc(HEBEI)
    rid = countersigned(ca_service, people, number)
    add_evidence(ca_service, people, number, EvidenceType.WAIVER)
    report = ca_service.cutover.prerequisites(rid)
    assert [(r.rule, r.passed) for r in report.rules] == [("waiver", True)]
    ca_service.requests.review(rid, actor=people["reviewer"], decision=Action.APPROVE)


def test_test_requests_have_no_prerequisites(service: Service, people: dict[str, Actor]) -> None:
    rid = countersigned(service, people, uscc(HEBEI), kind="test")
    assert not service.cutover.prerequisites(rid).applies
    service.requests.review(rid, actor=people["reviewer"], decision=Action.APPROVE)


# -- plan ----------------------------------------------------------------------------------------------


@pytest.fixture
def early_service(engine: Engine, tmp_path: Path) -> Service:
    """A service whose CA hierarchy dates from 2019-11-16 (CST), so that a 12-month certificate issued then
    expires on 2020-11-16 00:00 CST: the day after the cutover. form.toml is relaxed for 2019 dates."""
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    (policy_dir / "form.toml").write_text(
        "validity_months = [12, 24, 36, 48, 60]\nearliest_application_date = 2019-01-01\n", encoding="utf-8"
    )
    clock = FixedClock(CUTOVER - timedelta(days=366) + timedelta(days=1))  # 2019-11-15T16:00Z
    svc = Service(
        engine,
        clock=clock,
        keys=FileKeyStore(tmp_path / "ca", lambda: CA_PASSPHRASE),
        policies=load_policies(policy_dir),
        audit_seal=fixed_seal(tmp_path),
    )
    svc.authority.ensure_hierarchy()
    return svc


@pytest.fixture
def population(early_service: Service, people: dict[str, Actor]) -> dict[Readiness, str]:
    """One registered party per readiness at the cutover, and the clock back at T0."""
    svc = early_service
    clock = svc.ctx.clock
    assert isinstance(clock, FixedClock)
    expiring = uscc(BEIJING)
    exp_cert = issue(svc, people, expiring, "formal", validity_months=12)
    assert exp_cert.not_valid_after == CUTOVER + timedelta(days=1)
    clock.set(T0)
    ready, test_only, revoked, missing = uscc(BEIJING), uscc(HEBEI), uscc(BEIJING), uscc(HEBEI)
    issue(svc, people, ready, "formal")
    issue(svc, people, test_only, "test")
    gone = issue(svc, people, revoked, "formal")
    svc.revocation.revoke(gone.serial, "key-compromise", actor=people["ops"])
    rows = [
        ("就绪", ready),
        ("仅测试", test_only),
        ("将过期", expiring),
        ("已吊销", revoked),
        ("无证书", missing),
    ]
    svc.parties.import_list(unit_list(*rows), actor=people["ops"])
    return {
        Readiness.READY: ready,
        Readiness.TEST_ONLY: test_only,
        Readiness.EXPIRING: expiring,
        Readiness.REVOKED: revoked,
        Readiness.MISSING: missing,
    }


def test_plan_readiness_and_totals(early_service: Service, population: dict[Readiness, str]) -> None:
    seen = []
    summary = early_service.cutover.plan(at=CUTOVER, days=30, sink=seen.append, chunk=2)
    by_number = {r.credential_number: r for r in seen}
    assert {k: by_number[v].readiness for k, v in population.items()} == {k: k for k in population}
    assert [r.party_id for r in seen] == sorted(r.party_id for r in seen)  # one pass, in order, chunked
    assert summary.by_province["北京"] == {Readiness.READY: 1, Readiness.EXPIRING: 1, Readiness.REVOKED: 1}
    assert summary.by_province["河北"] == {Readiness.TEST_ONLY: 1, Readiness.MISSING: 1}
    assert summary.parties == 5 and summary.horizon == CUTOVER + timedelta(days=30)
    # with a horizon of one day the expiring certificate is still ready at the instant
    short = early_service.cutover.plan(at=CUTOVER, days=1)
    assert short.totals[Readiness.EXPIRING] == 0 and short.totals[Readiness.READY] == 2
    # the day after, it is gone
    later = early_service.cutover.plan(at=CUTOVER + timedelta(days=1), days=0)
    assert later.totals[Readiness.MISSING] == 2


# -- run -----------------------------------------------------------------------------------------------


def decisions(engine: Engine) -> dict[str, tuple[bool, str]]:
    with Session(engine) as s:
        rows = s.exec(
            select(Party.credential_number, CutoverDecision.allowed, CutoverDecision.reason).join(
                Party,
                Party.id == CutoverDecision.party_id,  # type: ignore[arg-type]
            )
        ).all()
    return {n: (a, r) for n, a, r in rows}


def test_run_refused_before_the_instant_and_rehearsal_writes_nothing(
    early_service: Service, population: dict[Readiness, str], people: dict[str, Actor]
) -> None:
    svc = early_service
    with pytest.raises(CutoverNotDueError, match="--rehearse"):
        svc.cutover.run(actor=people["ops"], at=JUST_BEFORE)
    rehearsal = svc.cutover.run(actor=people["ops"], at=JUST_BEFORE, rehearse=True)
    assert (rehearsal.state, rehearsal.allowed, rehearsal.refused, rehearsal.changed) == (
        "rehearsal",
        2,
        3,
        False,
    )
    with Session(svc.ctx.engine) as s:
        assert s.exec(select(func.count()).select_from(CutoverRun)).one() == 0
        assert s.exec(select(func.count()).select_from(CutoverDecision)).one() == 0
    with pytest.raises(PermissionDeniedError):
        svc.cutover.run(actor=people["reviewer"], at=CUTOVER)


def test_run_at_the_instant_records_decisions_once(
    early_service: Service, population: dict[Readiness, str], people: dict[str, Actor]
) -> None:
    svc = early_service
    first = svc.cutover.run(actor=people["ops"], at=CUTOVER, chunk=2)
    assert (first.state, first.allowed, first.refused, first.changed) == ("done", 2, 3, True)
    got = decisions(svc.ctx.engine)
    assert got[population[Readiness.READY]][0] and got[population[Readiness.EXPIRING]][0]
    assert got[population[Readiness.TEST_ONLY]] == (
        False,
        "only a certificate of a kind not accepted on the production platform (needs formal)",
    )
    assert got[population[Readiness.REVOKED]] == (False, "certificate revoked")
    assert got[population[Readiness.MISSING]] == (False, "no certificate")
    assert svc.parties.get(population[Readiness.MISSING]).state is PartyState.REFUSED
    assert svc.parties.get(population[Readiness.READY]).state is PartyState.ALLOWED

    second = svc.cutover.run(actor=people["ops"], at=CUTOVER + timedelta(days=3))
    assert not second.changed and (second.allowed, second.refused, second.at) == (2, 3, CUTOVER)
    assert decisions(svc.ctx.engine) == got
    status = {p.platform: p for p in svc.cutover.status()}
    assert status["production"].enforced and not status["test"].enforced
    refused = svc.cutover.decisions(refused_only=True)
    assert {d.credential_number for d in refused} == {
        population[k] for k in (Readiness.TEST_ONLY, Readiness.REVOKED, Readiness.MISSING)
    }
    with Session(svc.ctx.engine) as s:
        actions = s.exec(
            select(AuditRecord.action).where(AuditRecord.subject_type == "cutover").order_by(AuditRecord.seq)
        ).all()
    assert actions == ["cutover.start", "cutover.run"]


class StopHereError(Exception):
    pass


def stop_after_first_chunk(cursor: int) -> None:
    raise StopHereError(cursor)


def bulk_parties(service: Service, people: dict[str, Actor], n: int) -> None:
    service.parties.import_list(
        unit_list(*((f"单位{i}", uscc(HEBEI if i % 2 else BEIJING)) for i in range(n))), actor=people["ops"]
    )


def test_interrupted_run_resumes_to_the_same_result(
    early_service: Service, population: dict[Readiness, str], people: dict[str, Actor]
) -> None:
    svc = early_service
    bulk_parties(svc, people, 15)
    expected = {}
    svc.cutover.plan(at=CUTOVER, sink=lambda r: expected.__setitem__(r.credential_number, r.allowed))

    with pytest.raises(StopHereError):
        svc.cutover.run(actor=people["ops"], at=CUTOVER, chunk=4, on_chunk=stop_after_first_chunk)
    with Session(svc.ctx.engine) as s:
        run = s.exec(select(CutoverRun)).one()
        assert run.state.value == "running" and run.claimed_by is None
        assert s.exec(select(func.count()).select_from(CutoverDecision)).one() == 4
    resumed = svc.cutover.run(actor=people["ops"], at=CUTOVER + timedelta(hours=1), chunk=4)
    assert resumed.changed and resumed.at == CUTOVER  # the original instant
    got = decisions(svc.ctx.engine)
    assert {n: a for n, (a, _) in got.items()} == expected
    assert (resumed.allowed, resumed.refused) == (
        sum(expected.values()),
        len(expected) - sum(expected.values()),
    )
    with Session(svc.ctx.engine) as s:
        actions = s.exec(
            select(AuditRecord.action).where(AuditRecord.subject_type == "cutover").order_by(AuditRecord.seq)
        ).all()
    assert actions == ["cutover.start", "cutover.resume", "cutover.run"]


def test_two_runs_at_once_cannot_both_proceed(
    early_service: Service, population: dict[Readiness, str], people: dict[str, Actor]
) -> None:
    svc = early_service
    bulk_parties(svc, people, 6)
    inside, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def pause(cursor: int) -> None:
        inside.set()
        assert release.wait(30)

    def first() -> None:
        try:
            outcome.append(svc.cutover.run(actor=people["ops"], at=CUTOVER, chunk=3, on_chunk=pause))
        except Exception as e:  # pragma: no cover - reported below
            outcome.append(e)

    worker = threading.Thread(target=first)
    worker.start()
    try:
        assert inside.wait(30)
        with pytest.raises(ConflictError, match="in progress"):
            svc.cutover.run(actor=people["ops"], at=CUTOVER)
    finally:
        release.set()
        worker.join(30)
    (summary,) = outcome
    assert getattr(summary, "changed", None) is True
    assert len(decisions(svc.ctx.engine)) == 11


def test_a_dead_runner_is_taken_over_after_its_lease(
    early_service: Service, population: dict[Readiness, str], people: dict[str, Actor]
) -> None:
    svc = early_service
    with pytest.raises(StopHereError):
        svc.cutover.run(actor=people["ops"], at=CUTOVER, chunk=2, on_chunk=stop_after_first_chunk)
    with Session(svc.ctx.engine) as s:  # as a killed process leaves it: claimed, heartbeat recent
        run = s.exec(select(CutoverRun)).one()
        run.claimed_by, run.heartbeat_at = "dead-runner", datetime.now(UTC)
        s.add(run)
        s.commit()
    with pytest.raises(ConflictError):
        svc.cutover.run(actor=people["ops"], at=CUTOVER)
    done = svc.cutover.run(actor=people["ops"], at=CUTOVER, lease=timedelta(0))
    assert done.changed and done.allowed + done.refused == 5


# -- access decisions ----------------------------------------------------------------------------------


def pem(cert: Certificate) -> bytes:
    return x509.load_der_x509_certificate(cert.der).public_bytes(Encoding.PEM)


def foreign_certificate() -> bytes:
    private = key("ec-p256", 9999)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not ours")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=365))
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.PEM)


@pytest.mark.parametrize(
    ("at", "allowed", "warned"),
    [(JUST_BEFORE, True, True), (CUTOVER, False, False)],
    ids=["15:59:59Z", "16:00:00Z"],
)
def test_no_certificate_at_the_edge(service: Service, at: datetime, allowed: bool, warned: bool) -> None:
    result = service.access.check(None, at=at)
    assert result.allowed is allowed and bool(result.warnings) is warned
    assert (
        ("no certificate presented" in result.warnings)
        if warned
        else result.reasons == ("no certificate presented",)
    )


def test_access_decisions(
    early_service: Service, population: dict[Readiness, str], people: dict[str, Actor]
) -> None:
    svc = early_service
    certs = {c.credential_number: c for c in svc.certificates.find()}

    def decide(
        readiness: Readiness, at: datetime, platform: str = "production"
    ) -> tuple[bool, tuple[str, ...]]:
        r = svc.access.check(pem(certs[population[readiness]]), platform=platform, at=at)
        return r.allowed, r.reasons

    assert decide(Readiness.READY, CUTOVER) == (True, ("valid certificate of an accepted kind",))
    test_on_production = (False, ("a test certificate is not accepted on the production platform",))
    assert decide(Readiness.TEST_ONLY, CUTOVER) == test_on_production
    assert decide(Readiness.TEST_ONLY, CUTOVER, "test") == (True, ("valid certificate of an accepted kind",))
    assert decide(Readiness.READY, CUTOVER, "test")[0] is False
    assert decide(Readiness.REVOKED, CUTOVER) == (False, ("certificate revoked",))
    before = svc.access.check(pem(certs[population[Readiness.REVOKED]]), at=JUST_BEFORE)
    assert before.allowed and before.warnings == ("certificate revoked",)
    # expires 2020-11-16 00:00 CST, the day after the cutover
    assert decide(Readiness.EXPIRING, CUTOVER)[0] is True
    last = CUTOVER + timedelta(days=1) - timedelta(seconds=1)
    assert decide(Readiness.EXPIRING, last)[0] is True
    assert decide(Readiness.EXPIRING, CUTOVER + timedelta(days=1)) == (False, ("certificate expired",))

    foreign = svc.access.check(foreign_certificate(), at=CUTOVER)
    assert not foreign.allowed and foreign.reasons[0].startswith("certificate chain not valid")
    der = x509.load_der_x509_certificate(certs[population[Readiness.READY]].der).public_bytes(Encoding.DER)
    ready = svc.access.check(der, at=CUTOVER)
    assert ready.party == "就绪" and ready.kind == "formal" and ready.decision == "allow"
    with pytest.raises(ValidationError, match="not a PEM or DER certificate"):
        svc.access.check(b"-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n", at=CUTOVER)
    assert CUTOVER.astimezone(CHINA_TZ).date() == date(2020, 11, 15)
