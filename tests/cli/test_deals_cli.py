"""`pkictl request new --type TYPE --serial SERIAL`, then the usual steps, then the command that carries the
deal out (`pkictl hold`, `pkictl revoke`, `pkictl renew`), in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.runner import Cli
from tests.cli.test_ca_cli import OPERATOR, assert_refused, assert_usage_error, issued
from tests.support.data import application


@pytest.fixture
def ca_home(staffed: Cli) -> Cli:
    staffed.add_user(OPERATOR, "ops", "distributor")
    return staffed


def _accept(cli: Cli, rid: int) -> None:
    cli.ok("request", "accept", str(rid), "--opinion", "agree", "--as", "acceptor")


def test_a_hold_deal_from_entry_to_completion(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 910)["serial"]
    entered = ca_home.ok(
        "request", "new", "--type", "hold", "--serial", serial, "--comment", "单位申请", "--as", "clerk"
    )
    rid = int(entered.out.split()[1])
    assert entered.out == f"request {rid} entered (hold deal on certificate {serial}): entered\n"
    _accept(ca_home, rid)
    shown = ca_home.json("request", "show", str(rid))
    assert shown["deal"] == "hold" and shown["state"] == "approved" and shown["deal_comment"] == "单位申请"
    assert ca_home.ok("hold", serial, "--as", OPERATOR).out == f"certificate {serial} held\n"
    assert ca_home.json("request", "show", str(rid))["state"] == "completed"
    text = ca_home.ok("request", "show", str(rid)).out
    assert "deal (deal): hold" in text and "request.complete" in text
    assert f"the deal's certificate: {serial} (held), no USB key" in text


def test_a_revoke_deal_is_carried_out_with_its_reason(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 911)["serial"]
    rid = ca_home.json(
        "request", "new", "--type", "revoke", "--serial", serial, "--reason", "keyCompromise", "--as", "clerk"
    )["id"]
    _accept(ca_home, rid)
    ca_home.ok("request", "review", str(rid), "--approve", "--as", "reviewer")
    assert_refused(
        ca_home("revoke", serial, "--reason", "superseded", "--as", OPERATOR), "says keyCompromise"
    )
    done = ca_home.json("revoke", serial, "--as", OPERATOR)
    assert done[0]["revocation_reason"] == "keyCompromise"
    assert ca_home.json("request", "show", str(rid))["state"] == "completed"


def test_deal_entry_refusals_name_the_option_or_field(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 912)["serial"]
    assert_usage_error(ca_home("request", "new", "--type", "hold", "--as", "clerk"), "--serial SERIAL")
    assert_usage_error(ca_home("request", "new", "--as", "clerk"), "--file only")
    form = tmp_path / "change.json"
    form.write_text(json.dumps(application(), ensure_ascii=False), encoding="utf-8")
    assert_refused(
        ca_home("request", "new", "--type", "hold", "--serial", serial, "--file", str(form), "--as", "clerk"),
        "application",
    )
    assert_refused(
        ca_home("request", "new", "--type", "unlock", "--serial", serial, "--as", "clerk"), "no USB key"
    )
    assert_refused(
        ca_home("request", "new", "--type", "hold", "--serial", "XYZ", "--as", "clerk"), "hexadecimal"
    )
    assert_refused(
        ca_home("request", "new", "--type", "renew", "--serial", serial, "--as", "clerk"),
        "can be renewed from",
    )
    assert_refused(ca_home("hold", serial, "--as", "head"), "no role that may hold")
