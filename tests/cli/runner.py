"""An in-process runner for ``pkictl``: ``pki.cli.main(argv)`` with the environment of one home."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import pki.cli

CA_PASSPHRASE = "cli-test-ca-passphrase"
AUDIT_PASSPHRASE = "cli-test-audit-passphrase"
PASSWORD = "correct-horse-battery"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


class Cli:
    """Runs ``pki.cli.main(argv)`` with PKI_HOME, PKI_DATABASE_URL, PKI_PASSWORD and the key passphrases set, standard input
    replaced, and returns the exit code (0 when main returns normally), stdout and stderr."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: Path, db_url: str
    ) -> None:
        self._mp = monkeypatch
        self._capsys = capsys
        self.home = home
        self.db_url = db_url

    def __call__(self, *argv: str, stdin: str = "", password: str | None = PASSWORD) -> Result:
        self._mp.setenv("PKI_HOME", str(self.home))
        self._mp.setenv("PKI_DATABASE_URL", self.db_url)
        self._mp.setenv("PKI_CA_PASSPHRASE", CA_PASSPHRASE)
        self._mp.setenv("PKI_AUDIT_PASSPHRASE", AUDIT_PASSPHRASE)
        if password is None:
            self._mp.delenv("PKI_PASSWORD", raising=False)
        else:
            self._mp.setenv("PKI_PASSWORD", password)
        self._mp.setattr(sys, "stdin", io.StringIO(stdin))
        self._capsys.readouterr()
        try:
            pki.cli.main(list(argv))
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *argv: str, stdin: str = "", password: str | None = PASSWORD) -> Result:
        """Run and insist on exit 0."""
        result = self(*argv, stdin=stdin, password=password)
        assert result.code == 0, f"pkictl {' '.join(argv)} -> {result.code}: {result.err}"
        return result

    def json(self, *argv: str) -> Any:
        """Run a read command with --json and parse its output."""
        return self.ok(*argv, "--json").json()

    def add_user(self, name: str, *roles: str, admin: str | None = "admin") -> Result:
        argv = ["user", "add", name, *(a for r in roles for a in ("--role", r))]
        if admin is not None:
            argv += ["--as", admin]
        return self.ok(*argv, stdin=PASSWORD + "\n")


def process_env(home: Path, db_url: str) -> dict[str, str]:
    """The environment of a real `pkictl` process over the home (for tests that signal or kill it)."""
    return {
        "PATH": "/usr/bin:/bin",
        "PKI_HOME": str(home),
        "PKI_DATABASE_URL": db_url,
        "PKI_PASSWORD": PASSWORD,
        "PKI_CA_PASSPHRASE": CA_PASSPHRASE,
        "PKI_AUDIT_PASSPHRASE": AUDIT_PASSPHRASE,
        "LANG": "C.UTF-8",
    }
