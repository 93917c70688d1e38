"""Engine creation, the aware-UTC column type and the one transaction helper."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Session, create_engine

PING_AFTER_IDLE = 10.0  # seconds
_RETURNED = "pki_returned_at"  # a pooled connection's record: when it was last checked in
READONLY_OPTION = "pki_readonly"
OPTIMISTIC_OPTION = "pki_optimistic"
# SQLite's answer when a transaction that began reading wants to write after another writer committed
# (SQLITE_BUSY_SNAPSHOT), or while one still writes (SQLITE_BUSY): start it over.
_SQLITE_WRITE_CONFLICTS = frozenset({5, 517})


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and always returns them aware (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store aware UTC datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def normalize_url(url: str) -> str:
    """Let people write postgresql://…; we drive it with psycopg 3."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Autocommit at the driver level, so SQLAlchemy's BEGIN below is the only transaction control.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # BEGIN IMMEDIATE takes the write lock up front: two writers queue instead of deadlocking
            # on a read-then-write upgrade (the audit chain head is read, then written). Readers use a
            # plain BEGIN and never wait for writers (WAL); so do optimistic writers, which start over
            # when their upgrade fails (optimistic_transaction).
            options = conn.get_execution_options()
            deferred = options.get(READONLY_OPTION, False) or options.get(OPTIMISTIC_OPTION, False)
            conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url)
    _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Check a pooled connection before use when it sat unused for :data:`PING_AFTER_IDLE` seconds (a server
    restart or a firewall may have closed it meanwhile), instead of before every use as ``pool_pre_ping``
    does: a busy server hands out connections used a moment ago, and a round trip before each of its
    short transactions costs as much as one of their statements. A connection that fails the check is
    replaced. One that broke less than that ago fails its statement; that error (503 to a desk) marks
    the whole pool stale, so each server process sees at most one such failure per database restart."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as e:
            raise DisconnectionError("a pooled connection is closed") from e
        if not alive:
            raise DisconnectionError("a pooled connection is closed")


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back everything on any exception."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


@contextmanager
def one_statement(engine: Engine, *, read: bool = False) -> Iterator[Connection]:
    """A connection for work that needs one statement (or a few, each complete in itself): on PostgreSQL each
    statement is its own transaction (autocommit: no BEGIN and COMMIT round trips, which would double the
    cost of a short read or update); on SQLite a short transaction, committed (``read``: a read that takes
    no write lock, rolled back)."""
    if read:  # a plain read: in autocommit on PostgreSQL already (read_session)
        with _read_bind(engine, False).connect() as conn:
            yield conn
    elif engine.dialect.name == "postgresql":
        with _autocommit_bind(engine).connect() as conn:
            yield conn
    else:
        with engine.begin() as conn:
            yield conn


@functools.lru_cache(maxsize=64)
def _autocommit_bind(engine: Engine) -> Engine:
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def optimistic_transaction(engine: Engine) -> Iterator[Session]:
    """A SQLite write transaction that takes no lock for what it reads: a plain BEGIN, so it reads a snapshot
    and takes the write lock at its first write, which fails if another writer committed after the snapshot
    (is_write_conflict). What it read is then still true when it writes: it is serializable without locks."""
    with Session(_optimistic_bind(engine), expire_on_commit=False) as session, session.begin():
        yield session


@functools.lru_cache(maxsize=64)
def has_optimistic_writes(engine: Engine) -> bool:
    """Whether :func:`optimistic_transaction` holds no lock while it reads: SQLite in WAL mode. An in-memory
    database, or a file system where SQLite cannot use WAL, keeps a rollback journal, where a reading
    transaction holds a lock that stops every other writer's commit."""
    if engine.dialect.name != "sqlite":
        return False
    with _read_bind(engine, False).connect() as conn:
        return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() == "wal"


def is_write_conflict(error: BaseException) -> bool:
    """An optimistic transaction lost to another writer: nothing was written, run it again normally."""
    code = getattr(getattr(error, "orig", None), "sqlite_errorcode", None)
    return isinstance(error, OperationalError) and code in _SQLITE_WRITE_CONFLICTS


@functools.lru_cache(maxsize=64)
def _optimistic_bind(engine: Engine) -> Engine:
    return engine.execution_options(**{OPTIMISTIC_OPTION: True})


@contextmanager
def read_session(engine: Engine, *, snapshot: bool = False) -> Iterator[Session]:
    """A read that never takes the write lock and never commits; ``snapshot`` for one consistent view.

    On PostgreSQL a plain read runs its statements in autocommit: at READ COMMITTED each statement of a
    transaction sees what was committed when it began anyway, so BEGIN and ROLLBACK would buy nothing but two
    round trips. A snapshot read is a REPEATABLE READ transaction (and the one place a server-side cursor,
    which needs a transaction, streams rows)."""
    with Session(_read_bind(engine, snapshot), expire_on_commit=False) as session:
        yield session  # closing the session rolls the read transaction back


@functools.lru_cache(maxsize=64)
def _read_bind(engine: Engine, snapshot: bool) -> Engine:
    """The engine with the read-only options, made once per engine and kind (making it costs more than a
    short read)."""
    options: dict[str, Any] = {READONLY_OPTION: True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ" if snapshot else "AUTOCOMMIT"
    return engine.execution_options(**options)
