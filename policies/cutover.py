"""The notice's rules (cutover.toml) and the small pure code that evaluates them.

No clock and no database: callers pass the instant and the facts; these functions say what the rules say,
with a reason for every refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from pki.errors import ConfigurationError, FieldError, ValidationError
from policies._load import need, read_toml, str_list, tables

KINDS = ("test", "formal")
# The documents a rule may ask for (pki.enums.EvidenceType values; a waiver is not a report).
REPORT_LABELS_ZH = {"software-test": "第三方软件测试报告", "classified-protection": "等级保护测评报告"}


@dataclass(frozen=True)
class Platform:
    name: str
    label_zh: str
    cutover: datetime  # aware
    accepted_kinds: frozenset[str]


@dataclass(frozen=True)
class CutoverPolicy:
    test_certificate_min_days: int
    reports: tuple[str, ...]
    fast_track_provinces: frozenset[str]
    platforms: Mapping[str, Platform]

    def platform(self, name: str) -> Platform:
        try:
            return self.platforms[name]
        except KeyError:
            known = ", ".join(self.platforms)
            raise ValidationError(
                [FieldError("platform", f"unknown platform {name!r}; known: {known}", f"未知平台：{name}")]
            ) from None


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    reason: str
    reason_zh: str = ""


def formal_prerequisites(
    policy: CutoverPolicy,
    *,
    province: str,
    test_certificate_since: datetime | None,
    reports_on_record: Iterable[str],
    waiver_on_record: bool,
    at: datetime,
) -> list[RuleResult]:
    """Each test → formal rule with its outcome. A formal request may be approved when all pass.

    The fast-track list or a waiver letter satisfies every other rule.
    """
    if province in policy.fast_track_provinces:
        return [
            RuleResult(
                "fast_track",
                True,
                f"{province} is on the fast-track list",
                f"{province}属于可直接正式接入地区",
            )
        ]
    if waiver_on_record:
        return [RuleResult("waiver", True, "a waiver letter (来函说明) is on record", "已有来函说明")]
    results: list[RuleResult] = []
    need_days = policy.test_certificate_min_days
    if test_certificate_since is None:
        results.append(
            RuleResult(
                "test_certificate",
                False,
                "no test certificate held",
                f"未持有测试证书（须持有测试证书满{need_days}天）",
            )
        )
    else:
        held = at - test_certificate_since
        ok = held >= timedelta(days=need_days)
        results.append(
            RuleResult(
                "test_certificate",
                ok,
                f"test certificate held {held.days} days (needs {need_days})",
                f"测试证书已持有{held.days}天（须满{need_days}天）",
            )
        )
    have = set(reports_on_record)
    for report in policy.reports:
        label = REPORT_LABELS_ZH.get(report, report)
        results.append(
            RuleResult(
                f"report:{report}",
                report in have,
                f"{report} report {'on record' if report in have else 'missing'}",
                f"{label}{'已备案' if report in have else '缺失'}",
            )
        )
    return results


@dataclass(frozen=True)
class CertificateFacts:
    """What an access decision needs to know of a presented certificate (already chain- and
    signature-checked by the caller)."""

    kind: str
    not_valid_before: datetime
    not_valid_after: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    warning: str = ""


def access_decision(platform: Platform, cert: CertificateFacts | None, *, at: datetime) -> Decision:
    """Allow or deny a connection to ``platform`` at instant ``at``.

    Before the cutover instant nothing is refused: a missing or unfit certificate is a warning. From the
    instant on (inclusive) a valid, unrevoked certificate of an accepted kind is required.
    """
    return decision_for_problem(platform, _problem(platform, cert, at), at=at)


def decision_for_problem(platform: Platform, problem: str | None, *, at: datetime) -> Decision:
    """The decision once the one problem with a connection (or none) is known: before the cutover instant
    a problem is a warning, from the instant on (inclusive) it is a refusal."""
    if at < platform.cutover:
        return Decision(True, "before the cutover", warning=problem or "")
    if problem:
        return Decision(False, problem)
    return Decision(True, "valid certificate of an accepted kind")


def _problem(platform: Platform, cert: CertificateFacts | None, at: datetime) -> str | None:
    if cert is None:
        return "no certificate presented"
    if cert.revoked_at is not None and cert.revoked_at <= at:
        return "certificate revoked"
    if at < cert.not_valid_before:
        return "certificate not yet valid"
    if at >= cert.not_valid_after:
        return "certificate expired"
    if cert.kind not in platform.accepted_kinds:
        return f"a {cert.kind} certificate is not accepted on the {platform.name} platform"
    return None


def load_cutover(directory: Path) -> CutoverPolicy:
    data = read_toml(directory, "cutover.toml")
    where = "cutover.toml [formal_prerequisites]"
    pre = need(data, "formal_prerequisites", dict, "cutover.toml")
    days: int = need(pre, "test_certificate_min_days", int, where)
    if not 0 <= days <= 3650:
        raise ConfigurationError(f"{where}: test_certificate_min_days must be 0..3650")
    platforms: dict[str, Platform] = {}
    for i, raw in enumerate(tables(data, "platform", "cutover.toml")):
        pw = f"cutover.toml [[platform]] #{i + 1}"
        instant = need(raw, "cutover", datetime, pw)
        if instant.tzinfo is None:
            raise ConfigurationError(f"{pw}: cutover needs a UTC offset, e.g. 2020-11-15T00:00:00+08:00")
        kinds = frozenset(str_list(raw, "accepted_kinds", pw))
        if not kinds or not kinds <= set(KINDS):
            raise ConfigurationError(f"{pw}: accepted_kinds must be among {', '.join(KINDS)}")
        name = need(raw, "name", str, pw)
        if name in platforms:
            raise ConfigurationError(f"{pw}: platform {name!r} given twice")
        platforms[name] = Platform(name, need(raw, "label_zh", str, pw), instant, kinds)
    if not platforms:
        raise ConfigurationError("cutover.toml: at least one [[platform]] is needed")
    reports = tuple(str_list(pre, "reports", where))
    unknown = sorted(set(reports) - set(REPORT_LABELS_ZH))
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown report {', '.join(unknown)}; known: {', '.join(REPORT_LABELS_ZH)}"
        )
    return CutoverPolicy(
        test_certificate_min_days=days,
        reports=reports,
        fast_track_provinces=frozenset(str_list(pre, "fast_track_provinces", where)),
        platforms=MappingProxyType(platforms),
    )
