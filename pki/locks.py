"""The PostgreSQL advisory locks pkictl takes, all held to the end of their transaction. SQLite needs none of
them: its writers take the one write lock at BEGIN IMMEDIATE and so run one after another anyway.

- the writers' order (audit.order_writers): ordered write transactions, one after another;
- issuing (:func:`issuing`): every issuance shares it with the others, a batch issuance takes it alone;
- a public key (:func:`issuing`): "one key, one unit" is checked by one issuance of that key at a time.
"""

from __future__ import annotations

from sqlalchemy import bindparam, func
from sqlalchemy import select as sa_select
from sqlmodel import Session

_PKI = 0x706B69  # "pki": the first key of the locks below
_KEYS = _PKI + 1  # the first key of a public key's lock; the second is taken from its fingerprint
_WRITERS, _ISSUING = 1, 2
WRITERS = sa_select(func.pg_advisory_xact_lock(_PKI, _WRITERS))
_ONE_ISSUANCE = sa_select(
    func.pg_advisory_xact_lock_shared(_PKI, _ISSUING), func.pg_advisory_xact_lock(_KEYS, bindparam("key"))
)
_BATCH_ISSUANCE = sa_select(func.pg_advisory_xact_lock(_PKI, _ISSUING))


def on_postgresql(s: Session) -> bool:
    return s.get_bind().dialect.name == "postgresql"


def issuing(s: Session, fingerprint: str) -> None:
    """Before reading who holds the public key with this SHA-256 fingerprint (hex): wait for any other
    issuance of the same key, and for a batch issuance, to commit."""
    if on_postgresql(s):
        s.execute(_ONE_ISSUANCE, {"key": int(fingerprint[:8], 16) - 2**31})  # a signed 32-bit key


def issuing_batch(s: Session) -> None:
    """Before a batch reads who holds its public keys: every other issuance waits (one lock, not one per key:
    a batch of thousands would fill PostgreSQL's lock table)."""
    if on_postgresql(s):
        s.execute(_BATCH_ISSUANCE)
