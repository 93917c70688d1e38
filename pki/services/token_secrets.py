"""USB keys' SO PINs: registered once per key, kept sealed, handed to a desk only to unblock that key.

An SO PIN is sealed with AES-256-GCM under a key derived from the audit key (pki.audit_key: kept outside the
database under its passphrase or an HSM, like the CA keys), the key's serial bound in as associated data, so
the database alone, a backup of it, or a row copied to another key's serial opens nothing. No SO PIN is ever
written to the audit trail, a log or the screen.

An unblock hands the desk the key's SO PIN and a new one made here, kept as ``next`` until the desk reports
that the key took it (C_SetPIN): the SO PIN that travelled is then retired. A desk that stops half-way leaves
both on record, and the next attempt is handed the same ``next`` again (never a third one, which would lose
the SO PIN of a key that took ``next`` and stopped again), so it works with whichever the key has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlmodel import Session, select

from pki import audit
from pki.errors import ConflictError, FieldError, KeyAccessError, NotFoundError, ValidationError
from pki.models import TokenSoPin
from pki.services.authz import require_operation
from pki.services.context import Actor, Context
from pki.token_pins import new_so_pin

OPERATION = "token_admin"
SUBJECT = "token"


@dataclass(frozen=True)
class SoPins:
    """What a desk needs to unblock a key: the SO PIN on record (and the pending one, if an earlier attempt
    stopped half-way), and the SO PIN to change it to."""

    serial: str
    current: tuple[str, ...] = field(repr=False)  # try in this order
    new: str = field(repr=False)


class TokenSecretService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def _aead(self) -> AESGCM:
        return AESGCM(self._ctx.seal().key().sealing_key("token so-pin"))

    def _seal(self, serial: str, pin: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead().encrypt(nonce, pin.encode("utf-8"), serial.encode("utf-8"))

    def _open(self, serial: str, sealed: bytes) -> str:
        try:
            return self._aead().decrypt(sealed[:12], sealed[12:], serial.encode("utf-8")).decode("utf-8")
        except InvalidTag as e:
            raise KeyAccessError(
                f"the SO PIN on record for token {serial} does not open with this home's audit key",
                message_zh="登记的管理员PIN无法解密",
            ) from e

    def require_admin(self, actor: Actor) -> None:
        """Refuse (and record) an operator who may not administer keys: asked before a desk touches one."""
        with self._ctx.denials_recorded(actor, OPERATION, SUBJECT), self._ctx.read() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), OPERATION)

    def require_admin_in(self, actor: Actor) -> None:
        """:meth:`require_admin` inside the caller's transaction, for an actor it resolved."""
        require_operation(self._ctx.policies.workflow, actor, OPERATION)

    def on_record(self, s: Session, serial: str) -> tuple[str, ...]:
        """The key's SO PIN as the center knows it: a change still unconfirmed first (the key may have taken
        it), then the one on record."""
        row = s.exec(select(TokenSoPin).where(TokenSoPin.serial == serial)).one()
        current = self._open(serial, row.sealed)
        return (current,) if row.next_sealed is None else (self._open(serial, row.next_sealed), current)

    def register(self, serial: str, so_pin: str, *, actor: Actor, replace: bool = False) -> None:
        """Keep ``so_pin`` for the key ``serial`` (once; ``replace`` for a key initialised anew)."""
        if not 4 <= len(so_pin) <= 64 or not so_pin.isprintable():
            raise ValidationError(
                [FieldError("so_pin", "must be 4 to 64 printable characters", "管理员PIN格式错误")]
            )
        with self._ctx.denials_recorded(actor, OPERATION, SUBJECT, serial), self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), OPERATION)
            now = self._ctx.now()
            row = s.get(TokenSoPin, serial)
            if row is not None and not replace:
                raise ConflictError(
                    f"token {serial} already has its SO PIN on record",
                    message_zh="该USB Key的管理员PIN已登记",
                )
            if row is None:
                row = TokenSoPin(
                    serial=serial, sealed=b"", registered_at=now, registered_by=actor.username, updated_at=now
                )
            row.sealed, row.next_sealed, row.updated_at = self._seal(serial, so_pin), None, now
            row.registered_by, row.registered_at = actor.username, now
            self._kept(s, row, actor, "token.so_pin_registered", replaced=replace)

    def for_unblock(self, s: Session, serial: str, *, actor: Actor) -> SoPins:
        """Inside the caller's transaction (the unlock deal's step, which checks the deal): the SO PINs to
        try and the new one, kept as ``next`` until :meth:`changed`. A ``next`` still pending from an attempt
        that stopped half-way is offered first and handed out again as the new one."""
        row = s.exec(select(TokenSoPin).where(TokenSoPin.serial == serial).with_for_update()).one_or_none()
        if row is None:
            raise NotFoundError(
                f"token {serial} has no SO PIN on record: register it with 'pkictl token register-so-pin'",
                message_zh="该USB Key未登记管理员PIN",
            )
        current = self._open(serial, row.sealed)
        if row.next_sealed is not None:  # the key may already have taken it: try it first, and keep it
            new = self._open(serial, row.next_sealed)
            self._kept(s, row, actor, "token.so_pin_released", pending=True)
            return SoPins(serial, (new, current), new)
        new = new_so_pin()
        row.next_sealed, row.updated_at = self._seal(serial, new), self._ctx.now()
        self._kept(s, row, actor, "token.so_pin_released", pending=False)
        return SoPins(serial, (current,), new)

    def changed(self, serial: str, *, actor: Actor) -> None:
        """The desk reports that the key took the new SO PIN: it becomes the one on record."""
        with self._ctx.denials_recorded(actor, OPERATION, SUBJECT, serial), self._ctx.write() as s:
            actor = self._ctx.resolve(s, actor)
            require_operation(self._ctx.policies.workflow, actor, OPERATION)
            self.changed_in(s, serial, actor=actor)

    def changed_in(self, s: Session, serial: str, *, actor: Actor) -> None:
        """:meth:`changed` inside the caller's transaction (the unlock deal's completion)."""
        row = s.exec(select(TokenSoPin).where(TokenSoPin.serial == serial).with_for_update()).one_or_none()
        if row is None or row.next_sealed is None:
            raise ConflictError(
                f"token {serial} has no SO PIN change under way",
                message_zh="该USB Key没有待确认的管理员PIN变更",
            )
        row.sealed, row.next_sealed, row.updated_at = row.next_sealed, None, self._ctx.now()
        self._kept(s, row, actor, "token.so_pin_changed")

    def _kept(self, s: Session, row: TokenSoPin, actor: Actor, action: str, **details: Any) -> None:
        """Store ``row`` and audit ``action`` on its key (never with a PIN in the details)."""
        s.add(row)
        audit.append(
            s,
            at=self._ctx.now(),
            actor=actor.username,
            action=action,
            subject_type=SUBJECT,
            subject_id=row.serial,
            details=details,
        )
