"""Migrations are the schema: they match the models, and the code knows the head revision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from pki.bootstrap import SCHEMA_REVISION, alembic_config, migrate, schema_revision
from pki.models import ImportBatch


def _not_optional(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """The trigram index exists only where pg_trgm could be had: the models leave it out."""
    return not (type_ == "index" and name == "ix_request_unit_name_trgm")


def test_migrations_match_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": _not_optional})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_code_knows_the_head_revision(engine: Engine) -> None:
    script = ScriptDirectory.from_config(alembic_config(str(engine.url)))  # type: ignore[arg-type]
    assert script.get_current_head() == SCHEMA_REVISION == schema_revision(engine)
    migrate(engine)  # idempotent
    assert schema_revision(engine) == SCHEMA_REVISION


def test_timestamps_round_trip_aware_utc(engine: Engine) -> None:
    beijing = timezone(timedelta(hours=8))
    at = datetime(2020, 11, 15, 0, 0, 0, 123456, tzinfo=beijing)
    with Session(engine) as s:
        s.add(ImportBatch(label="x", access_mode="batch", created_by="u", created_at=at))  # type: ignore[arg-type]
        s.commit()
    with Session(engine) as s:
        got = s.exec(select(ImportBatch)).one().created_at
    assert got == at and got.tzinfo is not None and got.utcoffset() == timedelta(0)
    assert got == datetime(2020, 11, 14, 16, 0, 0, 123456, tzinfo=UTC)


def test_naive_timestamps_are_refused(engine: Engine) -> None:
    with Session(engine) as s:
        s.add(
            ImportBatch(
                label="x",
                access_mode="batch",
                created_by="u",  # type: ignore[arg-type]
                created_at=datetime(2020, 1, 1),
            )
        )
        with pytest.raises(Exception, match="naive datetime"):
            s.commit()


def test_states_are_stored_by_value(engine: Engine) -> None:
    from sqlalchemy import text

    with Session(engine) as s:
        s.add(
            ImportBatch(
                label="x",
                access_mode="all",
                created_by="u",  # type: ignore[arg-type]
                created_at=datetime.now(UTC),
            )
        )
        s.commit()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT access_mode FROM import_batch")).scalar_one() == "all"
