"""What every service needs: the engine, the policies, the clock; and the authenticated actor."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, event
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from pki import audit
from pki.audit_seal import AuditSeal
from pki.ca.keystore import KeyStore
from pki.clock import CHINA_TZ, Clock
from pki.db import (
    has_optimistic_writes,
    is_write_conflict,
    optimistic_transaction,
    read_session,
    transaction,
)
from pki.errors import ConflictError, KeyAccessError, PermissionDeniedError, ScopeRefusalError
from pki.models import Point, User
from pki.models.workflow import parse_roles
from pki.services import idempotency
from policies import Policies

_log = logging.getLogger("pki.audit")
T = TypeVar("T")
# Opens one write transaction: Context.write, or Context.write_optimistic.
Transaction = Callable[[], AbstractContextManager[Session]]

_DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE for a deadlock it broke
_USERS = User.__table__  # type: ignore[attr-defined]
_POINTS = Point.__table__  # type: ignore[attr-defined]
# The user's record and the points under theirs, one row per point under it (or one row with NULL): what the
# role checks and the scope (services/scope.py) read, in one statement.
_RESOLVE = (
    sa_select(_USERS.c.username, _USERS.c.roles, _USERS.c.active, _USERS.c.point_id, _POINTS.c.id)
    .select_from(
        _USERS.outerjoin(
            _POINTS, and_(_USERS.c.point_id.is_not(None), _POINTS.c.parent_id == _USERS.c.point_id)
        )
    )
    .where(_USERS.c.username == bindparam("username"))
)
_POINTS_READ = "pki_user_points"  # session.info: username -> [(point_id, id under it)] as resolve read them


def _forget_reads(session: OrmSession, *_: object) -> None:
    session.info.pop(_POINTS_READ, None)  # good for one transaction only


event.listen(OrmSession, "after_commit", _forget_reads)
event.listen(OrmSession, "after_soft_rollback", _forget_reads)


def read_user(s: Session, username: str) -> list[Any]:
    """The user's record and the points under theirs (:data:`_RESOLVE`'s rows), kept for :func:`user_points`."""
    rows = s.execute(_RESOLVE, {"username": username}).all()
    s.info.setdefault(_POINTS_READ, {})[username] = [(r.point_id, r.id) for r in rows]
    return list(rows)


def user_points(s: Session, username: str) -> list[tuple[int | None, int | None]]:
    """The user's point and each point under it, (point, point under it or None), as this transaction read
    them: the role check (Context.resolve) usually did already; no row for an unknown user."""
    found: list[tuple[int | None, int | None]] | None = s.info.get(_POINTS_READ, {}).get(username)
    if found is None:
        read_user(s, username)
        found = s.info[_POINTS_READ][username]
    return found


@dataclass(frozen=True)
class Actor:
    """An authenticated person. Obtained only from :meth:`UserService.authenticate` (or bootstrap)."""

    username: str
    roles: frozenset[str]


@dataclass
class Context:
    engine: Engine
    policies: Policies
    clock: Clock
    keys: KeyStore | None = None  # CA private keys; None where no CA key is ever needed
    audit_seal: AuditSeal | None = None  # the audit key and checkpoints; None: every write is refused

    def key_store(self) -> KeyStore:
        if self.keys is None:
            raise KeyAccessError("no CA key store configured (set PKI_CA_PASSPHRASE)")
        return self.keys

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        """Today's date in China Standard Time: the date on the paper form."""
        return self.clock.now().astimezone(CHINA_TZ).date()

    def seal(self) -> AuditSeal:
        if self.audit_seal is None:
            raise KeyAccessError(
                "no audit key configured: every write needs one", message_zh="未配置审计密钥"
            )
        return self.audit_seal

    @contextmanager
    def write(self, *, checkpoint: str | None = None, ordered: bool = True) -> Iterator[Session]:
        """One write transaction. ``ordered`` (the default) takes the writers' order first
        (audit.order_writers), so ordered writes run one after another: check-then-insert rules need nothing
        more. A write left out of the order (``ordered=False``) must rest every rule it checks on the rows
        it locks (a request, a USB key) or on a lock of its own (a public key: services/issuance.py); the
        desk's steps for one unit are written so, and so do not wait for one another. Either kind locks the
        audit chain's head only to write its records, at the end (audit.flush).

        The audit key is unlocked before the transaction (a prompt or a KDF never holds a lock); after the
        commit the head it wrote is checkpointed when the policy's interval says so, or always when
        ``checkpoint`` names a reason ("crl"). An idempotency key the API is serving (services/idempotency.py)
        is claimed in it, after the work. Two transactions that each wait for a row the other locked
        (PostgreSQL finds it: a deadlock) end with a ConflictError for one of them: nothing of it was kept."""
        seal = self.seal()
        key = seal.key()
        try:
            with transaction(self.engine) as session:
                audit.use_key(session, key)
                if ordered:
                    audit.order_writers(session)
                yield session
                claim = idempotency.stake(session, self.now())
        except DBAPIError as e:
            if getattr(getattr(e, "orig", None), "sqlstate", None) != _DEADLOCK:
                raise
            raise ConflictError(
                "another change to the same records was being made at the same moment: nothing was changed;"
                " try again",
                message_zh="其他操作正在同时修改相同记录，本次未作更改，请重试",
            ) from e
        if claim is not None:
            claim.staked = True
        self._after_commit(session, seal, checkpoint)

    def _after_commit(self, session: Session, seal: AuditSeal, reason: str | None) -> None:
        head = audit.committed_head(session)
        if head is None:
            return
        # The change is committed, its records MAC'd: a sink that fails must not make it look undone. The
        # next write tries again; verify names the newest checkpoint's record.
        try:
            if reason is not None:
                seal.checkpoint(seq=head.seq, hash=head.hash, at=self.now(), reason=reason)
            else:
                seal.after_commit(seq=head.seq, hash=head.hash, at=self.now(), policy=self.policies.audit)
        except OSError:
            _log.exception("audit checkpoint not written to %s", seal.checkpoints.path)

    @contextmanager
    def write_plain(self) -> Iterator[Session]:
        """A write transaction that records no audit entry and claims no idempotency key: bookkeeping such as
        a reminder's mark. It takes no audit lock, so it must never wait for a transaction that holds it."""
        with transaction(self.engine) as session:
            yield session

    @property
    def optimistic_writes(self) -> bool:
        """Whether :meth:`write_optimistic` is available: SQLite in WAL mode (pki.db.has_optimistic_writes)."""
        return has_optimistic_writes(self.engine)

    @contextmanager
    def write_optimistic(self) -> Iterator[Session]:
        """A write transaction that may wait on something slow (a token) before it writes, holding no lock
        meanwhile: it reads a snapshot and takes the write lock at its first write, which fails if another
        writer committed since (so the audit chain's head, read at the commit, is the newest). The caller
        runs the whole work again through :meth:`write` when it raises a write conflict
        (pki.db.is_write_conflict). SQLite in WAL mode only, where every other write waits for the one lock;
        on PostgreSQL such work waits for the slow part first (write_beside)."""
        if not self.optimistic_writes:
            raise RuntimeError("optimistic write transactions need SQLite in WAL mode")
        seal = self.seal()
        key = seal.key()
        with optimistic_transaction(self.engine) as session:
            audit.use_key(session, key)
            yield session
            claim = idempotency.stake(session, self.now())
        if claim is not None:
            claim.staked = True
        self._after_commit(session, seal, None)

    def write_beside(
        self, work: Callable[[Transaction], T], ready: Callable[[], object], *, ordered: bool = True
    ) -> T:
        """Run ``work`` in one write transaction while something slow (a token, in another thread) runs;
        ``ready`` waits for it. ``work`` opens the transaction it is given, does its reads, calls ``ready``
        before its first write, then writes.

        With optimistic writes (SQLite in WAL mode) the reads overlap the slow part and no lock is held
        meanwhile; when another writer got in first, ``work`` runs again whole, once ``ready`` has returned,
        in a plain write transaction. Otherwise ``ready`` comes first: a plain write transaction holds row
        locks (and, ``ordered``, the writers' order) and must not hold them while a USB key works for seconds.
        """
        if self.optimistic_writes:
            try:
                return work(self.write_optimistic)
            except Exception as e:
                if not is_write_conflict(e):
                    raise
        ready()
        return work(lambda: self.write(ordered=ordered))

    @staticmethod
    def resolve(s: Session, actor: Actor, *, quiet: bool = False) -> Actor:
        """The actor as the user table says now (active, current roles).

        Raises PermissionDeniedError for an unknown or inactive user, or returns an actor without roles
        when ``quiet``.
        """
        rows = read_user(s, actor.username)
        user = rows[0] if rows else None
        if user is None or not user.active:
            if quiet:
                return Actor(actor.username, frozenset())
            raise PermissionDeniedError(
                f"user {actor.username!r} is unknown or deactivated", message_zh="用户不存在或已停用"
            )
        return Actor(user.username, parse_roles(user.roles))

    @contextmanager
    def denials_recorded(
        self, actor: Actor | None, attempted: str, subject_type: str = "", subject_id: str | int = ""
    ) -> Iterator[None]:
        """Record a refused attempt (role, separation of duties, or a record of another acceptance point) as a
        security event, then re-raise.

        The refused operation's own transaction has rolled back by then; the record gets its own. A record
        outside the actor's points was refused as a missing one; only this record says why.
        """
        try:
            yield
        except (PermissionDeniedError, ScopeRefusalError) as e:
            code, reason = (
                ("out_of_scope", e.reason) if isinstance(e, ScopeRefusalError) else (e.code, e.message)
            )
            with idempotency.claiming(None), self.write() as s:  # a refusal is not the work a key stands for
                audit.append(
                    s,
                    at=self.now(),
                    actor=actor.username if actor else "-",
                    action="security.denied",
                    subject_type=subject_type,
                    subject_id=subject_id,
                    details={"attempted": attempted, "code": code, "reason": reason},
                )
            raise

    @contextmanager
    def read(self, *, snapshot: bool = False) -> Iterator[Session]:
        """A read-only session; ``snapshot`` makes every statement see one consistent state (PostgreSQL
        REPEATABLE READ; SQLite's read transaction already does)."""
        with read_session(self.engine, snapshot=snapshot) as session:
            yield session
