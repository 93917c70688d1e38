"""The audit trail: an append-only hash chain written in the same transaction as the change it records.

Each record's hash covers its own fields and the previous record's hash, so an edited, deleted or reordered
record breaks the chain from that point; the head row catches a record removed from the end. If appending
fails, the surrounding transaction fails with it: a change is never kept without its record.

Anyone who can write the database can recompute hashes, so each record also carries a MAC of its hash under
the audit key (pki/audit_key.py), which the database never holds, and the head is checkpointed outside the
database (pki/audit_checkpoints.py). :func:`verify` checks all three and names the first record that can no
longer be trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, event, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from pki import locks
from pki.audit_checkpoints import CheckpointLine
from pki.audit_key import AuditKey
from pki.errors import AuditIntegrityError, KeyAccessError
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


class Waiting(NamedTuple):
    """A record appended in this transaction, written at its commit (:func:`flush`)."""

    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    details: str  # canonical JSON


_HEAD_KEY = "pki.audit_head"
_PENDING_KEY = "pki.audit_pending"  # records appended, written at the commit (flush)
_ORDERED_KEY = "pki.writers_ordered"
_SAVEPOINTS_KEY = "pki.audit_savepoints"  # savepoint -> (records waiting before it, the head, ordered)
_KEY_KEY = "pki.audit_key"
_COMMITTED_KEY = "pki.audit_committed"
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
    key: AuditKey
    appended: bool = False
    moved: bool = True  # the audit_head row holds seq and hash (it is written once, before the commit)


def _forget_head(session: OrmSession, *_: object) -> None:
    """The cached head and the records not yet written are only good inside their transaction: a commit
    releases the lock and a rollback undoes what was appended."""
    for kept in (_HEAD_KEY, _PENDING_KEY, _SAVEPOINTS_KEY, _ORDERED_KEY):
        session.info.pop(kept, None)


def _savepoint_taken(session: OrmSession, transaction: Any) -> None:
    """Remember what was appended before a savepoint, and the head as it was, for a rollback to it."""
    if transaction.nested:
        head: ChainHead | None = session.info.get(_HEAD_KEY)
        kept = (
            list(session.info.get(_PENDING_KEY, ())),
            dataclasses.replace(head) if head else None,
            session.info.get(_ORDERED_KEY, False),
        )
        session.info.setdefault(_SAVEPOINTS_KEY, {})[transaction] = kept


def _rolled_back(session: OrmSession, previous: Any) -> None:
    """A rollback to a savepoint undoes what was appended after it, records written since included: the
    records appended before it wait again for the commit, and the head and the writers' order are as they
    were (a lock first taken after the savepoint is taken again: the rollback released it). Any other
    rollback forgets everything."""
    kept = session.info.get(_SAVEPOINTS_KEY, {}).pop(previous, None) if previous.nested else None
    if kept is None:
        _forget_head(session)
        return
    pending, head, ordered = kept
    session.info[_PENDING_KEY], session.info[_ORDERED_KEY] = pending, ordered
    if head is None:
        session.info.pop(_HEAD_KEY, None)
    else:
        session.info[_HEAD_KEY] = head


def _before_commit(session: OrmSession) -> None:
    """The records appended are written, and the head row takes the newest link: once per transaction,
    however many appends, with the chain's head locked only from here to the commit. A savepoint released
    is no commit: what was appended waits for the transaction's."""
    if session.in_nested_transaction():
        return
    flush(session)  # type: ignore[arg-type]  # an ORM session; sqlmodel's is a subclass
    head: ChainHead | None = session.info.get(_HEAD_KEY)
    if head is not None and not head.moved:
        session.execute(_MOVE_HEAD, {"new_seq": head.seq, "new_hash": head.hash})
        head.moved = True


def _remember_commit(session: OrmSession) -> None:
    """What a commit made durable, for the checkpoint taken after it (committed_head); what was kept for the
    transaction is dropped (a session may open another). A savepoint released commits nothing yet."""
    if session.in_nested_transaction():  # released: nothing to undo to it any more
        session.info.get(_SAVEPOINTS_KEY, {}).pop(session.get_nested_transaction(), None)
        return
    head = session.info.pop(_HEAD_KEY, None)
    session.info[_COMMITTED_KEY] = head if head is not None and head.appended else None
    for kept in (_PENDING_KEY, _SAVEPOINTS_KEY, _ORDERED_KEY):
        session.info.pop(kept, None)


event.listen(OrmSession, "before_commit", _before_commit)
event.listen(OrmSession, "after_commit", _remember_commit)
event.listen(OrmSession, "after_transaction_create", _savepoint_taken)
event.listen(OrmSession, "after_soft_rollback", _rolled_back)  # every rollback, a savepoint's included


def use_key(session: Session, key: AuditKey) -> None:
    """The audit key this session's records are MAC'd with (Context.write sets it on every write session)."""
    session.info[_KEY_KEY] = key


def committed_head(session: Session) -> ChainHead | None:
    """The head the session's last commit wrote, if that commit appended records."""
    head: ChainHead | None = session.info.get(_COMMITTED_KEY)
    return head


def order_writers(session: Session) -> None:
    """Take the writers' order: ordered write transactions (Context.write's default) take it first and hold
    it to their end, so they run one after another and a check-then-insert rule such as "the first user
    must be an admin" cannot race. PostgreSQL: an advisory lock (pki/locks.py); SQLite: nothing to do, its
    BEGIN IMMEDIATE already orders every writer. Taken once per transaction.

    It is not the chain's head: every transaction locks the head only to write its records, just before its
    commit, so a write left out of the order (``Context.write(ordered=False)``, whose rules rest on the rows
    it locks) waits for the others only that long, and never while holding the head. Row locks, then the
    head: both kinds take them in that order, and the order lock, held by ordered writes only, comes before
    both."""
    if session.info.get(_ORDERED_KEY) or not locks.on_postgresql(session):
        return
    session.execute(locks.WRITERS)
    session.info[_ORDERED_KEY] = True


def require_ordered(session: Session) -> None:
    """A programming error unless the transaction took the writers' order (PostgreSQL; on SQLite every
    write is ordered): for work whose rules do not all rest on the rows it locks."""
    if locks.on_postgresql(session) and not session.info.get(_ORDERED_KEY):
        raise RuntimeError("this work must run in an ordered write: Context.write()")


def lock_chain(session: Session) -> ChainHead:
    """The chain head, locked once per transaction (FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE), by
    :func:`flush` at the commit. Plain statements, no ORM object: every write transaction pays for this."""
    head = session.info.get(_HEAD_KEY)
    if head is None:
        row = session.execute(_LOCK_HEAD).first()
        if row is None:  # the first migration creates it; a missing head means the trail was tampered with
            raise AuditIntegrityError(
                "the audit chain head is missing: run 'pkictl audit verify'", message_zh="审计链头记录缺失"
            )
        key: AuditKey = session.info[_KEY_KEY]  # there: append_many refuses to append without it
        head = session.info[_HEAD_KEY] = ChainHead(row.seq, row.hash, key)
    return head


def append_many(session: Session, entries: Sequence[Entry]) -> None:
    """Append records inside the caller's transaction, in order. They are written at its commit, with the
    head (:func:`flush`); a reader of the trail inside the same transaction adds :func:`waiting`."""
    if not entries:
        return
    if session.info.get(_KEY_KEY) is None:  # a record without its MAC would read as forged
        raise KeyAccessError(
            "no audit key for this write: the audit key is locked", message_zh="审计密钥未解锁"
        )
    pending: list[Waiting] = session.info.setdefault(_PENDING_KEY, [])
    pending.extend(
        Waiting(
            e.at.astimezone(UTC),
            e.actor,
            e.action,
            e.subject_type,
            str(e.subject_id),
            canonical_json(e.details),
        )
        for e in entries
    )


def waiting(session: Session) -> Sequence[Waiting]:
    """The records this transaction appended that wait for its commit: a reader of the trail inside the
    transaction adds them to what it reads (locking nothing, as :func:`flush` would)."""
    found: list[Waiting] = session.info.get(_PENDING_KEY, [])
    return found


def flush(session: Session) -> ChainHead | None:
    """Write the records appended so far (one statement), the chain's head locked for the rest of the
    transaction; the head row itself is written once, before the commit. Returns the head, None when the
    transaction has appended nothing (then it locks nothing)."""
    pending = session.info.pop(_PENDING_KEY, None)
    if not pending:
        found: ChainHead | None = session.info.get(_HEAD_KEY)
        return found
    head = lock_chain(session)
    seq, prev = head.seq, head.hash
    rows: list[dict[str, Any]] = []
    for at, actor, action, subject_type, subject_id, details in pending:
        seq += 1
        row: dict[str, Any] = {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "details": details,
            "prev_hash": prev,
        }
        row["hash"] = prev = record_hash(**row)
        row["mac"] = head.key.record_mac(prev)
        rows.append(row)
    session.execute(_INSERT_RECORDS, rows[0] if len(rows) == 1 else rows)
    head.seq, head.hash, head.appended, head.moved = seq, prev, True, False
    return head


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
    keyed_from: int = 1  # records before it predate the audit key: sealed by a checkpoint, not MAC'd
    checkpoints: int = 0  # authentic checkpoints read
    last_checkpoint: int | None = None  # the newest one's record
    untrusted_from: int | None = None  # the first record that can no longer be trusted
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # worth a look, but nothing proven wrong

    @property
    def ok(self) -> bool:
        return not self.problems

    def bad(self, seq: int | None, problem: str) -> None:
        """Record a problem; ``seq`` is the first record it makes untrustworthy (None: none in particular)."""
        self.problems.append(problem)
        if seq is not None and (self.untrusted_from is None or seq < self.untrusted_from):
            self.untrusted_from = seq


MAX_PROBLEMS = 20


@dataclass(frozen=True)
class _Seen:
    line: int
    hash: str
    at: datetime


def _authentic_checkpoints(
    lines: Iterable[CheckpointLine], key: AuditKey, result: VerifyResult
) -> dict[int, list[_Seen]]:
    by_seq: dict[int, list[_Seen]] = {}
    for line in lines:
        cp = line.checkpoint
        if cp is None:  # a kill half-way through an append leaves one; it vouches for nothing either way
            result.warnings.append(f"checkpoint line {line.number}: unreadable ({line.error})")
        elif not cp.authentic(key):
            result.bad(
                None,
                f"checkpoint line {line.number} (record {cp.seq}): MAC does not match"
                " (forged, edited, or made with another audit key)",
            )
        else:
            by_seq.setdefault(cp.seq, []).append(_Seen(line.number, cp.hash, cp.at))
    result.checkpoints = sum(len(v) for v in by_seq.values())
    result.last_checkpoint = max(by_seq, default=None)
    return by_seq


def verify(
    session: Session,
    *,
    key: AuditKey,
    checkpoints: Iterable[CheckpointLine],
    batch: int = 2000,
    expect: tuple[int, str] | None = None,
) -> VerifyResult:
    """Walk the whole chain in order: every hash, every link, every MAC from ``key.keyed_from`` on, and every
    checkpoint; report the first problems found and the first record that can no longer be trusted.

    Run it in a snapshot (Context.read(snapshot=True)) so that concurrent writers cannot make a sound chain
    look broken. ``expect`` = (seq, hash) is an anchor kept outside the database: the record at ``seq`` must
    still carry ``hash``.
    """
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).one_or_none()
    result = VerifyResult(
        head_seq=head.seq if head else 0,
        head_hash=head.hash if head else GENESIS_HASH,
        keyed_from=key.keyed_from,
    )
    if head is None:
        result.bad(1, "the chain head is missing")
    sealed = _authentic_checkpoints(checkpoints, key, result)
    good_checkpoint = 0  # the newest checkpoint the chain still matches
    expected_seq, prev = 1, GENESIS_HASH
    for rec in _stream(session, batch):
        result.records += 1
        seq = rec.seq
        if seq != expected_seq:
            result.bad(expected_seq, f"record {expected_seq}: missing (next record found is {seq})")
        # The first keyed record vouches, through its MAC'd link, for the unkeyed ones before it: when it fails
        # they are only as good as the newest checkpoint they still match.
        first = good_checkpoint + 1 if seq == key.keyed_from > 1 else seq
        if rec.prev_hash != prev:
            result.bad(first, f"record {seq}: does not link to the record before it")
        if _hash_of(rec) != rec.hash:
            result.bad(seq, f"record {seq}: content does not match its hash (edited)")
        elif seq >= key.keyed_from and not hmac.compare_digest(rec.mac, key.record_mac(rec.hash)):
            what = "has no MAC" if not rec.mac else "MAC does not match"
            result.bad(first, f"record {seq}: {what} (forged, or edited and re-hashed)")
        for seen in sealed.get(seq, ()):
            if seen.hash != rec.hash:
                # A keyed record's MAC already names where it went wrong; unkeyed ones are only vouched for
                # as a whole, from the checkpoint before.
                first = seq if seq >= key.keyed_from else good_checkpoint + 1
                result.bad(
                    first, f"record {seq}: differs from checkpoint line {seen.line} ({_when(seen.at)})"
                )
            else:
                good_checkpoint = seq
        if expect is not None and seq == expect[0] and rec.hash != expect[1]:
            result.bad(seq, f"record {seq}: hash differs from the anchor {expect[1][:16]}…")
        if len(result.problems) >= MAX_PROBLEMS:
            return result
        expected_seq, prev = seq + 1, rec.hash
    end = expected_seq - 1
    if head is not None and (result.head_seq != end or result.head_hash != prev):
        result.bad(
            min(end, result.head_seq) + 1,
            f"chain ends at record {end} but the head says {result.head_seq}"
            " (records removed from the end, or the head was altered)",
        )
    beyond = [(s, seen) for s, seen_all in sealed.items() if s > end for seen in seen_all]
    if beyond:
        s, seen = max(beyond, key=lambda item: item[0])
        result.bad(
            end + 1,
            f"checkpoint line {seen.line} ({_when(seen.at)}) vouches for record {s}, but the chain ends at"
            f" record {end}: records were removed from the end",
        )
    if key.keyed_from > 1 and not any(s >= key.keyed_from - 1 for s in sealed):
        result.bad(1, f"records 1–{key.keyed_from - 1} predate the audit key and no checkpoint seals them")
    elif end and not sealed:
        # Not proof of anything (a writer commits before it checkpoints, and `pkictl init` writes the first
        # one), but nothing here could notice a cut tail: say so.
        result.warnings.append("no checkpoint: records cut off the end of the chain could not be noticed")
    if expect is not None and expect[0] > end:
        result.bad(end + 1, f"the anchor's record {expect[0]} is beyond the end of the chain")
    return result


def _when(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds")


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
