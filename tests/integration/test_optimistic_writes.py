"""Optimistic write transactions (pki.db.optimistic_transaction): only on SQLite in WAL mode, holding no lock
while they read, and refused at their first write when another writer committed since."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from pki.db import has_optimistic_writes, is_write_conflict, make_engine, optimistic_transaction, transaction
from pki.services import Service


def test_only_sqlite_in_wal_mode_offers_them(service: Service, engine: Engine) -> None:
    assert service.ctx.optimistic_writes is (engine.dialect.name == "sqlite")
    if not service.ctx.optimistic_writes:
        with pytest.raises(RuntimeError, match="WAL"), service.ctx.write_optimistic():
            pass
    memory = make_engine("sqlite://")  # no WAL in memory: a reader would hold a lock against writers
    try:
        assert not has_optimistic_writes(memory)
    finally:
        memory.dispose()


def test_a_reader_holds_no_lock_and_loses_its_first_write_to_a_later_commit(engine: Engine) -> None:
    if not has_optimistic_writes(engine):
        pytest.skip("optimistic transactions are SQLite's")
    with pytest.raises(Exception) as lost, optimistic_transaction(engine) as reading:
        seq = reading.execute(text("SELECT seq FROM audit_head WHERE id = 1")).scalar_one()
        started = time.monotonic()
        with transaction(engine) as other:  # BEGIN IMMEDIATE: would wait for a lock the reader held
            other.execute(text("UPDATE audit_head SET seq = seq + 1 WHERE id = 1"))
        assert time.monotonic() - started < 5
        reading.execute(text("UPDATE audit_head SET seq = :seq WHERE id = 1"), {"seq": seq})
    assert is_write_conflict(lost.value), lost.value
