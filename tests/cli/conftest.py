"""CLI fixtures: a runner bound to a fresh home over ``db_url`` (SQLite, and PostgreSQL when
PKI_TEST_DATABASE_URL is set), an initialized home with its first admin, and a staffed home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

import pki.audit_key
import pki.bootstrap
import pki.passwords
from tests.cli.runner import PASSWORD, Cli

__all__ = ["PASSWORD", "STAFF"]


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with the smallest cost: the real parameters take ~0.2 s a hash here, and every user added and
    every --as login pays one. Still Argon2id through pki.passwords, so hashing and verifying are real; the
    subprocess tests keep the production parameters."""
    monkeypatch.setattr(pki.passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture(autouse=True)
def cheap_audit_key_derivation(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt at the smallest cost for audit keys made in-process (each in-process command unlocks the key
    again: ~80 ms at the real cost). Still scrypt and AES-GCM through pki.audit_key; the cost is kept in
    the key file, and the subprocess tests keep the production one."""
    monkeypatch.setattr(pki.audit_key, "SCRYPT_N", 2**4)


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Engine]]:
    """Every engine the CLI builds during the test. All are disposed at teardown, so a pool that pkictl
    leaves open (see test_refused_command_leaves_no_open_connection) cannot surface later as an unraisable
    ResourceWarning in an unrelated test; the tests that care inspect the list themselves."""
    made: list[Engine] = []
    real = pki.bootstrap.make_engine

    def recording(url: str, *args: Any, **kwargs: Any) -> Engine:
        engine = real(url, *args, **kwargs)
        made.append(engine)
        return engine

    monkeypatch.setattr(pki.bootstrap, "make_engine", recording)
    yield made
    for engine in made:
        engine.dispose()


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    db_url: str,
    engines: list[Engine],
) -> Cli:
    """A runner over a home that has not been initialized."""
    return Cli(monkeypatch, capsys, tmp_path / "home", db_url)


@pytest.fixture
def home(cli: Cli) -> Cli:
    """An initialized home whose only user is 'admin'."""
    cli.ok("init")
    cli.add_user("admin", "admin", admin=None)
    return cli


# The staffed home's users besides admin. The acceptor also holds the reviewer role, so that separation of
# duties, not the role check, is what stops them reviewing a request they accepted.
STAFF: dict[str, tuple[str, ...]] = {
    "clerk": ("entry",),
    "acceptor": ("acceptor", "reviewer"),
    "head": ("head",),
    "reviewer": ("reviewer",),
}


@pytest.fixture
def staffed(home: Cli) -> Cli:
    """An initialized home with admin and the users of STAFF, all with the password PASSWORD."""
    for name, roles in STAFF.items():
        home.add_user(name, *roles)
    return home
