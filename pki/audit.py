"""The audit trail: an append-only hash chain written in the same transaction as the change it records.

Each record's hash covers its own fields and the previous record's hash, so an edited, deleted or reordered
record breaks the chain from that point; the head row catches a record removed from the end. If appending
fails, the surrounding transaction fails with it: a change is never kept without its record.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, event, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from pki.errors import AuditIntegrityError
from pki.models import AuditHead, AuditRecord

GENESIS_HASH = "0" * 64


def canonical_json(details: Mapping[str, Any]) -> str:
    return json.dumps(details, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def record_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: str,
    details: str,
    prev_hash: str,
) -> str:
    body = json.dumps(
        [
            seq,
            at.astimezone(UTC).isoformat(timespec="microseconds"),
            actor,
            action,
            subject_type,
            subject_id,
            details,
            prev_hash,
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _hash_of(rec: AuditRecord) -> str:
    return record_hash(
        seq=rec.seq,
        at=rec.at,
        actor=rec.actor,
        action=rec.action,
        subject_type=rec.subject_type,
        subject_id=rec.subject_id,
        details=rec.details,
        prev_hash=rec.prev_hash,
    )


@dataclass(frozen=True)
class Entry:
    """One event to record."""

    at: datetime
    actor: str
    action: str
    subject_type: str = ""
    subject_id: str | int = ""
    details: Mapping[str, Any] = field(default_factory=dict)


_HEAD_KEY = "pki.audit_head"
_HEAD = AuditHead.__table__  # type: ignore[attr-defined]
_RECORDS = AuditRecord.__table__  # type: ignore[attr-defined]
# Built once: every write transaction runs them, and building a statement costs more than running it.
_LOCK_HEAD = sa_select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
_INSERT_RECORDS = insert(_RECORDS)  # the table, not the class: no ORM bulk-insert machinery
_MOVE_HEAD = update(_HEAD).where(_HEAD.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))


@dataclass
class ChainHead:
    """The newest link as this transaction holds it (the locked audit_head row's values)."""

    seq: int
    hash: str


def _forget_head(session: OrmSession, *_: object) -> None:
    """The cached head is only good inside the transaction that locked it: a commit releases the lock and a
    rollback (of the transaction or of a savepoint) undoes what was appended."""
    session.info.pop(_HEAD_KEY, None)


for _event in ("after_commit", "after_rollback", "after_soft_rollback"):
    event.listen(OrmSession, _event, _forget_head)


def lock_chain(session: Session) -> ChainHead:
    """The chain head, locked once per transaction (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE).

    Every write transaction takes it first (see Context.write), which orders all writers: check-then-insert
    rules such as "the first user must be an admin" cannot race. Plain statements, no ORM object: every write
    transaction pays for this.
    """
    head = session.info.get(_HEAD_KEY)
    if head is None:
        row = session.execute(_LOCK_HEAD).first()
        if row is None:  # the first migration creates it; a missing head means the trail was tampered with
            raise AuditIntegrityError(
                "the audit chain head is missing: run 'pkictl audit verify'", message_zh="审计链头记录缺失"
            )
        head = session.info[_HEAD_KEY] = ChainHead(row.seq, row.hash)
    return head


def append_many(session: Session, entries: Sequence[Entry]) -> None:
    """Append records inside the caller's transaction, in order, and move the head once."""
    if not entries:
        return
    head = lock_chain(session)
    seq, prev = head.seq, head.hash
    rows: list[dict[str, Any]] = []
    for e in entries:
        seq += 1
        row: dict[str, Any] = {
            "seq": seq,
            "at": e.at.astimezone(UTC),
            "actor": e.actor,
            "action": e.action,
            "subject_type": e.subject_type,
            "subject_id": str(e.subject_id),
            "details": canonical_json(e.details),
            "prev_hash": prev,
        }
        row["hash"] = prev = record_hash(**row)
        rows.append(row)
    session.execute(_INSERT_RECORDS, rows[0] if len(rows) == 1 else rows)
    session.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev})
    head.seq, head.hash = seq, prev


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    subject_type: str = "",
    subject_id: str | int = "",
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one record inside the caller's transaction."""
    append_many(session, [Entry(at, actor, action, subject_type, subject_id, details or {})])


@dataclass
class VerifyResult:
    records: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


MAX_PROBLEMS = 20


def verify(session: Session, *, batch: int = 2000, expect: tuple[int, str] | None = None) -> VerifyResult:
    """Walk the whole chain in order, recomputing every hash; report the first problems found.

    Run it in a snapshot (Context.read(snapshot=True)) so that concurrent writers cannot make a sound chain
    look broken. ``expect`` = (seq, hash) is an anchor kept outside the database: the record at ``seq`` must
    still carry ``hash``.
    """
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).one_or_none()
    result = VerifyResult(head_seq=head.seq if head else 0, head_hash=head.hash if head else GENESIS_HASH)
    if head is None:
        result.problems.append("the chain head is missing")
    expected_seq, prev = 1, GENESIS_HASH
    for rec in _stream(session, batch):
        result.records += 1
        if rec.seq != expected_seq:
            result.problems.append(f"record {expected_seq}: missing (next record found is {rec.seq})")
        if rec.prev_hash != prev:
            result.problems.append(f"record {rec.seq}: does not link to the record before it")
        if _hash_of(rec) != rec.hash:
            result.problems.append(f"record {rec.seq}: content does not match its hash (edited)")
        if expect is not None and rec.seq == expect[0] and rec.hash != expect[1]:
            result.problems.append(f"record {rec.seq}: hash differs from the anchor {expect[1][:16]}…")
        if len(result.problems) >= MAX_PROBLEMS:
            return result
        expected_seq, prev = rec.seq + 1, rec.hash
    if head is not None and (result.head_seq != expected_seq - 1 or result.head_hash != prev):
        result.problems.append(
            f"chain ends at record {expected_seq - 1} but the head says {result.head_seq}"
            " (records removed from the end, or the head was altered)"
        )
    if expect is not None and expect[0] > expected_seq - 1:
        result.problems.append(f"the anchor's record {expect[0]} is beyond the end of the chain")
    return result


def _stream(session: Session, batch: int) -> Iterator[AuditRecord]:
    """Keyset pagination: constant memory, one query per ``batch`` records."""
    last = 0
    while True:
        rows = session.exec(
            select(AuditRecord).where(AuditRecord.seq > last).order_by(col(AuditRecord.seq)).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def records_for(session: Session, subject_type: str, subject_id: str | int) -> list[AuditRecord]:
    return list(
        session.exec(
            select(AuditRecord)
            .where(AuditRecord.subject_type == subject_type, AuditRecord.subject_id == str(subject_id))
            .order_by(col(AuditRecord.seq))
        ).all()
    )


def recent(
    session: Session, *, limit: int = 50, subject_type: str | None = None, subject_id: str | None = None
) -> list[AuditRecord]:
    stmt = select(AuditRecord)
    if subject_type is not None:
        stmt = stmt.where(AuditRecord.subject_type == subject_type)
    if subject_id is not None:
        stmt = stmt.where(AuditRecord.subject_id == subject_id)
    rows = session.exec(stmt.order_by(col(AuditRecord.seq).desc()).limit(limit)).all()
    return list(reversed(rows))
