"""Acceptance points through `pkictl`, in-process over SQLite and PostgreSQL: `point add|list`, `user add|set
--point`, work entered at a point, and for every role a user of 武汉 refused on 长沙's request, certificate,
party and key exactly as on missing ones (reads with --as see what that user sees); the key stock commands
(`token intake|transfer|receive|return|list`)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from pki.enums import Action, Role
from policies import load_policies
from tests.cli.runner import PASSWORD, Cli
from tests.support.data import application, make_uscc
from tests.support.pki import csr_for, key

PROVINCIAL, WUHAN, CHANGSHA = "湖北省受理中心", "武汉受理点", "长沙受理点"
WORKFLOW = load_policies().workflow
_units = itertools.count(82000000)


def add_user(cli: Cli, name: str, *roles: str, point: str | None = None, **extra: str) -> None:
    argv = ["user", "add", name, *(a for r in roles for a in ("--role", r)), "--as", "admin"]
    if point is not None:
        argv += ["--point", point]
    for option, value in extra.items():
        argv += [f"--{option.replace('_', '-')}", value]
    cli.ok(*argv, stdin=PASSWORD + "\n")


def enter(cli: Cli, tmp_path: Path, user: str, point: str | None = None) -> int:
    n = next(_units)
    path = tmp_path / f"app-{n}.json"
    data = application(credential_number=make_uscc("110101", str(n)), unit_name=f"某单位{n}")
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    argv = ["request", "new", "--file", str(path), "--as", user]
    if point is not None:
        argv += ["--point", point]
    return int(cli.json(*argv)["id"])


@pytest.fixture
def points(staffed: Cli) -> Cli:
    """The staffed home with 湖北's provincial point, 武汉 under it and 长沙; a user per role at 武汉 (wh-…),
    and the staff to work at 长沙 (cs-…)."""
    staffed.ok("point", "add", PROVINCIAL, "--province", "湖北", "--as", "admin")
    staffed.ok("point", "add", WUHAN, "--province", "湖北省", "--parent", PROVINCIAL, "--as", "admin")
    staffed.ok("point", "add", CHANGSHA, "--province", "湖南", "--as", "admin")
    for role in Role:
        add_user(staffed, f"wh-{role.value}", role.value, point=WUHAN)
    for name, role in (
        ("entry", "entry"),
        ("acceptor", "acceptor"),
        ("head", "head"),
        ("reviewer", "reviewer"),
    ):
        add_user(staffed, f"cs-{name}", role, point=CHANGSHA)
    add_user(staffed, "cs-dist", "distributor", "ops", point=CHANGSHA)
    add_user(staffed, "hb-ops", "ops", "distributor", point=PROVINCIAL)
    return staffed


def test_points_and_users_at_them(points: Cli) -> None:
    listed = points.json("point", "list")
    assert [(p["name"], p["province"], p["parent"]) for p in listed] == [
        ("默认受理点", "", None),
        (PROVINCIAL, "湖北", None),
        (WUHAN, "湖北", PROVINCIAL),
        (CHANGSHA, "湖南", None),
    ]
    assert {p["name"]: p["users"] for p in listed}[WUHAN] == len(Role)
    text = points.ok("point", "list").out.splitlines()
    assert text[2].startswith(f"  {WUHAN}")  # under its provincial point
    refused = points("point", "add", "某受理点", "--province", "北京", "--as", "clerk")
    assert refused.code == 1 and "point admin" in refused.err
    bad = points("point", "add", "某受理点", "--province", "火星", "--as", "admin")
    assert bad.code == 1 and "province: unknown province '火星'" in bad.err
    add_user(points, "zhang", "entry", point=WUHAN, display_name="张三")
    users = {u["username"]: u for u in points.json("user", "list")}
    assert (users["zhang"]["point"], users["zhang"]["display_name"]) == (WUHAN, "张三")
    assert users["clerk"]["point"] is None  # a center user
    moved = points.ok(
        "user", "set", "zhang", "--point", CHANGSHA, "--display-name", "张三丰", "--as", "admin"
    )
    assert f"at {CHANGSHA}" in moved.out
    assert "at the center" in points.ok("user", "set", "zhang", "--center", "--as", "admin").out
    unknown = points(
        "user", "add", "li", "--role", "entry", "--point", "火星受理点", "--as", "admin", stdin=PASSWORD
    )
    assert unknown.code == 1 and "no acceptance point named '火星受理点'" in unknown.err


def test_work_is_entered_at_the_users_point(points: Cli, tmp_path: Path) -> None:
    mine = enter(points, tmp_path, "wh-entry")
    center = enter(points, tmp_path, "clerk")
    named = enter(points, tmp_path, "clerk", point=CHANGSHA)
    ids = {p["name"]: p["id"] for p in points.json("point", "list")}
    got = {rid: points.json("request", "show", str(rid))["point_id"] for rid in (mine, center, named)}
    assert got == {mine: ids[WUHAN], center: ids["默认受理点"], named: ids[CHANGSHA]}
    elsewhere = points(
        "request",
        "new",
        "--file",
        str(next(tmp_path.glob("app-*.json"))),
        "--point",
        CHANGSHA,
        "--as",
        "wh-entry",
    )
    assert elsewhere.code == 1 and f"no acceptance point named '{CHANGSHA}'" in elsewhere.err


@pytest.fixture
def changsha_work(points: Cli, tmp_path: Path) -> dict[str, Any]:
    """At 长沙: an entered request, an accepted one, a countersigned one, an approved one, an issued
    certificate, a party and a key; and the same kind of work at 武汉 to see."""

    def walk(rid: int, upto: str, staff: str) -> None:
        steps = [
            ("accepted", ("request", "accept", str(rid), "--opinion", "agree", "--usbkey", "ePass3003")),
            ("countersigned", ("request", "countersign", str(rid))),
            ("approved", ("request", "review", str(rid), "--approve")),
        ]
        who = {
            "accepted": f"{staff}-acceptor",
            "countersigned": f"{staff}-head",
            "approved": f"{staff}-reviewer",
        }
        for state, argv in steps:
            points.ok(*argv, "--as", who[state])
            if state == upto:
                return

    out: dict[str, Any] = {}
    for state in ("entered", "accepted", "countersigned", "approved"):
        rid = enter(points, tmp_path, "cs-entry")
        if state != "entered":
            walk(rid, state, "cs")
        out[state] = rid
    issued = enter(points, tmp_path, "cs-entry")
    walk(issued, "approved", "cs")
    csr = tmp_path / "cs.csr"
    csr.write_bytes(csr_for(key("ec-p256", 950)))
    out["serial"] = points.json("issue", str(issued), "--csr", str(csr), "--as", "cs-dist")["serial"]
    number = make_uscc("110101", str(next(_units)))
    units = tmp_path / "cs-units.csv"
    units.write_text(f"单位名称,统一社会信用代码\n长沙某单位,{number}\n", encoding="utf-8")
    points.ok("party", "import", str(units), "--as", "cs-dist")
    out["party"] = number
    points.ok("token", "intake", "--serial", "CS-KEY", "--model", "ePass3003", "--as", "cs-dist")
    out["mine"] = enter(points, tmp_path, "wh-entry")
    return out


def _refused_as_missing(result: Any, what: str) -> None:
    assert result.code == 1 and result.err_lines == [f"pkictl: error: {what}"], result


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_every_role_at_wuhan_is_refused_on_changshas_work(
    points: Cli, changsha_work: dict[str, Any], role: Role, tmp_path: Path
) -> None:
    me = f"wh-{role.value}"
    rid = changsha_work["entered"]
    _refused_as_missing(points("request", "show", str(rid), "--as", me), f"request {rid} not found")
    _refused_as_missing(points("request", "show", "99999", "--as", me), "request 99999 not found")
    listed = {r["id"] for r in points.json("request", "list", "--as", me)}
    assert changsha_work["mine"] in listed and rid not in listed
    assert points.json("audit", "show", "--request", str(rid), "--as", me) == []
    serial = changsha_work["serial"]
    _refused_as_missing(points("cert", "show", serial, "--as", me), f"no certificate with serial {serial}")
    assert points.json("cert", "list", "--as", me) == []
    assert points.json("party", "list", "--as", me) == []
    assert "CS-KEY" not in {
        t["serial"] for t in points.json("token", "list", "--as", me, "--module", "/nonexistent")
    }

    acts: list[tuple[str, ...]] = []
    if WORKFLOW.role_allows({role.value}, Action.ACCEPT):
        acts.append(("request", "accept", str(rid), "--opinion", "agree", "--usbkey", "ePass3003"))
    if WORKFLOW.role_allows({role.value}, Action.COUNTERSIGN):
        acts.append(("request", "countersign", str(changsha_work["accepted"])))
    if WORKFLOW.role_allows({role.value}, Action.APPROVE):
        acts.append(("request", "review", str(changsha_work["countersigned"]), "--approve"))
    if WORKFLOW.role_allows({role.value}, Action.CANCEL):
        acts.append(("request", "cancel", str(rid), "--reason", "撤回"))
    if WORKFLOW.role_allows({role.value}, Action.ISSUE):
        csr = tmp_path / "wh.csr"
        csr.write_bytes(csr_for(key("ec-p256", 951)))
        acts.append(("issue", str(changsha_work["approved"]), "--csr", str(csr)))
    for argv in acts:
        target = argv[2] if argv[0] == "request" else argv[1]
        _refused_as_missing(points(*argv, "--as", me), f"request {target} not found")
    if WORKFLOW.operation_allows({role.value}, "revoke"):
        result = points("revoke", serial, "--reason", "keyCompromise", "--as", me)
        _refused_as_missing(result, f"no certificate with serial {serial}")
    if WORKFLOW.operation_allows({role.value}, "token_mark"):
        _refused_as_missing(
            points("token", "mark", "CS-KEY", "--lost", "--as", me), "token CS-KEY is not recorded"
        )
    if WORKFLOW.operation_allows({role.value}, "token_stock"):
        result = points("token", "transfer", "CS-KEY", "--to", WUHAN, "--as", me)
        _refused_as_missing(result, "token CS-KEY is not recorded")
    # Nothing changed, and every refusal is on the record as one.
    assert points.json("request", "show", str(rid))["state"] == "entered"
    assert points.json("cert", "show", serial)["status"] == "valid"
    denied = [
        r
        for r in points.json("audit", "show", "--limit", "500")
        if r["actor"] == me and r["action"] == "security.denied" and r["details"]["code"] == "out_of_scope"
    ]
    assert len(denied) >= 2 + len(acts)


def test_the_provincial_point_sees_wuhan_and_not_changsha(points: Cli, changsha_work: dict[str, Any]) -> None:
    listed = {r["id"] for r in points.json("request", "list", "--as", "hb-ops")}
    assert changsha_work["mine"] in listed and changsha_work["entered"] not in listed
    everything = {r["id"] for r in points.json("request", "list", "--as", "clerk")}  # a center user
    assert {changsha_work["mine"], changsha_work["entered"]} <= everything


def test_key_stock_through_the_cli(points: Cli, tmp_path: Path) -> None:
    serials = tmp_path / "keys.csv"
    serials.write_text("序列号\nWH-1\nWH-2\nWH-3\n", encoding="utf-8")
    taken = points.json(
        "token", "intake", "--csv", str(serials), "--model", "ePass3003", "--as", "wh-distributor"
    )
    assert taken == {
        "action": "intake",
        "serials": ["WH-1", "WH-2", "WH-3"],
        "point": WUHAN,
        "state": "blank",
    }
    center = points("token", "intake", "--serial", "X-1", "--model", "ePass3003", "--as", "admin")
    assert center.code == 1  # admin has no stock role
    no_point = points("token", "intake", "--serial", "X-1", "--model", "ePass3003", "--as", "cs-dist")
    assert no_point.code == 0 and CHANGSHA in no_point.out
    bad_model = points("token", "intake", "--serial", "X-2", "--model", "某型号", "--as", "wh-ops")
    assert bad_model.code == 1 and "model: USB key model '某型号' is not in tokens.toml" in bad_model.err
    sent = points.ok("token", "transfer", "WH-1", "WH-2", "--to", CHANGSHA, "--as", "wh-ops")
    assert f"2 USB key(s) on their way to {CHANGSHA}: WH-1, WH-2" in sent.out
    wrong = points("token", "receive", "WH-1", "--as", "wh-ops")
    assert wrong.code == 1 and "not on its way to your point" in wrong.err
    points.ok("token", "receive", "WH-1", "--as", "cs-dist")
    points.ok("token", "return", "WH-3", "--reason", "无法识别", "--as", "wh-ops")
    rows = {
        t["serial"]: t for t in points.json("token", "list", "--as", "cs-dist", "--module", "/nonexistent")
    }
    assert rows["WH-1"]["point"] == CHANGSHA and rows["WH-2"]["transfer_to"] == CHANGSHA
    assert rows["WH-2"]["point"] == WUHAN and "WH-3" not in rows
    text = points.ok("token", "list", "--as", "wh-ops", "--module", "/nonexistent").out
    assert "stock by point (model: state count):" in text
    assert any(
        line.split() == [WUHAN, "飞天诚信", "ePass3003", "defective", "1"] for line in text.splitlines()
    )
    assert any(
        line.split() == [WUHAN, "飞天诚信", "ePass3003", "in_transit", "1"] for line in text.splitlines()
    )
    usage = points("token", "intake", "--model", "ePass3003", "--as", "wh-ops")
    assert usage.code == 2 and "--serial" in usage.err
