"""A desk working through a real `pkictl serve`: `pkictl` subprocesses with PKI_SERVER and a session file,
and no database URL or CA passphrase in their environment. Same arguments, same output, same exit codes as
the CLI on the center's host (which these tests run beside them on the same home to compare)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.data import application, batch_defaults, make_uscc
from tests.support.pki import csr_for, key
from tests.support.server import CENTER_ONLY_ENV, DeskProcess, center_env, prepare_home, serving

_numbers = iter(range(81000000, 82000000))


@pytest.fixture
def center(db_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    home = tmp_path / "home"
    prepare_home(home, db_url)
    env = center_env(home, db_url)
    with serving(env) as base:
        yield base, env


def local(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """The same command on the center's host, over the home itself (PKI_SERVER=local)."""
    return subprocess.run(
        [sys.executable, "-c", "import pki.cli; pki.cli.main()", *argv],
        env={**env, "PKI_SERVER": "local", "PKI_PASSWORD": "server-test-password"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def desks(base: str, tmp_path: Path, *roles: str) -> dict[str, DeskProcess]:
    out = {}
    for role in roles:
        desk = DeskProcess(base, tmp_path / f"desk-{role}")
        desk("login", "--server", base, "--as", f"u-{role}", check=True)
        out[role] = desk
    return out


def new_application(directory: Path) -> Path:
    n = next(_numbers)
    path = directory / f"application-{n}.json"
    data = application(credential_number=make_uscc("110101", str(n)), unit_name=f"北京市某能源监测中心{n}")
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def approve_and_issue(
    d: dict[str, DeskProcess], rid: int, tmp_path: Path, key_index: int, *, accepted: bool = False
) -> dict[str, Any]:
    """The rest of the request's way through the desks of each role, issued from a CSR: the certificate."""
    if not accepted:
        accept = ("request", "accept", str(rid), "--opinion", "agree", "--usbkey", "飞天诚信 ePass3003")
        d["acceptor"](*accept, "--as", "u-acceptor", check=True)
    d["head"]("request", "countersign", str(rid), "--as", "u-head", check=True)
    d["reviewer"]("request", "review", str(rid), "--approve", "--as", "u-reviewer", check=True)
    csr = tmp_path / f"unit-{key_index}.csr"
    csr.write_bytes(csr_for(key("ec-p256", key_index)))
    issue = ("issue", str(rid), "--csr", str(csr), "--as", "u-distributor", "--json")
    document: dict[str, Any] = d["distributor"](*issue, check=True).json()
    return document


def test_a_desk_holds_no_center_secret_and_carries_a_request_to_revocation(
    center: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, env = center
    d = desks(base, tmp_path, "entry", "acceptor", "head", "reviewer", "distributor", "ops")
    for desk in d.values():
        assert not set(CENTER_ONLY_ENV) & set(desk.env)
        session = desk.directory / "session.json"
        assert session.stat().st_mode & 0o777 == 0o600
        assert json.loads(session.read_text())["token"].startswith("pkis_")

    rid = d["entry"](
        "request", "new", "--file", str(new_application(tmp_path)), "--as", "u-entry", "--json", check=True
    ).json()["id"]
    accepted = d["acceptor"](
        "request",
        "accept",
        str(rid),
        "--opinion",
        "agree",
        "--usbkey",
        "飞天诚信 ePass3003",
        "--as",
        "u-acceptor",
    )
    assert (accepted.code, accepted.out) == (0, f"request {rid} accepted: accepted\n")
    issued = approve_and_issue(d, rid, tmp_path, 40, accepted=True)
    assert issued["status"] == "valid" and issued["request_id"] == rid

    # The same document as the center's own CLI prints (the prerequisites are evaluated "now").
    for argv in (("request", "show", str(rid), "--json"), ("cert", "show", issued["serial"], "--json")):
        remote, there = d["entry"](*argv, check=True).json(), json.loads(local(env, *argv).stdout)
        for doc in (remote, there):
            doc.get("prerequisites", {}).pop("at", None)
        assert remote == there
    text = ("request", "show", str(rid))
    assert d["entry"](*text, check=True).out.splitlines()[:30] == local(env, *text).stdout.splitlines()[:30]

    exported = d["ops"]("cert", "export", issued["serial"], "--format", "chain", check=True)
    assert exported.out.count("-----BEGIN CERTIFICATE-----") == 3
    revoked = d["ops"]("revoke", issued["serial"], "--reason", "keyCompromise", "--as", "u-ops")
    assert (revoked.code, revoked.out) == (0, f"certificate {issued['serial']} revoked (keyCompromise)\n")
    listed = d["ops"]("cert", "list", "--status", "revoked", "--json", check=True).json()
    assert [c["serial"] for c in listed] == [issued["serial"]]


def test_refusals_read_as_on_the_center(center: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, env = center
    d = desks(base, tmp_path, "entry", "acceptor")
    rid = d["entry"](
        "request", "new", "--file", str(new_application(tmp_path)), "--as", "u-entry", "--json", check=True
    ).json()["id"]
    # The clerk may not accept (role); the remote line is the local line.
    argv = ("request", "accept", str(rid), "--opinion", "agree", "--usbkey", "x", "--as", "u-entry")
    remote, there = d["entry"](*argv), local(env, *argv)
    assert remote.code == there.returncode == 1
    assert remote.err == there.stderr and remote.err.startswith("pkictl: error: ")
    # Unknown request: not found, exit 1.
    missing = d["acceptor"]("request", "show", "999999", "--json")
    assert (missing.code, missing.err) == (1, "pkictl: error: request 999999 not found\n")
    # Bad input named by field before any round trip, as the server would name it.
    bad = d["entry"]("request", "list", "--limit", "5", "--province", "x" * 200)
    assert bad.code == 1 and "province" in bad.err


def test_the_desk_acts_only_as_its_session(center: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, _ = center
    d = desks(base, tmp_path, "entry")
    other = d["entry"]("request", "new", "--file", str(new_application(tmp_path)), "--as", "u-acceptor")
    assert other.code == 2 and "logged in to" in other.err and "u-entry" in other.err
    who = d["entry"]("whoami", "--json", check=True).json()
    assert (who["username"], who["roles"]) == ("u-entry", ["entry"])


def test_center_only_commands_say_where_they_run(center: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, _ = center
    d = desks(base, tmp_path, "ops")
    for argv in (("crl", "publish", "--as", "u-ops"), ("audit", "verify"), ("user", "list"), ("init",)):
        run = d["ops"](*argv)
        assert run.code == 2, argv
        assert "runs on the center's host" in run.err and base in run.err
        assert "Traceback" not in run.err


def test_logout_ends_the_session_on_the_server(center: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, _ = center
    d = desks(base, tmp_path, "entry")
    token = json.loads((d["entry"].directory / "session.json").read_text())["token"]
    out = d["entry"]("logout", check=True)
    assert out.out == f"logged out of {base}\n"
    assert not (d["entry"].directory / "session.json").exists()
    import httpx

    answer = httpx.get(f"{base}/api/v1/sessions/current", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "session_expired"
    # Without a session the desk says so, and how to get one.
    again = d["entry"]("request", "list")
    assert again.code == 2 and "pkictl login" in again.err


def test_an_unreachable_server_is_named(tmp_path: Path) -> None:
    from tests.support.server import free_port

    base = f"http://127.0.0.1:{free_port()}"
    desk = DeskProcess(base, tmp_path / "desk")
    run = desk("login", "--server", base, "--as", "u-entry")
    assert run.code == 1
    assert run.err.startswith(f"pkictl: error: server {base} unreachable")


def test_cutover_desk_commands_print_what_the_center_prints(
    center: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, env = center
    d = desks(base, tmp_path, "entry", "ops")
    units = tmp_path / "units.csv"
    units.write_text(
        "单位名称,统一社会信用代码\n"
        + "".join(f"单位{i},{make_uscc('110101', str(87000000 + i))}\n" for i in range(3)),
        encoding="utf-8",
    )
    imported = d["ops"]("party", "import", str(units), "--as", "u-ops", "--json", check=True).json()
    assert imported["imported"] == 3
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")
    uscc = make_uscc("110101", "87000000")
    added = d["entry"](
        "evidence", "add", "--uscc", uscc, "--type", "software-test", "--reference", "测试报告 2020-01",
        "--date", "2020-09-01", "--file", str(report), "--as", "u-entry",
    )  # fmt: skip
    assert added.code == 0, added.err
    for argv in (
        ("party", "list"),
        ("party", "list", "--json"),
        ("evidence", "list", "--uscc", uscc),
        ("evidence", "list", "--json"),
        ("cutover", "status"),
        ("cutover", "status", "--refused", "--json"),
        ("cutover", "plan", "--at", "2020-11-10T00:00:00+08:00"),  # not now: it moves on between runs
        ("cutover", "plan", "--json", "--days", "400", "--at", "2020-11-01T00:00:00+08:00"),
        ("access-check", "--at", "2020-11-16T00:00:00+08:00"),
        ("access-check", "--json", "--at", "2020-11-14T12:00:00Z"),
        ("audit", "show", "--limit", "5", "--json"),
    ):
        remote, there = d["entry"](*argv), local(env, *argv)
        assert (remote.code, remote.out, remote.err) == (there.returncode, there.stdout, there.stderr), argv
    # The per-party report: the center's host streams it from the database, a desk from the server's answer.
    # At one instant for both (the default, now, moves on between the two runs).
    reports = [tmp_path / "desk.csv", tmp_path / "center.csv"]
    at = ("--at", "2020-11-01T00:00:00+08:00")
    remote = d["ops"]("cutover", "plan", *at, "--out", str(reports[0]))
    there = local(env, "cutover", "plan", *at, "--out", str(reports[1]))
    assert remote.code == there.returncode == 0
    assert remote.out.replace(str(reports[0]), "R") == there.stdout.replace(str(reports[1]), "R")
    assert reports[0].read_bytes() == reports[1].read_bytes() and uscc in reports[0].read_text("utf-8-sig")


def test_the_rest_of_a_desks_day_prints_what_the_center_prints(
    center: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, env = center
    d = desks(base, tmp_path, "entry", "acceptor", "head", "reviewer", "distributor", "ops")
    path = new_application(tmp_path)
    rid = d["entry"]("request", "new", "--file", str(path), "--as", "u-entry", "--json", check=True).json()[
        "id"
    ]
    edited = json.loads(path.read_text(encoding="utf-8")) | {"unit_fax": "010-87654321"}
    path.write_text(json.dumps(edited, ensure_ascii=False), encoding="utf-8")
    assert d["entry"](
        "request", "edit", str(rid), "--file", str(path), "--as", "u-entry", check=True
    ).out == (f"request {rid} edited: entered\n")
    units = tmp_path / "batch.csv"
    units.write_text(
        f"单位名称,统一社会信用代码\n批量单位,{make_uscc('110101', '88000001')}\n", encoding="utf-8"
    )
    defaults = tmp_path / "defaults.json"
    defaults.write_text(json.dumps(batch_defaults(), ensure_ascii=False), encoding="utf-8")
    batch = d["entry"](
        "request",
        "import",
        str(units),
        "--defaults",
        str(defaults),
        "--label",
        "第一批",
        "--as",
        "u-entry",
        "--json",
    )
    assert batch.code == 0, batch.err
    [imported] = batch.json()["imported"]
    cancelled = d["entry"]("request", "cancel", str(imported), "--reason", "重复申请", "--as", "u-entry")
    assert cancelled.out == f"request {imported} cancelled: cancelled\n"

    serial = approve_and_issue(d, rid, tmp_path, 46)["serial"]
    handed = d["distributor"]("distribute", str(rid), "--recipient", "李四", "--as", "u-distributor")
    assert handed.out == f"request {rid}: certificate {serial} handed over to 李四\n"
    # Refusals read the same from either side.
    for role, argv in (
        ("ops", ("renew", serial, "--as", "u-ops")),
        ("ops", ("token", "mark", "NO-SUCH-KEY", "--lost", "--as", "u-ops")),
        ("distributor", ("distribute", str(rid), "--recipient", "李四", "--as", "u-distributor")),
    ):
        remote, there = d[role](*argv), local(env, *argv)
        assert remote.code == there.returncode == 1, (argv, remote.err)
        assert remote.err == there.stderr, argv
