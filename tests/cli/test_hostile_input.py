"""Hostile input through `pkictl`, on SQLite and PostgreSQL: ids beyond any column or negative, an empty
serial, JSON nested 100,000 deep or larger than the limit. Each is one clear line on stderr and exit 1,
never a traceback, and nothing is written (the audit trail and the request table are unchanged)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from pki.db import make_engine
from tests.cli.runner import Cli, Result
from tests.cli.test_ca_cli import OPERATOR, enter, write_csr
from tests.cli.test_cutover_cli import uscc, write_list
from tests.support.pki import key

HUGE = str(2**64 + 7)  # beyond SQLite's 64-bit INTEGER
PG_ONLY = str(2**31)  # fits SQLite, beyond PostgreSQL's INTEGER
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def desk(staffed: Cli) -> Cli:
    staffed.add_user(OPERATOR, "ops", "distributor")
    return staffed


def written(cli: Cli) -> tuple[int, int]:
    """(audit records, requests): what a refused command must leave as it was. Log-ins are audited
    (auth.login), so they are left out of the count."""
    engine = make_engine(cli.db_url)
    try:
        with engine.connect() as conn:
            audit = conn.execute(
                text("SELECT count(*) FROM audit_record WHERE action NOT LIKE 'auth.%'")
            ).scalar_one()
            requests = conn.execute(text("SELECT count(*) FROM certificate_request")).scalar_one()
    finally:
        engine.dispose()
    return int(audit), int(requests)


def assert_one_line(result: Result, *fragments: str) -> None:
    assert result.code == 1, result
    assert "Traceback" not in result.err + result.out, result.err
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("pkictl: error: "), result.err
    for fragment in fragments:
        assert fragment in result.err, result.err


@pytest.mark.parametrize("rid", [HUGE, PG_ONLY, "0", "-1"], ids=["2^64", "2^31", "zero", "negative"])
def test_request_ids_out_of_range_are_not_found(desk: Cli, tmp_path: Path, rid: str) -> None:
    enter(desk, tmp_path)
    application = tmp_path / "edit.json"
    application.write_text(json.dumps({"unit_name": "x"}), encoding="utf-8")
    csr = write_csr(tmp_path, key("ec-p256", 60))
    before = written(desk)
    commands = [
        ("request", "show", "--", rid),
        ("request", "edit", "--file", str(application), "--as", "clerk", "--", rid),
        ("request", "accept", "--opinion", "agree", "--usbkey", "ePass3003", "--as", "acceptor", "--", rid),
        ("request", "countersign", "--as", "head", "--", rid),
        ("request", "review", "--approve", "--as", "reviewer", "--", rid),
        ("request", "cancel", "--reason", "r", "--as", "clerk", "--", rid),
        ("issue", "--csr", str(csr), "--as", OPERATOR, "--", rid),
        ("distribute", "--recipient", "张三", "--as", OPERATOR, "--", rid),
    ]
    for argv in commands:
        assert_one_line(desk(*argv), f"request {rid} not found"), argv
    assert written(desk) == before


@pytest.mark.parametrize("bound", [HUGE, "-1"])
def test_list_bounds_out_of_range_are_named(desk: Cli, bound: str) -> None:
    assert_one_line(desk("request", "list", "--after-id", bound), "after_id: must be a number")
    assert_one_line(desk("cert", "list", "--after-id", bound), "after_id: must be a number")
    assert_one_line(desk("cert", "list", "--request", bound), "request: must be a number")


def test_an_empty_serial_is_refused_by_name(desk: Cli) -> None:
    before = written(desk)
    for argv in (
        ("revoke", "", "--reason", "keyCompromise", "--as", OPERATOR),
        ("cert", "show", ""),
        ("cert", "export", " : "),
        ("renew", "", "--as", OPERATOR),
    ):
        assert_one_line(desk(*argv), "serial: a serial number is required"), argv
    assert written(desk) == before


def test_json_too_deep_or_too_large_is_refused_naming_the_file(desk: Cli, tmp_path: Path) -> None:
    deep, large = tmp_path / "deep.json", tmp_path / "large.json"
    deep.write_text(DEEP, encoding="ascii")
    large.write_text(json.dumps({"unit_name": "x" * 1_100_000}), encoding="ascii")
    units = write_list(tmp_path, [("某单位", uscc())])
    before = written(desk)
    for path, why in ((deep, "nested deeper than"), (large, "larger than")):
        assert_one_line(desk("request", "new", "--file", str(path), "--as", "clerk"), str(path), why)
        imported = desk(
            "request", "import", str(units), "--defaults", str(path), "--label", "b", "--as", "clerk"
        )
        assert_one_line(imported, str(path), why)
    assert written(desk) == before


def test_access_check_without_a_certificate(desk: Cli) -> None:
    """No --cert: the connection presents none. Let through before the cutover (with a warning), refused
    from the instant on; the same answer the HTTP endpoint gives for an empty body."""
    before = desk("access-check", "--at", "2020-11-14T23:59:59+08:00", "--json")
    assert before.code == 0 and before.json()["decision"] == "allow", before
    assert before.json()["warnings"] == ["no certificate presented"]
    after = desk("access-check", "--at", "2020-11-15T00:00:00+08:00")
    assert after.code == 1 and after.out.strip() == "deny: no certificate presented"


FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)"]


def test_cutover_plan_report_neutralises_formula_cells(desk: Cli, tmp_path: Path) -> None:
    numbers = [uscc() for _ in FORMULAS]
    desk.ok(
        "party",
        "import",
        str(write_list(tmp_path, list(zip(FORMULAS, numbers, strict=True)))),
        "--as",
        OPERATOR,
    )
    out = tmp_path / "plan.csv"
    desk.ok("cutover", "plan", "--out", str(out))
    with out.open(encoding="utf-8-sig", newline="") as f:
        names = {r["credential_number"]: r["name"] for r in csv.DictReader(f)}
    assert names == {n: "'" + formula for n, formula in zip(numbers, FORMULAS, strict=True)}
    as_json = {p["credential_number"]: p["name"] for p in desk.json("cutover", "plan")["parties"]}
    assert as_json == dict(zip(numbers, FORMULAS, strict=True))  # the data itself is not changed
