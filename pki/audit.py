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

import hashlib
import hmac
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, event, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

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


_HEAD_KEY = "pki.audit_head"
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


def _forget_head(session: OrmSession, *_: object) -> None:
    """The cached head is only good inside the transaction that locked it: a commit releases the lock and a
    rollback (of the transaction or of a savepoint) undoes what was appended."""
    session.info.pop(_HEAD_KEY, None)


def _remember_commit(session: OrmSession) -> None:
    """What a commit made durable, for the checkpoint taken after it (committed_head)."""
    head = session.info.pop(_HEAD_KEY, None)
    session.info[_COMMITTED_KEY] = head if head is not None and head.appended else None


event.listen(OrmSession, "after_commit", _remember_commit)
for _event in ("after_rollback", "after_soft_rollback"):
    event.listen(OrmSession, _event, _forget_head)


def use_key(session: Session, key: AuditKey) -> None:
    """The audit key this session's records are MAC'd with (Context.write sets it on every write session)."""
    session.info[_KEY_KEY] = key


def committed_head(session: Session) -> ChainHead | None:
    """The head the session's last commit wrote, if that commit appended records."""
    head: ChainHead | None = session.info.get(_COMMITTED_KEY)
    return head


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
        key = session.info.get(_KEY_KEY)
        if key is None:  # a record without its MAC would read as forged: refuse the write instead
            raise KeyAccessError(
                "no audit key for this write: the audit key is locked", message_zh="审计密钥未解锁"
            )
        head = session.info[_HEAD_KEY] = ChainHead(row.seq, row.hash, key)
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
        row["mac"] = head.key.record_mac(prev)
        rows.append(row)
    session.execute(_INSERT_RECORDS, rows[0] if len(rows) == 1 else rows)
    session.execute(_MOVE_HEAD, {"new_seq": seq, "new_hash": prev})
    head.seq, head.hash, head.appended = seq, prev, True


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
