"""Reading, verifying and sealing the audit trail."""

from __future__ import annotations

from sqlmodel import col, select

from pki import audit
from pki.audit_key import AuditKey
from pki.errors import ConflictError, NotFoundError, PermissionDeniedError
from pki.models import AuditHead, AuditRecord
from pki.services.context import Actor, Context
from pki.services.requests import request_in_scope
from pki.services.scope import scope_for


class AuditService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def verify(self, *, expect: tuple[int, str] | None = None) -> audit.VerifyResult:
        """Recompute the whole chain in one snapshot and check every MAC and checkpoint; the result lists what
        is wrong (``ok`` is false then) and the first record that can no longer be trusted.

        Needs the audit key (KeyAccessError). The checkpoints are read before the snapshot starts: each names
        a record committed before it was written, so a sound chain never looks cut short."""
        seal = self._ctx.seal()
        key = seal.key()
        checkpoints = list(seal.checkpoints.lines())
        with self._ctx.read(snapshot=True) as s:
            return audit.verify(s, key=key, checkpoints=checkpoints, expect=expect)

    def unlock(self) -> str:
        """Unlock the audit key now rather than on the first write (the server, before it listens): a prompt
        or a wrong passphrase surfaces at start. Returns the key id. Raises KeyAccessError."""
        return self._ctx.seal().key().key_id

    def establish_key(self) -> AuditKey | None:
        """`pkictl init`: make the home's audit key if it has none, record it and checkpoint the head, which
        seals the records written before it (they carry no MAC). Returns the new key, or None.

        Raises ConflictError when the database's records are keyed already: another home (a second server on
        the same PostgreSQL database) holds the key, and a second key would make its records look forged."""
        seal = self._ctx.seal()
        if seal.has_key_file():
            return None
        with self._ctx.read() as s:
            head = s.get(AuditHead, 1)
            keyed_from = (head.seq if head else 0) + 1
            keyed = s.exec(select(AuditRecord.seq).where(col(AuditRecord.mac) != "").limit(1)).first()
        if keyed is not None:
            raise ConflictError(
                f"this database's audit trail is keyed already: copy audit/audit.key from the home that made it"
                f" to {seal.key_path}",
                message_zh="审计记录已由另一审计密钥保护",
            )
        key = seal.create_key(keyed_from=keyed_from)
        with self._ctx.write(checkpoint="keyed") as s:
            audit.append(
                s,
                at=self._ctx.now(),
                actor="system",
                action="audit.keyed",
                details={"key_id": key.key_id, "keyed_from": keyed_from},
            )
        return key

    def checkpoint(self, *, actor: str = "system") -> int:
        """Checkpoint the head now (cron in quiet hours: the interval is only checked on writes). It records
        the checkpoint in the trail and checkpoints that record; returns its number."""
        with self._ctx.write(checkpoint="manual") as s:
            audit.append(s, at=self._ctx.now(), actor=actor, action="audit.checkpoint")
            head = audit.flush(s)
            assert head is not None  # it appended
            return head.seq

    def for_request(
        self, request_id: int, *, limit: int = 1000, actor: Actor | None = None
    ) -> list[AuditRecord]:
        """The newest records of one request: none for a request that does not exist, and none (the attempt
        recorded) for one outside ``actor``'s scope."""
        try:
            with (
                self._ctx.denials_recorded(actor, "audit.show", "request", request_id),
                self._ctx.read() as s,
            ):
                request_in_scope(s, request_id, actor)
                return audit.recent(s, limit=limit, subject_type="request", subject_id=str(request_id))
        except NotFoundError:
            return []

    def recent(
        self,
        *,
        limit: int = 50,
        subject_type: str | None = None,
        subject_id: str | None = None,
        actor: Actor | None = None,
    ) -> list[AuditRecord]:
        """The newest records of the trail (of one subject): for the center's users (it names every point's
        work); a point's users read their requests' records (:meth:`for_request`)."""
        with self._ctx.denials_recorded(actor, "audit.show", "audit"), self._ctx.read() as s:
            if not scope_for(s, actor).everything:
                raise PermissionDeniedError(
                    "the whole audit trail is for the center's users: give a request",
                    message_zh="只有中心用户可以查看全部审计记录",
                )
            return audit.recent(s, limit=limit, subject_type=subject_type, subject_id=subject_id)
