"""`pkictl party|evidence|cutover|access-check` end to end, in-process over SQLite and PostgreSQL, and a real
process interrupted in the middle of a cutover run. The home's clock is the real one (after 2020-11-15), and
its CA hierarchy is made now, so instants are either "now" or refused for a CA not yet valid."""

from __future__ import annotations

import csv
import io
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from pki.db import make_engine
from tests.cli.runner import Cli, process_env
from tests.cli.test_ca_cli import (
    OPERATOR,
    accepted,
    assert_refused,
    enter,
    issued,
)
from tests.cli.test_cli import pkictl_path
from tests.support import with_shim
from tests.support.data import make_uscc


@pytest.fixture
def ca_home(staffed: Cli) -> Cli:
    """The staffed home plus 'operator' with ops and distributor (as in test_ca_cli)."""
    staffed.add_user(OPERATOR, "ops", "distributor")
    return staffed


_numbers = iter(range(50000000, 60000000))


def uscc(division: str = "130100") -> str:
    return make_uscc(division, str(next(_numbers)))


def write_list(tmp_path: Path, rows: list[tuple[str, str]], name: str = "附件5.csv") -> Path:
    path = tmp_path / name
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["单位名称", "统一社会信用代码", "行业", "地点"])
    for unit, number in rows:
        writer.writerow([unit, number, "电力", "某市"])
    path.write_bytes(buf.getvalue().encode("gb18030"))
    return path


def test_party_import_list_and_evidence(ca_home: Cli, tmp_path: Path) -> None:
    hebei, beijing = uscc(), uscc("110101")
    listing = write_list(tmp_path, [("河北某电厂", hebei), ("北京某电厂", beijing)])
    done = ca_home.ok("party", "import", str(listing), "--access-mode", "all", "--as", OPERATOR)
    assert "2 of 2 parties registered for production" in done.out
    parties = ca_home.json("party", "list", "--province", "河北")
    assert [(p["credential_number"], p["access_mode"], p["state"]) for p in parties] == [
        (hebei, "all", "registered")
    ]
    assert len(ca_home.json("party", "list")) == 2
    refused = ca_home("party", "import", str(listing), "--as", "reviewer")
    assert_refused(refused, "no role that may party import")

    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 software test")
    added = ca_home.json(
        "evidence", "add", "--uscc", hebei, "--type", "software-test", "--reference", "RT-2020-7",
        "--date", "2020-10-10", "--file", str(report), "--as", "clerk",
    )  # fmt: skip
    assert (
        added["type"] == "software-test" and added["filename"] == "report.pdf" and len(added["sha256"]) == 64
    )
    assert [e["reference"] for e in ca_home.json("evidence", "list", "--uscc", hebei)] == ["RT-2020-7"]
    bad = ca_home(
        "evidence", "add", "--uscc", hebei, "--type", "waiver", "--reference", "x", "--date", "10/10/2020",
        "--file", str(report), "--as", "clerk",
    )  # fmt: skip
    assert_refused(bad, "date: must be a date YYYY-MM-DD")


def test_approval_names_the_missing_prerequisite_until_a_waiver(ca_home: Cli, tmp_path: Path) -> None:
    number = uscc()
    rid = enter(ca_home, tmp_path, credential_number=number, province="河北", access_type="formal")
    accepted(ca_home, tmp_path, rid, access_type="formal")
    ca_home.ok("request", "countersign", str(rid), "--as", "head")

    shown = ca_home.ok("request", "show", str(rid)).out
    assert "[FAIL] test_certificate: no test certificate held" in shown
    assert "[FAIL] report:software-test: software-test report missing" in shown
    prereq = ca_home.json("request", "show", str(rid))["prerequisites"]
    assert prereq["applies"] and not prereq["passed"]
    refused = ca_home("request", "review", str(rid), "--approve", "--as", "reviewer")
    assert_refused(refused, "approval refused: prerequisite 'test_certificate' not met")

    letter = tmp_path / "来函.pdf"
    letter.write_bytes(b"%PDF-1.4 letter")
    ca_home.ok(
        "evidence", "add", "--uscc", number, "--type", "waiver", "--reference", "冀发改函〔2020〕8号",
        "--date", "2020-10-15", "--file", str(letter), "--as", "clerk",
    )  # fmt: skip
    assert ca_home.json("request", "show", str(rid))["prerequisites"]["passed"]
    ca_home.ok("request", "review", str(rid), "--approve", "--as", "reviewer")


def test_plan_run_status_and_access_check(ca_home: Cli, tmp_path: Path) -> None:
    formal_unit, test_unit, missing_unit = uscc("110101"), uscc("110101"), uscc()
    formal = issued(ca_home, tmp_path, 40, credential_number=formal_unit, access_type="formal")
    test = issued(ca_home, tmp_path, 41, credential_number=test_unit, access_type="test")
    rows = [("正式单位", formal_unit), ("测试单位", test_unit), ("无证单位", missing_unit)]
    ca_home.ok("party", "import", str(write_list(tmp_path, rows)), "--as", OPERATOR)

    out = tmp_path / "plan.csv"
    plan = ca_home.ok("cutover", "plan", "--days", "30", "--out", str(out)).out
    assert "2 parties not ready" in plan and "per-party report in" in plan
    with out.open(encoding="utf-8-sig") as f:
        report = {r["credential_number"]: r for r in csv.DictReader(f)}
    assert {n: r["readiness"] for n, r in report.items()} == {
        formal_unit: "ready",
        test_unit: "test_only",
        missing_unit: "missing",
    }
    as_json = ca_home.json("cutover", "plan", "--days", "3650")
    assert as_json["totals"]["expiring"] == 1  # 12 months from now ends within ten years
    assert as_json["by_province"]["北京"]["test_only"] == 1 and len(as_json["parties"]) == 3

    early = ca_home("cutover", "run", "--at", "2020-11-14T15:59:59Z", "--as", OPERATOR)
    assert_refused(early, "before it (use --rehearse")
    rehearsal = ca_home.json("cutover", "run", "--rehearse", "--as", OPERATOR)
    assert (rehearsal["state"], rehearsal["allowed"], rehearsal["refused"]) == ("rehearsal", 1, 2)
    assert not ca_home.json("cutover", "status")[0]["enforced"]

    done = ca_home.json("cutover", "run", "--as", OPERATOR)
    assert (done["state"], done["changed"], done["allowed"], done["refused"]) == ("done", True, 1, 2)
    again = ca_home.ok("cutover", "run", "--as", OPERATOR).out
    assert "already done, nothing changed; 1 allowed, 2 refused" in again
    status = {s["platform"]: s for s in ca_home.json("cutover", "status", "--refused")}
    assert status["production"]["enforced"] and not status["test"]["enforced"]
    assert {r["credential_number"]: r["reason"] for r in status["production"]["refused"]} == {
        test_unit: "only a certificate of a kind not accepted on the production platform (needs formal)",
        missing_unit: "no certificate",
    }

    formal_pem, test_pem = tmp_path / "formal.pem", tmp_path / "test.pem"
    formal_pem.write_bytes(ca_home.ok("cert", "export", formal["serial"], "--format", "pem").out.encode())
    test_pem.write_bytes(ca_home.ok("cert", "export", test["serial"], "--format", "pem").out.encode())
    allowed = ca_home("access-check", "--cert", str(formal_pem), "--json")
    assert allowed.code == 0 and allowed.json()["decision"] == "allow"
    denied = ca_home("access-check", "--cert", str(test_pem))
    assert denied.code == 1
    assert denied.out.strip() == "deny: a test certificate is not accepted on the production platform"
    on_test = ca_home("access-check", "--cert", str(test_pem), "--platform", "test", "--json")
    assert on_test.code == 0 and on_test.json()["kind"] == "test"
    unknown = ca_home("access-check", "--cert", str(test_pem), "--platform", "staging")
    assert_refused(unknown, "unknown platform 'staging'")


def test_bad_instant_is_a_usage_error(home: Cli) -> None:
    result = home("cutover", "plan", "--at", "15 November")
    assert result.code == 2 and "not an ISO 8601 instant" in result.err


# -- a real process, interrupted -------------------------------------------------------------------------


def test_a_run_interrupted_by_a_signal_resumes_to_the_same_decisions(
    home: Cli, tmp_path: Path, db_url: str
) -> None:
    home.add_user("op", "ops")
    parties = 6000
    rows = [(f"单位{i}", uscc("110101" if i % 3 else "130100")) for i in range(parties)]
    home.ok("party", "import", str(write_list(tmp_path, rows)), "--as", "op")
    expected = {
        p["credential_number"]: p["readiness"]
        for p in home.json("cutover", "plan", "--at", "2021-01-01T00:00:00Z")["parties"]
    }

    engine = make_engine(db_url)
    try:
        # SIGINT arrives as the fourth chunk is being decided: a real signal through Python's handler, at a
        # point that does not depend on how fast this machine runs the other chunks.
        shim = tmp_path / "shim"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text(
            "import os, signal\nfrom pki.services import cutover as c\n_real = c.CutoverService._record\n"
            "_calls = [0]\n"
            "def _record(*args, **kwargs):\n"
            "    _calls[0] += 1\n"
            "    if _calls[0] == 4:\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "    return _real(*args, **kwargs)\n"
            "c.CutoverService._record = staticmethod(_record)\n",
            encoding="utf-8",
        )
        done = subprocess.run(
            [pkictl_path(), "cutover", "run", "--chunk", "3", "--at", "2021-01-01T00:00:00Z", "--as", "op"],
            check=False,
            env={**process_env(home.home, db_url), "PYTHONPATH": with_shim(shim)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 130, done.stderr
        assert done.stderr.strip() in {"pkictl: error: interrupted", "pkictl: error: aborted"}  # click: Abort
        with engine.connect() as conn:
            state, decided = conn.execute(
                text("SELECT state, (SELECT count(*) FROM cutover_decision) FROM cutover_run")
            ).one()
        assert state == "running" and 0 < decided < parties  # really interrupted mid-run

        resumed = home.json("cutover", "run", "--as", "op")
        assert resumed["changed"] and resumed["at"] == "2021-01-01T00:00:00+00:00"
        assert resumed["allowed"] + resumed["refused"] == parties
        with engine.connect() as conn:
            got = dict(
                conn.execute(
                    text(
                        "SELECT p.credential_number, d.readiness FROM cutover_decision d "
                        "JOIN party p ON p.id = d.party_id"
                    )
                ).all()
            )
        assert got == expected  # the same as an uninterrupted pass over the same data
        again = home.json("cutover", "run", "--as", "op")
        assert not again["changed"]
    finally:
        engine.dispose()
