"""`pkictl notify expiring` end to end against a real SMTP server process (aiosmtpd): the dry run, the
missing server named, and a real pkictl process killed in the middle of sending, then run again."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.runner import Cli, process_env
from tests.cli.test_ca_cli import OPERATOR, issued
from tests.cli.test_cli import pkictl_path
from tests.support import with_shim
from tests.support.smtp import smtp_server


@pytest.fixture
def ca_home(staffed: Cli) -> Cli:
    staffed.add_user(OPERATOR, "ops", "distributor")
    return staffed


def units(home: Cli, tmp_path: Path, n: int) -> str:
    """``n`` certificates of units of their own; the instant ten days before the first one ends."""
    certs = [issued(home, tmp_path, 700 + i, email=f"unit{i}@example.gov.cn") for i in range(n)]
    return (datetime.fromisoformat(certs[0]["not_valid_after"]) - timedelta(days=10)).isoformat()


def test_dry_run_and_a_missing_server(ca_home: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = units(ca_home, tmp_path, 2)
    dry = ca_home.json("notify", "expiring", "--dry-run", "--at", at)
    assert dry["dry_run"] and dry["sent"] == 0
    assert sorted((r["email"], r["window_days"]) for r in dry["reminders"]) == [
        ("unit0@example.gov.cn", 30),
        ("unit1@example.gov.cn", 30),
    ]
    text = ca_home.ok("notify", "expiring", "--dry-run", "--at", at).out
    assert text.endswith("2 reminders due (dry run: nothing sent)\n") and "(30-day window)" in text
    missing = ca_home("notify", "expiring", "--at", at)
    assert missing.code == 1 and "set PKI_SMTP_URL" in missing.err
    monkeypatch.setenv("PKI_SMTP_URL", "smtp://127.0.0.1:1")
    clerk = ca_home("notify", "expiring", "--at", at, "--as", "clerk")
    assert clerk.code == 1 and "has no role that may notify" in clerk.err
    down = ca_home("notify", "expiring", "--at", at, "--as", OPERATOR)
    assert down.code == 1 and down.err.startswith("pkictl: error: mail server 127.0.0.1:1: ")
    assert ca_home.json("notify", "expiring", "--dry-run", "--at", at)["reminders"] == []  # claimed, unsent
    with smtp_server(tmp_path / "smtp") as smtp:
        monkeypatch.setenv("PKI_SMTP_URL", smtp.url)
        done = ca_home.ok("notify", "expiring", "--at", at).out
        assert done == "0 reminders due, 0 point summaries; 3 mails sent (3 left by an earlier run)\n"
        assert len(smtp.messages()) == 3


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_run_killed_while_sending_is_finished_by_the_next(
    ca_home: Cli, tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    at = units(ca_home, tmp_path, 4)
    # SIGKILL on the third mail: before it is handed to the server, or right after the server accepted it
    # (and before pkictl marked it sent).
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(
        "import os, signal\nfrom pki import mail\n_real = mail.Mailer.send\n_calls = [0]\n"
        "def send(self, *args, **kwargs):\n"
        "    _calls[0] += 1\n"
        f"    if _calls[0] == 3 and {when!r} == 'before':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    _real(self, *args, **kwargs)\n"
        f"    if _calls[0] == 3 and {when!r} == 'after':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "mail.Mailer.send = send\n",
        encoding="utf-8",
    )
    with smtp_server(tmp_path / "smtp") as smtp:
        killed = subprocess.run(
            [pkictl_path(), "notify", "expiring", "--at", at],
            check=False,
            env={
                **process_env(ca_home.home, db_url),
                "PYTHONPATH": with_shim(shim),
                "PKI_SMTP_URL": smtp.url,
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert killed.returncode == -9, killed.stderr
        assert len(smtp.messages()) == (2 if when == "before" else 3)

        monkeypatch.setenv("PKI_SMTP_URL", smtp.url)
        again = ca_home.json("notify", "expiring", "--at", at)
        assert again["reminders"] == [] and again["resent"] == 3  # the third mail on: unmarked either way
        mails = smtp.messages()
        # 4 units and one summary (北京), each Message-ID once; killed after the server took the third mail,
        # that one mail arrives twice, byte for byte, under its one Message-ID.
        ids = [str(m["Message-ID"]).strip() for m in mails]
        assert len(set(ids)) == 5
        assert len(ids) == (5 if when == "before" else 6)
        assert sorted(str(m["To"]) for m in mails if "汇总" not in str(m["Subject"])) == sorted(
            [f"unit{i}@example.gov.cn" for i in range(4)]
            + (["unit2@example.gov.cn"] if when == "after" else [])
        )
        assert ca_home.json("notify", "expiring", "--at", at)["sent"] == 0
