"""Pooled PostgreSQL connections: one that sat idle is checked before use and replaced when the server closed
it; a busy server's connections are not checked before each transaction (pki/db.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from pki import db
from tests.conftest import PG_URL


def _backend(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    admin = db.make_engine(PG_URL)
    try:
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


@pytest.fixture
def engine() -> Engine:
    if not PG_URL:
        pytest.skip("PKI_TEST_DATABASE_URL not set")
    return db.make_engine(PG_URL)


def test_an_idle_connection_closed_by_the_server_is_replaced(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backend(engine)
    _terminate(first)
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)  # the connection has sat idle long enough
    try:
        assert _backend(engine) != first  # checked, found closed, replaced: the caller saw nothing
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_checked_and_one_failure_renews_the_pool(
    engine: Engine,
) -> None:
    first = _backend(engine)
    _terminate(first)
    try:
        with pytest.raises(OperationalError):  # reused at once, unchecked: its statement fails (a 503)
            _backend(engine)
        assert _backend(engine) != first  # the failure marked the pool stale: the next use gets a new one
    finally:
        engine.dispose()
