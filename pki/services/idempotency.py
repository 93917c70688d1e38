"""Idempotency keys: a desk's retry of a write that already happened gets the first answer, never a second
issuance.

The key is claimed inside the operation's own write transaction (Context.write calls :func:`stake` after
the work, before the commit), so the claim and the change commit together or not at all: a server killed
before the commit leaves neither, and the retry does the work; killed after it, the retry finds the claim.
The answer is stored right after the commit and replayed to every retry with the same key. Keys are per
operator; a key reused for a different request is refused. Records older than a day are dropped (every
ten minutes, by each server process).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, insert, update
from sqlmodel import Session, select

from pki.db import one_statement
from pki.models import IdempotencyRecord

if TYPE_CHECKING:
    from pki.services.context import Context

_RECORDS = IdempotencyRecord.__table__  # type: ignore[attr-defined]
_CLAIM_INSERT = insert(_RECORDS)
_ANSWER = (
    update(_RECORDS)
    .where(_RECORDS.c.username == bindparam("who"), _RECORDS.c.key == bindparam("claimed"))
    .values(status=bindparam("answer_status"), response=bindparam("answer"))
)
_SWEEP = delete(_RECORDS).where(_RECORDS.c.created_at < bindparam("before"))
KEEP = timedelta(days=1)
SWEEP_EVERY = timedelta(minutes=10)  # old records are dropped this often per process, not on every answer


@dataclass
class Claim:
    username: str
    key: str
    operation: str
    request_hash: str
    staked: bool = False  # committed with the operation's transaction


@dataclass(frozen=True)
class Recorded:
    operation: str
    request_hash: str
    status: int | None  # None: the work committed, its answer was not stored (the server died between)
    response: str | None


_CLAIM: ContextVar[Claim | None] = ContextVar("pki_idempotency_claim", default=None)


def request_hash(operation: str, body: bytes) -> str:
    return hashlib.sha256(operation.encode() + b"\0" + body).hexdigest()


@contextmanager
def claiming(claim: Claim | None) -> Iterator[None]:
    """Write transactions opened inside stake ``claim`` (the first one that commits)."""
    token = _CLAIM.set(claim)
    try:
        yield
    finally:
        _CLAIM.reset(token)


def stake(session: Session, at: datetime) -> Claim | None:
    """Inside a write transaction, after its work: record the pending claim, if any, in it."""
    claim = _CLAIM.get()
    if claim is None or claim.staked:
        return None
    # A concurrent retry that committed first fails us here (unique username, key).
    session.execute(_CLAIM_INSERT, _values(claim, at))
    return claim


def _values(
    claim: Claim, at: datetime, status: int | None = None, response: str | None = None
) -> dict[str, Any]:
    return {
        "username": claim.username,
        "key": claim.key,
        "operation": claim.operation,
        "request_hash": claim.request_hash,
        "created_at": at,
        "status": status,
        "response": response,
    }


class IdempotencyService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._swept: datetime | None = None  # when this process last dropped old records

    def find(self, username: str, key: str) -> Recorded | None:
        with self._ctx.read() as s:
            rec = s.exec(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.username == username, IdempotencyRecord.key == key
                )
            ).first()
        if rec is None:
            return None
        return Recorded(rec.operation, rec.request_hash, rec.status, rec.response)

    def store(self, claim: Claim, status: int, response: str) -> None:
        """Keep the answer for retries (in a transaction of its own, after the work's commit)."""
        now = self._ctx.now()
        sweep = self._swept is None or now - self._swept >= SWEEP_EVERY
        with one_statement(self._ctx.engine) as conn:  # each statement complete in itself
            if sweep:
                conn.execute(_SWEEP, {"before": now - KEEP})
                self._swept = now
            answer = {
                "who": claim.username,
                "claimed": claim.key,
                "answer_status": status,
                "answer": response,
            }
            if conn.execute(_ANSWER, answer).rowcount == 0:  # the work wrote nothing: claim it now
                conn.execute(_CLAIM_INSERT, _values(claim, now, status, response))
