"""Initialising again a USB key that holds nothing of the center's (its holder's PIN locked, or a key back in
stock), with the SO PIN the center keeps for it: the key is erased, so it is refused while the key holds a
certificate that is still good (that key's holder is helped by an unlock deal, which keeps the key pair)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from pki import audit
from pki.errors import ConflictError, NotFoundError
from pki.models import Certificate, TokenCertificate, TokenSoPin, UsbToken
from pki.services.certificates import effective_status
from pki.services.context import Actor, Context
from pki.services.token_secrets import SUBJECT, TokenSecretService


@dataclass(frozen=True)
class ResetPlan:
    token_serial: str
    so_pins: tuple[str, ...] = field(repr=False)  # the key's SO PIN is one of these: try them in order


class TokenResetService:
    def __init__(self, ctx: Context, secrets: TokenSecretService) -> None:
        self._ctx = ctx
        self._secrets = secrets

    def begin(self, token_serial: str, *, actor: Actor) -> ResetPlan:
        """The SO PINs on record for ``token_serial``, for an operator who may administer keys, once no good
        certificate of the center is on the key. Audited without a PIN."""
        with self._ctx.denials_recorded(actor, "token_reset", SUBJECT, token_serial), self._ctx.write() as s:
            actor = self._ctx.resolve(s, actor)
            self._secrets.require_admin_in(actor)
            self._refuse_if_in_use(s, token_serial)
            pins = self._secrets.on_record(s, token_serial)
            audit.append(
                s,
                at=self._ctx.now(),
                actor=actor.username,
                action="token.reset_started",
                subject_type=SUBJECT,
                subject_id=token_serial,
                details={},
            )
            return ResetPlan(token_serial, pins)

    def finish(self, token_serial: str, *, actor: Actor, pending_used: bool) -> None:
        """The key was initialised again; ``pending_used``: with the SO PIN of a change still unconfirmed,
        which the key therefore has: it becomes the one on record."""
        with self._ctx.denials_recorded(actor, "token_reset", SUBJECT, token_serial), self._ctx.write() as s:
            actor = self._ctx.resolve(s, actor)
            self._secrets.require_admin_in(actor)
            if pending_used:
                self._secrets.changed_in(s, token_serial, actor=actor)
            audit.append(
                s,
                at=self._ctx.now(),
                actor=actor.username,
                action="token.reset",
                subject_type=SUBJECT,
                subject_id=token_serial,
                details={"pending_so_pin": pending_used},
            )

    def _refuse_if_in_use(self, s: Session, token_serial: str) -> None:
        now = self._ctx.now()
        held = s.exec(
            select(Certificate)
            .join(TokenCertificate, col(TokenCertificate.certificate_id) == col(Certificate.id))
            .join(UsbToken, col(UsbToken.id) == col(TokenCertificate.token_id))
            .where(UsbToken.serial == token_serial)
            .order_by(col(Certificate.id).desc())
        ).all()
        good = [c for c in held if effective_status(c, now) in ("valid", "held")]
        if good:
            serial = good[0].serial
            raise ConflictError(
                f"token {token_serial} holds certificate {serial}: initialising it would erase that key pair; "
                f"its holder's PIN is reset by an unlock deal ('pkictl request new --type unlock --serial "
                f"{serial}')",
                message_zh=f"该USB Key存有有效证书 {serial}，不能重新初始化，请办理解锁业务",
            )
        if s.get(TokenSoPin, token_serial) is None:
            raise NotFoundError(
                f"token {token_serial} has no SO PIN on record: it cannot be initialised again by pkictl",
                message_zh="该USB Key未登记管理员PIN，无法重新初始化",
            )
