"""The notice's rules evaluated at their edges (issue 6): the cutover instant, 30 days of test
certificate, fast track, waiver, revocation, expiry the day after the cutover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pki.errors import ConfigurationError
from policies import PACKAGED, load_policies
from policies.cutover import CertificateFacts, access_decision, formal_prerequisites

POLICY = load_policies().cutover
PRODUCTION = POLICY.platform("production")
TEST_PLATFORM = POLICY.platform("test")
BEFORE = datetime(2020, 11, 14, 15, 59, 59, tzinfo=UTC)
AT = datetime(2020, 11, 14, 16, 0, 0, tzinfo=UTC)


def formal(**overrides: object) -> CertificateFacts:
    values: dict[str, object] = {
        "kind": "formal",
        "not_valid_before": datetime(2020, 10, 1, tzinfo=UTC),
        "not_valid_after": datetime(2021, 10, 1, tzinfo=UTC),
        "revoked_at": None,
    }
    values.update(overrides)
    return CertificateFacts(**values)  # type: ignore[arg-type]


def test_the_instant_is_policy_data() -> None:
    assert PRODUCTION.cutover == AT  # 2020-11-15T00:00:00+08:00
    assert PRODUCTION.accepted_kinds == {"formal"} and TEST_PLATFORM.accepted_kinds == {"test"}


@pytest.mark.parametrize(
    ("cert", "at", "allowed", "warning_or_reason"),
    [
        (None, BEFORE, True, "no certificate presented"),
        (None, AT, False, "no certificate presented"),
        (formal(), BEFORE, True, ""),
        (formal(), AT, True, ""),
        (formal(kind="test"), AT, False, "test certificate is not accepted on the production platform"),
        (formal(revoked_at=AT - timedelta(days=1)), AT, False, "certificate revoked"),
        (formal(revoked_at=AT - timedelta(days=1)), BEFORE, True, "certificate revoked"),
        (formal(not_valid_after=AT + timedelta(days=1)), AT, True, ""),
        (
            formal(not_valid_after=AT + timedelta(days=1)),
            AT + timedelta(days=1),
            False,
            "certificate expired",
        ),
        (formal(not_valid_before=AT + timedelta(hours=1)), AT, False, "not yet valid"),
    ],
    ids=[
        "none-before",
        "none-at",
        "formal-before",
        "formal-at",
        "test-cert-on-production",
        "revoked-at",
        "revoked-before-is-a-warning",
        "expires-day-after-ok-at",
        "expires-day-after-refused-then",
        "not-yet-valid",
    ],
)
def test_access_at_the_edges(
    cert: CertificateFacts | None, at: datetime, allowed: bool, warning_or_reason: str
) -> None:
    decision = access_decision(PRODUCTION, cert, at=at)
    assert decision.allowed is allowed
    text = decision.warning if allowed else decision.reason
    assert warning_or_reason in text
    if allowed and at < PRODUCTION.cutover and cert is not None and not warning_or_reason:
        assert decision.warning == ""


def test_test_certificates_are_for_the_test_platform() -> None:
    assert access_decision(TEST_PLATFORM, formal(kind="test"), at=AT).allowed
    assert not access_decision(TEST_PLATFORM, formal(), at=AT).allowed


@pytest.mark.parametrize(("days", "passes"), [(29, False), (30, True)])
def test_thirty_days_of_test_certificate(days: int, passes: bool) -> None:
    results = formal_prerequisites(
        POLICY,
        province="西藏",
        test_certificate_since=AT - timedelta(days=days),
        reports_on_record={"software-test", "classified-protection"},
        waiver_on_record=False,
        at=AT,
    )
    assert all(r.passed for r in results) is passes
    assert f"held {days} days (needs 30)" in results[0].reason


def test_missing_reports_are_named() -> None:
    results = formal_prerequisites(
        POLICY,
        province="西藏",
        test_certificate_since=None,
        reports_on_record=[],
        waiver_on_record=False,
        at=AT,
    )
    assert [(r.rule, r.passed) for r in results] == [
        ("test_certificate", False),
        ("report:software-test", False),
        ("report:classified-protection", False),
    ]


def test_fast_track_and_waiver_pass_without_a_test_certificate() -> None:
    fast = formal_prerequisites(
        POLICY,
        province="北京",
        test_certificate_since=None,
        reports_on_record=[],
        waiver_on_record=False,
        at=AT,
    )
    assert [(r.rule, r.passed) for r in fast] == [("fast_track", True)]
    waived = formal_prerequisites(
        POLICY,
        province="西藏",
        test_certificate_since=None,
        reports_on_record=[],
        waiver_on_record=True,
        at=AT,
    )
    assert [(r.rule, r.passed) for r in waived] == [("waiver", True)]


def test_rules_explain_themselves_in_chinese_too() -> None:
    rules = formal_prerequisites(
        POLICY,
        province="河北",
        test_certificate_since=AT - timedelta(days=29, hours=23),
        reports_on_record=["software-test"],
        waiver_on_record=False,
        at=AT,
    )
    assert [r.reason_zh for r in rules] == [
        "测试证书已持有29天（须满30天）",
        "第三方软件测试报告已备案",
        "等级保护测评报告缺失",
    ]


def test_another_platform_and_fast_track_list_are_data_changes(tmp_path: Path) -> None:
    text = (PACKAGED / "cutover.toml").read_text(encoding="utf-8")
    text = text.replace('"青海", "新疆"]', '"青海", "新疆", "河北"]') + (
        '\n[[platform]]\nname = "carbon"\nlabel_zh = "碳排放监测平台"\n'
        'cutover = 2021-07-01T00:00:00+08:00\naccepted_kinds = ["formal"]\n'
    )
    (tmp_path / "cutover.toml").write_text(text, encoding="utf-8")
    other = load_policies(tmp_path).cutover
    assert other.platform("carbon").cutover == datetime(2021, 6, 30, 16, 0, tzinfo=UTC)
    assert "河北" in other.fast_track_provinces


def test_another_cutover_is_a_data_change(tmp_path: Path) -> None:
    text = (PACKAGED / "cutover.toml").read_text(encoding="utf-8")
    (tmp_path / "cutover.toml").write_text(
        text.replace("2020-11-15T00:00:00+08:00", "2021-06-01T00:00:00+08:00", 1).replace("= 30", "= 60"),
        encoding="utf-8",
    )
    other = load_policies(tmp_path).cutover
    assert other.platform("production").cutover == datetime(2021, 5, 31, 16, 0, tzinfo=UTC)
    assert other.test_certificate_min_days == 60


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("2020-11-15T00:00:00+08:00", "2020-11-15T00:00:00", "needs a UTC offset"),
        ('accepted_kinds = ["formal"]', 'accepted_kinds = ["gold"]', "accepted_kinds"),
        ('"青海", "新疆"', '"青海", "火星"', "unknown provinces 火星"),
        ("test_certificate_min_days = 30", "test_certificate_min_days = -1", "0..3650"),
        ('"classified-protection"]', '"penetration-test"]', "unknown report penetration-test"),
    ],
    ids=["naive-instant", "unknown-kind", "unknown-province", "negative-days", "unknown-report"],
)
def test_malformed_cutover_policy(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = (PACKAGED / "cutover.toml").read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "cutover.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_policies(tmp_path)
