"""Shared fixtures: a fixed clock, a fresh migrated database per test (SQLite, and PostgreSQL when
PKI_TEST_DATABASE_URL is set), the service over it (with a fixed, already unlocked audit key), and actors for
every role."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from pki.audit_key import AuditKey
from pki.audit_seal import AuditSeal
from pki.bootstrap import migrate
from pki.ca.keystore import FileKeyStore
from pki.clock import FixedClock
from pki.db import make_engine, normalize_url
from pki.enums import Role
from pki.models import User
from pki.services import Actor, Service

PG_URL = os.environ.get("PKI_TEST_DATABASE_URL")

# The real-world tests: each drives processes of its own (pkictl, `pkictl serve`, Chromium, an SMTP server,
# nginx, schemathesis) and spends most of its time waiting on them. They carry the marker "slow", and
# scripts/test runs them in a pytest of their own beside the rest, so their waits overlap the CPU-bound tests.
SLOW = (
    "tests/e2e/",
    "tests/api/test_many_desks.py",
    "tests/api/test_remote_",
    "tests/api/test_transport.py",
    "tests/judges/test_schemathesis.py",
    "tests/judges/test_relying_parties.py",
    "tests/cli/test_cli.py",
    "tests/cli/test_notify_cli.py",
    "tests/cli/test_pin_locked_cli.py",
    "tests/cli/test_public_url.py",
    "tests/cli/test_renew_onto_key_cli.py",
    "tests/cli/test_token_cli.py",
    "tests/integration/test_reminders.py",
    "tests/tokens/test_token_unlock_cli.py",
)
_ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        where = item.path.resolve().relative_to(_ROOT).as_posix()
        if where.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


# 2020-10-20 10:00 in Beijing: before the cutover, when applications were pouring in.
T0 = datetime(2020, 10, 20, 2, 0, tzinfo=UTC)


def _pg_schema_url(worker: str) -> tuple[str, str]:
    schema = f"pkitest_{worker}_{uuid.uuid4().hex[:8]}"
    url = normalize_url(PG_URL or "")
    sep = "&" if "?" in url else "?"
    return schema, f"{url}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, worker_id: str) -> Iterator[str]:
    """A URL to an empty database: a file in tmp_path, or a throw-away PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pki.db'}"
        return
    if not PG_URL:
        pytest.skip("PKI_TEST_DATABASE_URL not set")
    schema, url = _pg_schema_url(worker_id)
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


CA_PASSPHRASE = "test-ca-passphrase-123"
# A fixed audit key: no key file and no KDF per test (tests/integration/test_audit_keyed.py covers those).
TEST_AUDIT_KEY = AuditKey(bytes(range(32)), keyed_from=1)


def fixed_seal(tmp_path: Path) -> AuditSeal:
    """The fixed audit key, with checkpoints in tmp_path/audit/checkpoints.jsonl."""
    return AuditSeal.fixed(TEST_AUDIT_KEY, tmp_path / "audit" / "checkpoints.jsonl")


@pytest.fixture
def service(engine: Engine, clock: FixedClock, tmp_path: Path) -> Service:
    """The service with a CA key store (keys made only when a test asks for the hierarchy)."""
    return Service(
        engine,
        clock=clock,
        keys=FileKeyStore(tmp_path / "ca", lambda: CA_PASSPHRASE),
        audit_seal=fixed_seal(tmp_path),
    )


@pytest.fixture
def ca_service(service: Service) -> Service:
    """The service with its CA hierarchy (root, test and formal issuing CAs, OCSP signers) created at T0."""
    service.authority.ensure_hierarchy()
    return service


def actor(name: str, *roles: Role) -> Actor:
    return Actor(username=name, roles=frozenset(r.value for r in roles))


@pytest.fixture
def people(service: Service) -> dict[str, Actor]:
    """One actor per role, a second of each workflow role, and 'omni' who holds every role.

    Each is a real user row (the service re-reads roles from it), with an unusable password hash: tests act
    as these users directly instead of paying for Argon2 logins.
    """
    out = {
        "clerk": actor("clerk", Role.ENTRY),
        "clerk2": actor("clerk2", Role.ENTRY),
        "acceptor": actor("acceptor", Role.ACCEPTOR),
        "acceptor2": actor("acceptor2", Role.ACCEPTOR),
        "head": actor("head", Role.HEAD),
        "reviewer": actor("reviewer", Role.REVIEWER),
        "reviewer2": actor("reviewer2", Role.REVIEWER),
        "distributor": actor("distributor", Role.DISTRIBUTOR),
        "ops": actor("ops", Role.OPS),
        "admin": actor("admin", Role.ADMIN),
        "omni": actor("omni", *Role),
    }
    with Session(service.ctx.engine) as s:
        for a in out.values():
            s.add(
                User(username=a.username, password_hash="!", roles=",".join(sorted(a.roles)), created_at=T0)
            )
        s.commit()
    return out
