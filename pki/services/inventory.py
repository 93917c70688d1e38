"""USB keys as inventory: the records next to what a PKCS#11 module sees, and marking a key lost, destroyed,
returned, suspended or reinstated as tokens.toml [inventory] says (for example lost: its certificates revoked
for keyCompromise)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from pki import audit
from pki.enums import TOKEN_STATE_LABELS_ZH, CertificateStatus, TokenState
from pki.errors import ConflictError, FieldError, InvalidTransitionError, ValidationError
from pki.models import Certificate, Point, TokenCertificate, UsbToken
from pki.services.authz import require_operation
from pki.services.context import Actor, Context
from pki.services.reasons import COMMENT_MAX
from pki.services.revocation import RevocationService
from pki.services.scope import require_in_scope, scope_for
from pki.services.stock import missing_token
from policies.tokens import MARKS


@dataclass(frozen=True)
class SeenToken:
    """A token present in a slot, as a PKCS#11 module reports it."""

    serial: str
    label: str
    model: str
    module: str


@dataclass(frozen=True)
class TokenView:
    serial: str
    model: str
    label: str
    state: str  # a TokenState value, or "unrecorded" for a token seen but never issued onto
    holder_unit: str
    holder_credential: str
    certificates: int
    present: bool
    module: str
    updated_at: datetime | None
    point: str | None = None  # the acceptance point holding it (None: seen, not recorded)
    transfer_to: str | None = None  # in transit to this point


@dataclass(frozen=True)
class Marked:
    serial: str
    state: TokenState
    revoked: list[str]


class InventoryService:
    def __init__(self, ctx: Context, revocation: RevocationService) -> None:
        self._ctx = ctx
        self._revocation = revocation

    def tokens(self, seen: Sequence[SeenToken] = (), *, actor: Actor | None = None) -> list[TokenView]:
        """Every recorded token of ``actor``'s scope (held by, or on its way to, one of their points), by
        serial, with its holding point and certificate count; then the tokens seen but recorded nowhere."""
        holder, target = aliased(Point), aliased(Point)
        with self._ctx.read() as s:
            scope = scope_for(s, actor)
            counts = dict(
                s.exec(
                    select(TokenCertificate.token_id, func.count()).group_by(col(TokenCertificate.token_id))
                ).all()
            )
            found = s.exec(
                select(UsbToken, holder.name, target.name)
                .outerjoin(holder, col(holder.id) == col(UsbToken.point_id))
                .outerjoin(target, col(target.id) == col(UsbToken.transfer_to_id))
                .where(or_(scope.where(col(UsbToken.point_id)), scope.where(col(UsbToken.transfer_to_id))))
                .order_by(col(UsbToken.serial))
            ).all()
            everywhere = set(
                s.exec(
                    select(UsbToken.serial).where(col(UsbToken.serial).in_([t.serial for t in seen]))
                ).all()
            )
        rows = [t for t, _, _ in found]
        points = {t.serial: (p, q) for t, p, q in found}
        present = {t.serial: t for t in seen}
        out = [
            TokenView(
                t.serial,
                t.model,
                present[t.serial].label if t.serial in present else t.label,
                t.state.value,
                t.holder_unit,
                t.holder_credential,
                counts.get(t.id, 0) if t.id is not None else 0,
                t.serial in present,
                present[t.serial].module if t.serial in present else "",
                t.updated_at,
                *points[t.serial],
            )
            for t in rows
        ]
        out += [
            TokenView(t.serial, t.model, t.label, "unrecorded", "", "", 0, True, t.module, None)
            for t in seen
            if t.serial not in everywhere
        ]
        return out

    def mark(self, serial: str, mark: str, *, actor: Actor, comment: str = "") -> Marked:
        """Apply tokens.toml [inventory.<mark>]: the new state, and its certificates revoked with the reason."""
        configured = self._ctx.policies.tokens.marks
        if mark not in configured:
            known = ", ".join(m for m in MARKS if m in configured)
            raise ValidationError([FieldError("mark", f"must be one of {known} (tokens.toml)", "标记无效")])
        comment = comment.strip()
        if len(comment) > COMMENT_MAX:
            raise ValidationError([FieldError("comment", f"at most {COMMENT_MAX} characters", "备注过长")])
        with self._ctx.denials_recorded(actor, "token_mark", "token", serial), self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "token_mark")
            token = s.exec(select(UsbToken).where(UsbToken.serial == serial).with_for_update()).first()
            if token is None:
                raise missing_token(serial)
            require_in_scope(scope_for(s, actor), token.point_id, missing_token(serial), f"token {serial}")
            return self.mark_locked(s, token, mark, actor=actor, comment=comment)

    def mark_locked(self, s: Session, token: UsbToken, mark: str, *, actor: Actor, comment: str) -> Marked:
        """:meth:`mark` on a locked token the caller checked, inside the caller's transaction (a replacement
        deal marks the old key as its issuance commits)."""
        rule = self._ctx.policies.tokens.marks[mark]
        serial = token.serial
        if token.state is rule.state:
            raise ConflictError(f"token {serial} is already {rule.state.value}")
        if token.state not in rule.allowed_from:
            raise InvalidTransitionError(
                f"a token that is {token.state.value} cannot be marked {mark}",
                message_zh=f"USB Key当前状态“{TOKEN_STATE_LABELS_ZH[token.state]}”不能标记为"
                f"“{TOKEN_STATE_LABELS_ZH[rule.state]}”",
            )
        revoked: list[str] = []
        if rule.revoke is not None:
            certs = list(
                s.exec(
                    select(Certificate)
                    .join(TokenCertificate, col(TokenCertificate.certificate_id) == col(Certificate.id))
                    .where(
                        TokenCertificate.token_id == token.id,
                        Certificate.status == CertificateStatus.VALID,
                        col(Certificate.not_valid_after) > self._ctx.now(),
                    )
                    .order_by(col(Certificate.id))
                    .with_for_update()
                ).all()
            )
            why = comment or f"token {serial} marked {mark}"
            self._revocation.revoke_locked(s, certs, rule.revoke, actor=actor, comment=why)
            revoked = [c.serial for c in certs]
        before = token.state
        token.state, token.updated_at, token.updated_by = rule.state, self._ctx.now(), actor.username
        s.add(token)
        audit.append(
            s,
            at=self._ctx.now(),
            actor=actor.username,
            action=f"token.{mark}",
            subject_type="token",
            subject_id=serial,
            details={
                "from": before.value,
                "to": rule.state.value,
                "revoked": revoked,
                "reason": rule.revoke.value if rule.revoke else None,
                "comment": comment,
            },
        )
        return Marked(serial, rule.state, revoked)
