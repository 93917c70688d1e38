"""`pkictl` end to end: arguments, output, exit codes (0 ok, 1 refused, 2 usage) and what each command leaves in
the database, seen through other commands. In-process over SQLite and PostgreSQL (``db_url``), plus a few
real subprocesses for start-up time and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

import pki.cli
from pki.db import make_engine
from tests.cli.runner import AUDIT_PASSPHRASE, PASSWORD, Cli
from tests.support.data import application, batch_defaults, make_uscc

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "application.json"
USBKEY = "飞天诚信 ePass3003"
UNREACHABLE_DB = "postgresql://nobody@127.0.0.1:1/nothing"


# -- helpers ----------------------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def enter(cli: Cli, tmp_path: Path, *, by: str = "clerk", **overrides: Any) -> int:
    """Enter one application (the support sample with ``overrides``) and return its id."""
    n = len(list(tmp_path.glob("application-*.json")))
    path = write_json(tmp_path / f"application-{n}.json", application(**overrides))
    return int(cli.json("request", "new", "--file", str(path), "--as", by)["id"])


def show(cli: Cli, request_id: int) -> dict[str, Any]:
    data: dict[str, Any] = cli.json("request", "show", str(request_id))
    return data


def ids(cli: Cli, *filters: str) -> list[int]:
    return [r["id"] for r in cli.json("request", "list", *filters)]


def countersigned(cli: Cli, tmp_path: Path, **overrides: Any) -> int:
    """A request taken through entry (clerk), acceptance (acceptor) and countersignature (head)."""
    rid = enter(cli, tmp_path, **overrides)
    cli.ok("request", "accept", str(rid), "--opinion", "agree", "--usbkey", USBKEY, "--as", "acceptor")
    cli.ok("request", "countersign", str(rid), "--as", "head")
    return rid


def assert_refused(result: Any, *fragments: str) -> None:
    """Exit 1 with exactly one line on stderr, 'pkictl: error: ...', containing every fragment."""
    assert result.code == 1, result
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("pkictl: error: "), line
    for fragment in fragments:
        assert fragment in line, line


# -- init -------------------------------------------------------------------------------------------------


def test_init_creates_the_home_and_is_idempotent(cli: Cli) -> None:
    first = cli.ok("init")
    assert f"home: {cli.home}" in first.out
    assert "database: " in first.out
    assert cli.home.is_dir()
    assert cli.home.stat().st_mode & 0o777 == 0o700  # password hashes and ID numbers live here
    if cli.db_url.startswith("sqlite:///"):
        assert Path(cli.db_url.removeprefix("sqlite:///")).stat().st_mode & 0o077 == 0
    cli.add_user("admin", "admin", admin=None)

    again = cli.ok("init")

    assert f"home: {cli.home}" in again.out
    assert [u["username"] for u in cli.json("user", "list")] == ["admin"]
    assert cli.json("request", "list") == []
    assert cli("audit", "verify").code == 0


@pytest.mark.parametrize("argv", [("request", "list"), ("user", "list", "--json"), ("audit", "verify")])
def test_a_command_before_init_says_to_run_init(cli: Cli, argv: tuple[str, ...]) -> None:
    result = cli(*argv)

    assert_refused(result, "pkictl init")
    assert result.out == ""


# -- users ------------------------------------------------------------------------------------------------


def test_the_first_user_must_be_an_admin(cli: Cli) -> None:
    cli.ok("init")

    refused = cli("user", "add", "clerk", "--role", "entry", stdin=PASSWORD + "\n")

    assert_refused(refused, "first user must have the admin role")
    assert cli.json("user", "list") == []
    added = cli.ok("user", "add", "boss", "--role", "admin", "--role", "ops", stdin=PASSWORD + "\n")
    assert "user boss added" in added.out


def test_user_add_takes_the_new_password_from_stdin(home: Cli) -> None:
    own = "clerks-own-password"
    home.ok(
        "user",
        "add",
        "clerk",
        "--role",
        "entry",
        "--display-name",
        "王录入",
        "--as",
        "admin",
        stdin=own + "\n",
    )

    # Logging in is the first step of every --as command: a wrong password stops there, the right one gets
    # through to the (here missing) request.
    assert_refused(home("request", "cancel", "99", "--reason", "x", "--as", "clerk"), "authentication failed")
    assert_refused(
        home("request", "cancel", "99", "--reason", "x", "--as", "clerk", password=own),
        "request 99 not found",
    )


def test_user_add_refusals(home: Cli) -> None:
    def add(*argv: str, stdin: str = PASSWORD + "\n", password: str = PASSWORD) -> Any:
        return home("user", "add", *argv, stdin=stdin, password=password)

    assert_refused(add("clerk", "--role", "entry", "--as", "admin", stdin="short\n"), "password")
    wizard = add("clerk", "--role", "wizard", "--as", "admin")  # not a role: a usage error naming the choices
    assert wizard.code == 2 and "'wizard' is not one of" in wizard.err
    assert_refused(
        add("clerk", "--role", "entry", "--as", "admin", password="not-the-password"), "authentication failed"
    )
    assert_refused(add("admin", "--role", "entry", "--as", "admin"), "'admin' already exists")
    assert [u["username"] for u in home.json("user", "list")] == ["admin"]

    home.add_user("clerk", "entry")
    assert_refused(add("intruder", "--role", "admin", "--as", "clerk"), "only an admin may add users")
    assert_refused(add("clerk", "--role", "reviewer", "--as", "admin"), "'clerk' already exists")
    assert add("nobody", "--as", "admin").code == 2  # --role is required

    users = {u["username"]: u["roles"] for u in home.json("user", "list")}
    assert users == {"admin": ["admin"], "clerk": ["entry"]}


def test_user_list_shows_roles_and_never_the_password(staffed: Cli) -> None:
    listed = staffed("user", "list", "--json")
    users = {u["username"]: u for u in listed.json()}

    assert {name: u["roles"] for name, u in users.items()} == {
        "admin": ["admin"],
        "clerk": ["entry"],
        "acceptor": ["acceptor", "reviewer"],
        "head": ["head"],
        "reviewer": ["reviewer"],
    }
    assert all(u["active"] for u in users.values())
    for output in (listed.out, staffed.ok("user", "list").out):
        assert PASSWORD not in output
        assert "argon2" not in output
        assert "hash" not in output.lower()
    assert all("password" not in key for u in users.values() for key in u)
    text_lines = staffed.ok("user", "list").out.splitlines()
    assert any(line.startswith("acceptor") and "acceptor,reviewer" in line for line in text_lines)


# -- entering requests ------------------------------------------------------------------------------------


def test_request_new_from_the_documented_example(staffed: Cli) -> None:
    entered = staffed.ok("request", "new", "--file", str(EXAMPLE), "--as", "clerk")
    assert entered.out.strip() == "request 1 entered: entered"

    shown = show(staffed, 1)

    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    for key in ("unit_name", "credential_number", "province", "handler_name", "postal_code", "target_system"):
        assert shown[key] == example[key], key
    assert shown["state"] == "entered"
    assert shown["entered_by"] == "clerk"
    assert [(h["actor"], h["action"]) for h in shown["history"]] == [("clerk", "request.enter")]
    as_text = staffed.ok("request", "show", "1").out
    assert "单位名称 (unit_name): 北京市某能源监测中心" in as_text
    assert "history (China Standard Time):" in as_text
    assert "clerk request.enter" in as_text


def test_request_new_with_a_bad_credit_code_creates_nothing(staffed: Cli, tmp_path: Path) -> None:
    bad = write_json(tmp_path / "bad.json", application(credential_number="91110101100000016X"))

    result = staffed("request", "new", "--file", str(bad), "--as", "clerk")

    assert_refused(result, "credential_number")
    assert result.out == ""
    assert staffed.json("request", "list") == []


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("unit_name: 北京\n", "not readable JSON"),
        ("", "not readable JSON"),
        ('["a", "list"]', "expected a JSON object"),
    ],
)
def test_request_new_refuses_a_file_that_is_not_a_json_object(
    staffed: Cli, tmp_path: Path, content: str, fragment: str
) -> None:
    path = tmp_path / "application.json"
    path.write_text(content, encoding="utf-8")

    assert_refused(staffed("request", "new", "--file", str(path), "--as", "clerk"), fragment)
    assert staffed.json("request", "list") == []


def test_request_new_usage_errors(staffed: Cli, tmp_path: Path) -> None:
    missing_as = staffed("request", "new", "--file", str(EXAMPLE))
    assert missing_as.code == 2
    assert "--as" in missing_as.err
    assert staffed("request", "new", "--file", str(tmp_path / "absent.json"), "--as", "clerk").code == 2
    assert staffed("request", "new", "--as", "clerk").code == 2
    assert staffed.json("request", "list") == []


def test_entering_needs_the_entry_role(staffed: Cli) -> None:
    assert_refused(
        staffed("request", "new", "--file", str(EXAMPLE), "--as", "head"), "no role that may enter"
    )
    assert staffed.json("request", "list") == []


# -- the workflow -----------------------------------------------------------------------------------------


def test_accept_countersign_approve(staffed: Cli, tmp_path: Path) -> None:
    rid = enter(staffed, tmp_path)
    r = str(rid)

    accepted = staffed.ok(
        "request", "accept", r, "--opinion", "agree", "--usbkey", USBKEY, "--as", "acceptor"
    )
    assert accepted.out.strip() == f"request {rid} accepted: accepted"
    signed = staffed.ok("request", "countersign", r, "--as", "head")
    assert signed.out.strip() == f"request {rid} countersigned: countersigned"
    approved = staffed.ok("request", "review", r, "--approve", "--as", "reviewer", "--json")
    assert approved.json()["state"] == "approved"

    shown = show(staffed, rid)
    assert shown["state"] == "approved"
    assert shown["acceptance_opinion"] == "agree"
    assert shown["usbkey_model"] == USBKEY
    assert (shown["accepted_by"], shown["countersigned_by"], shown["reviewed_by"]) == (
        "acceptor",
        "head",
        "reviewer",
    )
    assert shown["review_decision"] == "approve"
    assert [(h["actor"], h["action"]) for h in shown["history"]] == [
        ("clerk", "request.enter"),
        ("acceptor", "request.accept"),
        ("head", "request.countersign"),
        ("reviewer", "request.approve"),
    ]
    assert shown["history"][1]["details"]["usbkey"] == USBKEY
    assert ids(staffed, "--status", "approved") == [rid]


def test_review_returns_and_rejects_with_a_reason(staffed: Cli, tmp_path: Path) -> None:
    first = countersigned(staffed, tmp_path)
    second = countersigned(staffed, tmp_path, credential_number=make_uscc("110101", "10000001"))

    staffed.ok("request", "review", str(first), "--return", "经办人身份证件号码有误", "--as", "reviewer")
    staffed.ok("request", "review", str(second), "--reject", "不属于重点用能单位", "--as", "reviewer")

    returned, rejected = show(staffed, first), show(staffed, second)
    assert (returned["state"], returned["review_decision"]) == ("returned", "return")
    assert returned["review_reason"] == "经办人身份证件号码有误"
    assert (rejected["state"], rejected["review_decision"]) == ("rejected", "reject")
    assert rejected["review_reason"] == "不属于重点用能单位"
    assert rejected["history"][-1]["details"]["reason"] == "不属于重点用能单位"
    # A reason is required, even when the option is given.
    third = countersigned(staffed, tmp_path, credential_number=make_uscc("110101", "10000002"))
    assert_refused(staffed("request", "review", str(third), "--return", " ", "--as", "reviewer"), "reason")
    assert show(staffed, third)["state"] == "countersigned"


def test_acceptor_disagrees_with_a_comment(staffed: Cli, tmp_path: Path) -> None:
    rid = enter(staffed, tmp_path)

    no_reason = staffed("request", "accept", str(rid), "--opinion", "disagree", "--as", "acceptor")
    assert_refused(no_reason, "comment")
    result = staffed.ok(
        "request", "accept", str(rid), "--opinion", "disagree", "--comment", "公章不清晰", "--as", "acceptor"
    )

    assert result.out.strip() == f"request {rid} not accepted: rejected"
    shown = show(staffed, rid)
    assert (shown["state"], shown["acceptance_opinion"]) == ("rejected", "disagree")
    assert shown["acceptance_comment"] == "公章不清晰"
    assert shown["history"][-1]["action"] == "request.disagree"


def test_accepting_needs_the_usbkey_model(staffed: Cli, tmp_path: Path) -> None:
    rid = enter(staffed, tmp_path)

    assert_refused(staffed("request", "accept", str(rid), "--opinion", "agree", "--as", "acceptor"), "usbkey")
    assert_refused(
        staffed("request", "accept", str(rid), "--opinion", "agree", "--usbkey", "  ", "--as", "acceptor"),
        "usbkey",
    )
    assert staffed("request", "accept", str(rid), "--opinion", "maybe", "--as", "acceptor").code == 2
    assert staffed("request", "accept", str(rid), "--usbkey", USBKEY, "--as", "acceptor").code == 2
    assert show(staffed, rid)["state"] == "entered"
    assert len(show(staffed, rid)["history"]) == 1


@pytest.mark.parametrize(
    "choices",
    [
        (),
        ("--approve", "--reject", "不合格"),
        ("--return", "补充材料", "--reject", "不合格"),
        ("--approve", "--return", "补充材料", "--reject", "不合格"),
    ],
)
def test_review_needs_exactly_one_decision(staffed: Cli, tmp_path: Path, choices: tuple[str, ...]) -> None:
    rid = countersigned(staffed, tmp_path)

    result = staffed("request", "review", str(rid), *choices, "--as", "reviewer")

    assert result.code == 2
    assert "exactly one of --approve, --return REASON, --reject REASON" in result.err
    assert show(staffed, rid)["state"] == "countersigned"


def test_steps_out_of_order_are_refused(staffed: Cli, tmp_path: Path) -> None:
    rid = enter(staffed, tmp_path)

    assert staffed("request", "countersign", str(rid), "--as", "head").code == 1
    assert staffed("request", "review", str(rid), "--approve", "--as", "reviewer").code == 1
    assert_refused(staffed("request", "countersign", "404", "--as", "head"), "request 404 not found")
    assert show(staffed, rid)["state"] == "entered"


# -- who may do what --------------------------------------------------------------------------------------


def test_separation_of_duties(staffed: Cli, tmp_path: Path) -> None:
    staffed.add_user("both", "entry", "acceptor")
    rid = enter(staffed, tmp_path, by="both")

    refused = staffed("request", "accept", str(rid), "--opinion", "agree", "--usbkey", USBKEY, "--as", "both")

    assert_refused(refused, "whoever entered a request may not accept or review it")
    assert show(staffed, rid)["state"] == "entered"

    # The acceptor holds the reviewer role too, but may not review what they accepted.
    staffed.ok("request", "accept", str(rid), "--opinion", "agree", "--usbkey", USBKEY, "--as", "acceptor")
    staffed.ok("request", "countersign", str(rid), "--as", "head")
    refused = staffed("request", "review", str(rid), "--approve", "--as", "acceptor")

    assert_refused(refused, "the acceptor may not countersign or review the request")
    assert show(staffed, rid)["state"] == "countersigned"
    staffed.ok("request", "review", str(rid), "--approve", "--as", "reviewer")
    assert show(staffed, rid)["state"] == "approved"


def test_the_clerk_may_not_countersign(staffed: Cli, tmp_path: Path) -> None:
    rid = enter(staffed, tmp_path)
    staffed.ok("request", "accept", str(rid), "--opinion", "agree", "--usbkey", USBKEY, "--as", "acceptor")

    refused = staffed("request", "countersign", str(rid), "--as", "clerk")

    assert_refused(refused, "'clerk'", "no role that may countersign")
    assert show(staffed, rid)["state"] == "accepted"
    assert all(h["action"] != "request.countersign" for h in show(staffed, rid)["history"])


# -- listing ----------------------------------------------------------------------------------------------


def test_request_list_filters(staffed: Cli, tmp_path: Path) -> None:
    shanghai_code = make_uscc("310101", "20000001")
    beijing = enter(staffed, tmp_path, unit_name="北京某热电厂")
    shanghai = enter(
        staffed,
        tmp_path,
        unit_name="上海某钢铁公司",
        province="上海",
        credential_number=shanghai_code,
        address="上海市黄浦区某路2号",
        county="黄浦区",
        postal_address="上海市黄浦区某路2号",
        postal_code="200001",
        access_type="formal",
    )
    other = enter(
        staffed, tmp_path, unit_name="北京某钢铁研究院", credential_number=make_uscc("110101", "10000003")
    )
    staffed.ok("request", "accept", str(other), "--opinion", "agree", "--usbkey", USBKEY, "--as", "acceptor")

    assert ids(staffed) == [beijing, shanghai, other]
    assert ids(staffed, "--status", "accepted") == [other]
    assert ids(staffed, "--status", "entered") == [beijing, shanghai]
    assert ids(staffed, "--status", "approved") == []
    assert ids(staffed, "--province", "上海") == [shanghai]
    assert ids(staffed, "--province", "北京") == [beijing, other]
    assert ids(staffed, "--access-type", "formal") == [shanghai]
    assert ids(staffed, "--search", "钢铁") == [shanghai, other]
    assert ids(staffed, "--search", "热电") == [beijing]
    assert ids(staffed, "--search", shanghai_code) == [shanghai]
    assert ids(staffed, "--search", shanghai_code.lower()) == [shanghai]
    assert ids(staffed, "--search", shanghai_code[:8]) == []  # codes match exactly, not by fragment
    assert ids(staffed, "--search", "%") == []
    assert ids(staffed, "--after-id", str(beijing)) == [shanghai, other]
    assert ids(staffed, "--limit", "2") == [beijing, shanghai]
    assert ids(staffed, "--after-id", str(beijing), "--limit", "1") == [shanghai]
    assert ids(staffed, "--search", "钢铁", "--status", "entered") == [shanghai]

    lines = staffed.ok("request", "list", "--province", "上海").out.splitlines()
    assert len(lines) == 1
    assert shanghai_code in lines[0]
    assert "上海某钢铁公司" in lines[0]
    assert staffed("request", "list", "--status", "pending").code == 2
    assert staffed("request", "list", "--limit", "0").code == 2


def test_request_list_province_accepts_the_aliases_entry_accepts(staffed: Cli, tmp_path: Path) -> None:
    rid = enter(staffed, tmp_path, province="北京市")
    assert show(staffed, rid)["province"] == "北京"

    assert ids(staffed, "--province", "北京市") == [rid]


# -- bulk import ------------------------------------------------------------------------------------------

CSV_HEADER = "单位名称,统一社会信用代码,行业,地点,单位性质,近三年综合能源消费量,主要用能品种"
UNITS = [
    ("北京某热电厂", make_uscc("110101", "10000001"), "电力", "东城区", "国有", "12万吨标准煤", "煤炭"),
    ("北京某水泥厂", make_uscc("110101", "10000002"), "建材", "东城区", "民营", "8万吨标准煤", "煤炭、电力"),
    ("北京某数据中心", make_uscc("110101", "10000003"), "信息", "东城区", "国有", "5万吨标准煤", "电力"),
]
BAD_CODE = "91110101100000016X"


def unit_csv(rows: list[tuple[str, ...]]) -> str:
    return "\n".join([CSV_HEADER, *(",".join(row) for row in rows)]) + "\n"


@pytest.fixture
def defaults(tmp_path: Path) -> Path:
    return write_json(tmp_path / "defaults.json", batch_defaults())


def import_argv(csv_path: Path, defaults: Path, *extra: str) -> list[str]:
    return [
        "request",
        "import",
        str(csv_path),
        "--defaults",
        str(defaults),
        "--label",
        "北京 第一批",
        "--as",
        "clerk",
        *extra,
    ]


def test_import_a_unit_list(staffed: Cli, tmp_path: Path, defaults: Path) -> None:
    csv_path = tmp_path / "units.csv"
    csv_path.write_text(unit_csv(UNITS), encoding="utf-8")

    result = staffed.ok(*import_argv(csv_path, defaults))

    assert "imported 3 of 3 rows" in result.out
    listed = staffed.json("request", "list")
    assert [(r["unit_name"], r["credential_number"]) for r in listed] == [(u[0], u[1]) for u in UNITS]
    assert [r["industry"] for r in listed] == ["电力", "建材", "信息"]
    assert all(r["state"] == "entered" and r["entered_by"] == "clerk" for r in listed)
    assert len({r["batch_id"] for r in listed}) == 1
    assert listed[0]["batch_id"] is not None
    batch_records = [a for a in staffed.json("audit", "show") if a["action"] == "batch.import"]
    assert [a["details"]["imported"] for a in batch_records] == [3]


def test_import_with_a_bad_row_imports_nothing(staffed: Cli, tmp_path: Path, defaults: Path) -> None:
    rows = [UNITS[0], (UNITS[1][0], BAD_CODE, *UNITS[1][2:]), UNITS[2]]
    csv_path = tmp_path / "units.csv"
    csv_path.write_text(unit_csv(rows), encoding="utf-8")

    result = staffed(*import_argv(csv_path, defaults))

    assert result.code == 1
    last = result.err_lines[-1]
    assert last.startswith("pkictl: error: 1 of 3 rows are invalid, nothing imported")
    assert "line 3" in last
    assert "credential_number" in last
    assert staffed.json("request", "list") == []


def test_import_skip_invalid_keeps_the_good_rows(staffed: Cli, tmp_path: Path, defaults: Path) -> None:
    rows = [UNITS[0], (UNITS[1][0], BAD_CODE, *UNITS[1][2:]), UNITS[2]]
    csv_path = tmp_path / "units.csv"
    csv_path.write_text(unit_csv(rows), encoding="utf-8")

    result = staffed.ok(*import_argv(csv_path, defaults, "--skip-invalid"))

    assert "imported 2 of 3 rows" in result.out
    assert "skipped line 3: credential_number" in result.out
    assert [r["unit_name"] for r in staffed.json("request", "list")] == [UNITS[0][0], UNITS[2][0]]

    # The same report through --json, for a second list of other units.
    second = tmp_path / "units-2.csv"
    second.write_text(
        unit_csv(
            [("北京某化工厂", BAD_CODE, "化工"), ("北京某医院", make_uscc("110101", "10000009"), "卫生")]
        ).replace(CSV_HEADER, "单位名称,统一社会信用代码,行业"),
        encoding="utf-8",
    )
    again = staffed.ok(*import_argv(second, defaults, "--skip-invalid", "--json")).json()
    assert again["total"] == 2
    assert len(again["imported"]) == 1
    assert [r["line"] for r in again["rejected"]] == [2]
    assert again["rejected"][0]["errors"][0]["field"] == "credential_number"
    assert [r["unit_name"] for r in staffed.json("request", "list")] == [
        UNITS[0][0],
        UNITS[2][0],
        "北京某医院",
    ]


def test_import_a_gb18030_file(staffed: Cli, tmp_path: Path, defaults: Path) -> None:
    csv_path = tmp_path / "units-excel.csv"
    csv_path.write_bytes(unit_csv(UNITS).replace("\n", "\r\n").encode("gb18030"))

    result = staffed.ok(*import_argv(csv_path, defaults, "--json"))

    assert len(result.json()["imported"]) == 3
    listed = staffed.json("request", "list")
    assert [r["unit_name"] for r in listed] == [u[0] for u in UNITS]
    assert [r["main_energy_types"] for r in listed] == [u[6] for u in UNITS]


def test_import_usage_and_role(staffed: Cli, tmp_path: Path, defaults: Path) -> None:
    csv_path = tmp_path / "units.csv"
    csv_path.write_text(unit_csv(UNITS), encoding="utf-8")

    assert staffed("request", "import", str(csv_path), "--label", "x", "--as", "clerk").code == 2
    argv = import_argv(csv_path, defaults)
    argv[argv.index("--as") + 1] = "acceptor"
    assert_refused(staffed(*argv), "no role that may enter")
    assert staffed.json("request", "list") == []


# -- audit ------------------------------------------------------------------------------------------------


def test_audit_verify_counts_the_records(staffed: Cli, tmp_path: Path) -> None:
    enter(staffed, tmp_path)
    records = staffed.json("audit", "show", "--limit", "1000")

    result = staffed.ok("audit", "verify")

    assert result.out.startswith(f"audit chain OK: {len(records)} records, head {len(records)}:")
    verified = staffed.json("audit", "verify")
    assert verified["ok"] is True
    assert verified["records"] == verified["head_seq"] == len(records)
    assert verified["problems"] == []
    assert verified["head_hash"] == records[-1]["hash"]
    # The printed head is an anchor: passing it back verifies; a different hash for it fails.
    anchor = f"{verified['head_seq']}:{verified['head_hash']}"
    assert staffed.ok("audit", "verify", "--expect", anchor).code == 0
    forged = f"{verified['head_seq']}:{'0' * 64}"
    assert_refused(staffed("audit", "verify", "--expect", forged), "audit chain broken")
    assert staffed("audit", "verify", "--expect", "nonsense").code == 2


def test_audit_verify_detects_an_edited_record(staffed: Cli, tmp_path: Path) -> None:
    enter(staffed, tmp_path)
    engine: Engine = make_engine(staffed.db_url)
    try:
        with engine.begin() as conn:
            changed = conn.execute(text("UPDATE audit_record SET actor = 'mallory' WHERE seq = 2")).rowcount
    finally:
        engine.dispose()
    assert changed == 1

    result = staffed("audit", "verify")

    assert result.code == 1
    assert result.out == "record 2: content does not match its hash (edited)\n"
    assert result.err_lines == [
        "pkictl: error: audit chain broken: 1 problem(s) found: untrustworthy from record 2"
    ]
    as_json = staffed("audit", "verify", "--json")
    assert as_json.code == 1
    report = as_json.json()
    assert report["ok"] is False
    assert report["problems"] == ["record 2: content does not match its hash (edited)"]


def test_audit_show(staffed: Cli, tmp_path: Path) -> None:
    first = enter(staffed, tmp_path)
    second = enter(staffed, tmp_path, credential_number=make_uscc("110101", "10000001"))
    staffed.ok("request", "accept", str(first), "--opinion", "agree", "--usbkey", USBKEY, "--as", "acceptor")

    everything = staffed.json("audit", "show", "--limit", "1000")
    assert [r["seq"] for r in everything] == list(range(1, len(everything) + 1))
    assert {"user.add", "auth.login", "request.enter", "request.accept"} <= {r["action"] for r in everything}
    assert all(isinstance(r["details"], dict) for r in everything)

    newest = staffed.json("audit", "show", "--limit", "2")
    assert newest == everything[-2:]

    of_first = staffed.json("audit", "show", "--request", str(first))
    assert [(r["actor"], r["action"]) for r in of_first] == [
        ("clerk", "request.enter"),
        ("acceptor", "request.accept"),
    ]
    assert all(r["subject_id"] == str(first) for r in of_first)
    assert [r["action"] for r in staffed.json("audit", "show", "--request", str(second))] == ["request.enter"]
    assert staffed.json("audit", "show", "--request", "999") == []

    lines = staffed.ok("audit", "show", "--request", str(first)).out.splitlines()
    assert len(lines) == 2
    assert f"request:{first}" in lines[1]
    assert "acceptor" in lines[1]


def test_every_read_command_has_json(staffed: Cli, tmp_path: Path) -> None:
    rid = enter(staffed, tmp_path)
    commands = [
        ("request", "list"),
        ("request", "show", str(rid)),
        ("user", "list"),
        ("audit", "show"),
        ("audit", "show", "--request", str(rid)),
        ("audit", "verify"),
    ]
    for argv in commands:
        result = staffed.ok(*argv, "--json")
        assert result.err == ""
        json.loads(result.out)


def test_request_show_refusals(staffed: Cli) -> None:
    assert_refused(staffed("request", "show", "7"), "request 7 not found")
    assert staffed("request", "show", "seven").code == 2


# -- main()'s contract ------------------------------------------------------------------------------------


def test_help_and_version_exit_zero(cli: Cli) -> None:
    helped = cli("--help")
    assert helped.code == 0
    assert "Usage: pkictl" in helped.out
    assert "request" in helped.out
    bare = cli()
    assert bare.code == 2
    assert "Usage: pkictl" in bare.out + bare.err
    version = cli("--version")
    assert version.code == 0
    assert version.out.startswith("pkictl, version ")


def test_an_exit_code_requested_by_a_command_is_kept(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command()
    def stop() -> None:
        click.get_current_context().exit(3)

    monkeypatch.setitem(pki.cli.cli.commands, "stop", stop)

    assert cli("stop").code == 3


def test_commands_close_their_database_connections(
    staffed: Cli, engines: list[Engine], tmp_path: Path
) -> None:
    engines.clear()
    staffed.ok("init")
    enter(staffed, tmp_path)
    staffed.ok("request", "list")
    staffed.ok("audit", "verify")

    assert engines
    assert [e.pool.checkedin() for e in engines] == [0] * len(engines)


def test_demo_seeds_a_marked_home_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, engines: list[Engine]
) -> None:
    from pki import demo

    # A demo lives in the home's own SQLite database and refuses a configured PKI_DATABASE_URL.
    assert_refused(
        Cli(monkeypatch, capsys, tmp_path / "elsewhere", f"sqlite:///{tmp_path}/x.db")("demo"),
        "unset PKI_DATABASE_URL",
    )
    cli = Cli(monkeypatch, capsys, tmp_path / "home", f"sqlite:///{tmp_path / 'home' / 'pki.db'}")
    result = cli.ok("demo")

    assert "DEMO home" in result.out
    assert (cli.home / demo.MARKER).exists()
    assert {u["username"] for u in cli.json("user", "list")} == {name for name, _, _ in demo.DEMO_USERS}
    assert len(cli.json("request", "list")) == len(demo.DEMO_UNITS)
    assert [e.pool.checkedin() for e in engines] == [0] * len(engines)
    assert_refused(cli("demo"), "already seeded")
    assert len(cli.json("request", "list")) == len(demo.DEMO_UNITS)


def test_an_unreachable_database_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, engines: list[Engine]
) -> None:
    cli = Cli(monkeypatch, capsys, tmp_path / "home", UNREACHABLE_DB)

    assert_refused(cli("init"), "database unavailable", "127.0.0.1")


def test_an_unreachable_database_is_not_called_uninitialized(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, engines: list[Engine]
) -> None:
    cli = Cli(monkeypatch, capsys, tmp_path / "home", UNREACHABLE_DB)

    result = cli("request", "list")

    assert result.code == 1
    assert "pkictl init" not in result.err


def test_refused_command_leaves_no_open_connection(cli: Cli, engines: list[Engine]) -> None:
    if cli.db_url.startswith("sqlite:///"):
        # A database file with no schema, so that the refusal comes after connecting, as on PostgreSQL.
        Path(cli.db_url.removeprefix("sqlite:///")).touch()

    assert_refused(cli("request", "list"), "pkictl init")

    assert engines
    assert [e.pool.checkedin() for e in engines] == [0] * len(engines)


# -- real processes ---------------------------------------------------------------------------------------


def pkictl_path() -> str:
    beside = Path(sys.executable).parent / "pkictl"
    found = str(beside) if beside.exists() else shutil.which("pkictl")
    assert found, "pkictl is not installed"
    return found


def run(*argv: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PKI_HOME": str(home),
        "PKI_PASSWORD": PASSWORD,
        "LANG": "C.UTF-8",
        "PKI_CA_PASSPHRASE": "cli-test-ca-passphrase",
        "PKI_AUDIT_PASSPHRASE": AUDIT_PASSPHRASE,
    }
    return subprocess.run(
        [pkictl_path(), *argv], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_help_starts_fast(tmp_path: Path) -> None:
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        done = run("--help", home=tmp_path / "home")
        timings.append(time.perf_counter() - start)
        assert done.returncode == 0
        assert "Usage: pkictl" in done.stdout
    assert min(timings) < 0.5, timings


def test_usage_error_exits_2(tmp_path: Path) -> None:
    done = run("request", "list", "--bogus", home=tmp_path / "home")

    assert done.returncode == 2
    assert "No such option" in done.stderr
    assert done.stdout == ""


def test_refusal_exits_1_with_one_line(tmp_path: Path) -> None:
    done = run("request", "list", home=tmp_path / "home")

    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("pkictl: error: no pkictl home at ")
    assert "run 'pkictl init'" in done.stderr


def test_a_real_process_runs_the_workflow_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("init", home=home).returncode == 0
    env = {"PATH": "/usr/bin:/bin", "PKI_HOME": str(home), "LANG": "C.UTF-8"}

    def add_admin(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        argv = [pkictl_path(), "user", "add", "admin", "--role", "admin"]
        return subprocess.run(
            argv, input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False, env=env
        )

    # Every write needs the audit key: without its passphrase (and no terminal to prompt on) nothing is written.
    locked = add_admin(env)
    assert locked.returncode == 2
    assert "PKI_AUDIT_PASSPHRASE" in locked.stderr
    assert json.loads(run("user", "list", "--json", home=home).stdout) == []
    done = add_admin({**env, "PKI_AUDIT_PASSPHRASE": AUDIT_PASSPHRASE})
    assert done.returncode == 0, done.stderr

    refused = run("request", "new", "--file", str(EXAMPLE), "--as", "admin", home=home)

    assert refused.returncode == 1
    assert refused.stderr.splitlines() == ["pkictl: error: user 'admin' has no role that may enter"]
    assert json.loads(run("request", "list", "--json", home=home).stdout) == []


def test_user_set_changes_roles_activation_and_password(staffed: Cli) -> None:
    staffed.ok("user", "set", "clerk", "--role", "entry", "--role", "head", "--as", "admin")
    roles = {u["username"]: u["roles"] for u in staffed.json("user", "list")}
    assert roles["clerk"] == ["entry", "head"]
    staffed.ok("user", "set", "clerk", "--reset-password", "--as", "admin", stdin="brand-new-password\n")
    assert (
        staffed("user", "set", "clerk", "--inactive", "--as", "clerk", password="brand-new-password").code
        == 1
    )
    staffed.ok("user", "set", "clerk", "--inactive", "--as", "admin")
    assert [u["active"] for u in staffed.json("user", "list") if u["username"] == "clerk"] == [False]
    refused = staffed("user", "set", "admin", "--role", "ops", "--as", "admin")
    assert refused.code == 1 and "no active admin" in refused.err
