"""PostgreSQL: migration 0005 makes a trigram index for the unit-name substring search, and the search the
request list makes can use it (SQLite has no such index; its scan of the narrow column is fast enough)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from pki.services import Actor, RequestFilter, Service
from tests.support.data import application, make_uscc


def test_unit_name_search_uses_the_trigram_index(
    service: Service, people: dict[str, Actor], engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL index")
    with engine.connect() as conn:
        index = conn.execute(
            text(
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'certificate_request'"
                " AND indexname = 'ix_request_unit_name_trgm' AND schemaname = current_schema()"
            )
        ).scalar_one()
    assert "USING gin (unit_name" in index and "gin_trgm_ops" in index
    for i in range(3):
        service.requests.create(
            application(
                unit_name=f"北京某钢铁厂{i}", credential_number=make_uscc("110101", f"{70000000 + i}")
            ),
            actor=people["clerk"],
        )
    statements: list[tuple[str, object]] = []

    def seen(conn, cursor, statement, parameters, *args):  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        found = service.requests.find(RequestFilter(search="钢铁厂1", newest_first=True))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [r.unit_name for r in found] == ["北京某钢铁厂1"]
    statement, parameters = next((s, p) for s, p in statements if "LIKE" in s.upper())
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET enable_seqscan = off")  # a three-row table: make the planner show its options
        cursor.execute("EXPLAIN " + statement, parameters)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    finally:
        raw.close()
    assert "ix_request_unit_name_trgm" in plan, plan
