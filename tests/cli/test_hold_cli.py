"""`pkictl hold` and `pkictl release` (冻结/解冻) in-process, and `revoke --reason certificateHold` refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.runner import Cli
from tests.cli.test_ca_cli import OPERATOR, issued


@pytest.fixture
def ca_home(staffed: Cli) -> Cli:
    staffed.add_user(OPERATOR, "ops", "distributor")
    return staffed


def test_hold_and_release(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 900)["serial"]
    assert (
        ca_home.ok("hold", serial, "--comment", "单位申请", "--as", OPERATOR).out
        == f"certificate {serial} held\n"
    )
    shown = ca_home.json("cert", "show", serial)
    assert shown["status"] == "held" and shown["revocation_reason"] == "certificateHold"
    again = ca_home("hold", serial, "--as", OPERATOR)
    assert again.code == 1 and again.err == f"pkictl: error: certificate {serial} is already held\n"
    refused = ca_home("release", serial, "--as", "clerk")
    assert refused.code == 1 and "has no role that may hold" in refused.err
    done = ca_home.json("release", serial, "--as", OPERATOR)
    assert done["status"] == "valid" and done["revocation_reason"] is None
    wrong = ca_home("revoke", serial, "--reason", "certificateHold", "--as", OPERATOR)
    assert wrong.code == 1 and "a hold is not a revocation: use 'pkictl hold'" in wrong.err
