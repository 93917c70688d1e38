"""Each acceptance point's stock of USB keys: blank keys taken in by serial and model, transferred to another
point and received there, defective ones sent back; and the rule that an acceptance names a model the
request's point has in stock (workflow.toml [operations] token_stock; every move audited per key).

A key is in stock at a point when the point holds it blank (or returned by a unit), not in transit. A point
keeps stock from its first intake or receipt (``Point.stock_kept``); before that (a home upgraded from before
points, a point that never took keys in) an acceptance may name any model of tokens.toml, and a key seen for
the first time when issued onto is recorded at the request's point.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from pki import audit
from pki.application import single_line
from pki.enums import TokenState
from pki.errors import ConflictError, FieldError, InvalidTransitionError, NotFoundError, ValidationError
from pki.models import Point, UsbToken
from pki.services.authz import require_operation
from pki.services.context import Actor, Context
from pki.services.points import point_for_new_work, point_named
from pki.services.reasons import COMMENT_MAX
from pki.services.scope import Scope, require_in_scope, scope_for
from policies.tokens import TokenModel, TokenPolicy

SERIAL_MAX = 64
MANY_MAX = 10_000
# What may be moved (transferred, sent back) and counts as in stock: keys holding no unit's certificate.
IN_STOCK = frozenset({TokenState.BLANK, TokenState.RETURNED})


@dataclass(frozen=True)
class StockMove:
    """What an intake, transfer, receipt or return did."""

    action: str  # intake, transfer, receive, return
    serials: list[str]
    point: str  # where the keys are now (a transfer: where they go)
    state: str


@dataclass(frozen=True)
class StockCount:
    point: str
    model: str
    state: str  # a TokenState value, or "in_transit"
    count: int


@dataclass(frozen=True)
class StockLine:
    """One point's keys of one model, by state: TokenState values for the keys it holds, "outgoing" for keys
    it sent that are not received yet, "incoming" for keys sent to it that it has not received yet."""

    point: str
    model: str
    counts: dict[str, int]

    @property
    def available(self) -> int:
        """Keys the point may issue onto now: in stock (blank or returned), not in transit."""
        return sum(self.counts.get(state.value, 0) for state in IN_STOCK)


def checked_serials(serials: Iterable[str]) -> list[str]:
    """USB key serials as the tokens report them (surrounding blanks dropped): at least one, each on one line
    and at most 64 characters, none twice. ValidationError naming ``serial`` otherwise."""
    out = [x.strip() for x in serials]
    if not out:
        raise ValidationError(
            [FieldError("serial", "give at least one serial number", "请填写USB Key序列号")]
        )
    if len(out) > MANY_MAX:
        raise ValidationError([FieldError("serial", f"at most {MANY_MAX} at once", f"一次最多{MANY_MAX}个")])
    bad = next((x for x in out if not x or len(x) > SERIAL_MAX or not single_line(x)), None)
    if bad is not None:
        raise ValidationError(
            [
                FieldError(
                    "serial", f"{bad[:80]!r}: 1–{SERIAL_MAX} characters on one line", "USB Key序列号无效"
                )
            ]
        )
    twice = sorted({x for x in out if out.count(x) > 1}) if len(set(out)) != len(out) else []
    if twice:
        raise ValidationError([FieldError("serial", f"listed twice: {', '.join(twice[:5])}", "序列号重复")])
    return out


def serials_from_csv(text: str) -> list[str]:
    """The serials of a CSV file: the first cell of each non-empty line; a first line whose first cell is a
    column name (serial, 序列号, SN) is skipped."""
    import csv
    import io

    cells = [
        row[0].strip() for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if row and row[0].strip()
    ]
    if cells and cells[0].casefold() in {"serial", "serial_number", "序列号", "sn", "usbkey序列号"}:
        cells = cells[1:]
    return cells


def checked_model(policy: TokenPolicy, name: str, field: str) -> TokenModel:
    """The tokens.toml model named ``name`` (or one of its aliases); ValidationError naming ``field``."""
    found = policy.model(name) if name.strip() else None
    if found is None:
        known = ", ".join(m.name for m in policy.models)
        raise ValidationError(
            [
                FieldError(
                    field,
                    f"USB key model {name.strip()!r} is not in tokens.toml (one of: {known})",
                    "USBKEY 品牌及型号须为已登记的型号",
                )
            ]
        )
    return found


def stocked_models(s: Session, point_id: int | None) -> set[str] | None:
    """The models the point has keys of in stock, or None when it keeps no stock (see the module)."""
    point = s.get(Point, point_id) if point_id is not None else None
    if point is None or not point.stock_kept:
        return None
    return set(
        s.exec(
            select(UsbToken.model)
            .where(
                UsbToken.point_id == point_id,
                col(UsbToken.state).in_(IN_STOCK),
                col(UsbToken.transfer_to_id).is_(None),
            )
            .distinct()
        ).all()
    )


def require_stocked_model(s: Session, policy: TokenPolicy, point_id: int | None, name: str) -> str:
    """The tokens.toml name of the model ``name`` if the point may issue one (it has it in stock, or keeps no
    stock); ValidationError naming ``usbkey`` otherwise."""
    model = checked_model(policy, name, "usbkey")
    stocked = stocked_models(s, point_id)
    if stocked is not None and model.name not in stocked:
        have = ", ".join(sorted(stocked)) or "none"
        raise ValidationError(
            [
                FieldError(
                    "usbkey",
                    f"this acceptance point has no {model.name} key in stock (in stock: {have})",
                    "本受理点没有该型号的USB Key库存",
                )
            ]
        )
    return model.name


class StockService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def intake(
        self, serials: Sequence[str], *, model: str, actor: Actor, point: str | None = None
    ) -> StockMove:
        """Take blank keys into the stock of ``point`` (default: the actor's; a center user names one).
        All or nothing: a serial already recorded refuses the lot (ConflictError)."""
        wanted = checked_serials(serials)
        kind = checked_model(self._ctx.policies.tokens, model, "model")
        with self._guard(actor, "intake", wanted) as (s, scope):
            if point is None and scope.home is None:
                raise ValidationError(
                    [FieldError("point", "name the point taking the keys in (--point)", "请指定受理点")]
                )
            point_id = point_for_new_work(s, scope, point)
            known = self._existing(s, wanted)
            if known:
                raise ConflictError(
                    f"already recorded: {', '.join(known[:5])}{' …' if len(known) > 5 else ''}",
                    message_zh="USB Key已登记",
                )
            now = self._ctx.now()
            s.add_all(blank_key(x, kind.name, point_id, by=actor.username, at=now) for x in wanted)
            name = self._keep_stock(s, point_id)
            self._audit(s, actor, "intake", wanted, {"point": name, "model": kind.name})
            return StockMove("intake", wanted, name, TokenState.BLANK.value)

    def transfer(self, serials: Sequence[str], *, to: str, actor: Actor) -> StockMove:
        """Send keys of the actor's points to the point ``to``: in transit until received there."""
        wanted = checked_serials(serials)
        with self._guard(actor, "transfer", wanted) as (s, scope):
            target = point_named(s, to, field="to")
            tokens = self._locked(s, wanted, scope, receiving=False)
            for t in tokens:
                self._movable(t, "transferred")
                if t.point_id == target.id:
                    raise ValidationError(
                        [
                            FieldError(
                                "to", f"token {t.serial} is at {target.name} already", "USB Key已在该受理点"
                            )
                        ]
                    )
            self._set(s, wanted, actor, transfer_to_id=target.id)
            self._audit(s, actor, "transfer", wanted, {"to": target.name})
            return StockMove("transfer", wanted, target.name, "in_transit")

    def receive(self, serials: Sequence[str], *, actor: Actor) -> StockMove:
        """Accept keys transferred to one of the actor's points: they join its stock."""
        wanted = checked_serials(serials)
        with self._guard(actor, "receive", wanted) as (s, scope):
            tokens = self._locked(s, wanted, scope, receiving=True)
            targets = {t.transfer_to_id for t in tokens}
            if len(targets) != 1:
                raise ValidationError(
                    [
                        FieldError(
                            "serial", "the keys go to different points: receive them apart", "目的受理点不同"
                        )
                    ]
                )
            (target,) = targets
            assert target is not None
            self._set(s, wanted, actor, point_id=target, transfer_to_id=None)
            name = self._keep_stock(s, target)
            self._audit(s, actor, "receive", wanted, {"point": name})
            return StockMove("receive", wanted, name, "in_stock")

    def return_defective(self, serials: Sequence[str], *, reason: str, actor: Actor) -> StockMove:
        """Send defective keys of the actor's points back to the supplier (terminal: state defective)."""
        wanted = checked_serials(serials)
        reason = reason.strip()
        if not reason or len(reason) > COMMENT_MAX:
            raise ValidationError(
                [
                    FieldError(
                        "reason", f"why, in 1–{COMMENT_MAX} characters", f"退回原因：1–{COMMENT_MAX}个字"
                    )
                ]
            )
        with self._guard(actor, "return", wanted) as (s, scope):
            for t in self._locked(s, wanted, scope, receiving=False):
                self._movable(t, "sent back")
            self._set(s, wanted, actor, state=TokenState.DEFECTIVE)
            self._audit(s, actor, "return", wanted, {"reason": reason})
            return StockMove("return", wanted, "", TokenState.DEFECTIVE.value)

    # -- reads -------------------------------------------------------------------------------------------

    def acceptable_models(self, point_id: int | None) -> list[str]:
        """The tokens.toml models an acceptance at ``point_id`` may name (for the acceptor's choice)."""
        with self._ctx.read() as s:
            stocked = stocked_models(s, point_id)
        return [m.name for m in self._ctx.policies.tokens.models if stocked is None or m.name in stocked]

    def counts(self, *, actor: Actor | None = None) -> list[StockCount]:
        """Keys per point, model and state (in transit counted at the sending point) in ``actor``'s scope."""
        in_transit = col(UsbToken.transfer_to_id).is_not(None)
        stmt = (
            sa_select(col(Point.name), col(UsbToken.model), col(UsbToken.state), in_transit, func.count())
            .join(Point, col(Point.id) == col(UsbToken.point_id))
            .group_by(col(Point.name), col(UsbToken.model), col(UsbToken.state), in_transit)
            .order_by(col(Point.name), col(UsbToken.model), col(UsbToken.state))
        )
        with self._ctx.read() as s:
            scope = scope_for(s, actor)
            rows = s.execute(stmt.where(_visible(scope))).all()
        return [
            StockCount(point, model, "in_transit" if moving else str(st), int(n))
            for point, model, st, moving, n in rows
        ]

    def summary(self, *, actor: Actor) -> list[StockLine]:
        """The keys of ``actor``'s points (services/scope.py) per point and model, by state, for the
        dashboard: a key in transit is outgoing at the point that sent it and incoming at the point it goes
        to, each where that point is in scope. Points in the order they were added, models by name."""
        moving = col(UsbToken.transfer_to_id).is_not(None)
        held = (
            sa_select(
                col(Point.id), col(Point.name), col(UsbToken.model), col(UsbToken.state), moving, func.count()
            )
            .join(Point, col(Point.id) == col(UsbToken.point_id))
            .group_by(col(Point.id), col(Point.name), col(UsbToken.model), col(UsbToken.state), moving)
        )
        incoming = (
            sa_select(col(Point.id), col(Point.name), col(UsbToken.model), func.count())
            .join(Point, col(Point.id) == col(UsbToken.transfer_to_id))
            .group_by(col(Point.id), col(Point.name), col(UsbToken.model))
        )
        lines: dict[tuple[int, str, str], dict[str, int]] = {}
        with self._ctx.read(snapshot=True) as s:
            scope = scope_for(s, actor)
            for pid, point, model, state, out, n in s.execute(
                held.where(scope.where(col(UsbToken.point_id)))
            ):
                counts = lines.setdefault((pid, point, model), {})
                key = "outgoing" if out else str(state)
                counts[key] = counts.get(key, 0) + int(n)
            for pid, point, model, n in s.execute(incoming.where(scope.where(col(UsbToken.transfer_to_id)))):
                lines.setdefault((pid, point, model), {})["incoming"] = int(n)
        return [StockLine(point, model, counts) for (_, point, model), counts in sorted(lines.items())]

    # -- helpers -----------------------------------------------------------------------------------------

    @contextmanager
    def _guard(self, actor: Actor, doing: str, serials: list[str]) -> Iterator[tuple[Session, Scope]]:
        """One write transaction for a stock move: refusals recorded, the role checked, the actor's scope."""
        subject = serials[0] if len(serials) == 1 else ""
        with self._ctx.denials_recorded(actor, f"token.{doing}", "token", subject), self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "token_stock")
            yield s, scope_for(s, actor)

    @staticmethod
    def _existing(s: Session, serials: list[str]) -> list[str]:
        found: list[str] = []
        for i in range(0, len(serials), 500):
            found += s.exec(
                select(UsbToken.serial).where(col(UsbToken.serial).in_(serials[i : i + 500]))
            ).all()
        return sorted(found)

    @staticmethod
    def _locked(s: Session, serials: list[str], scope: Scope, *, receiving: bool) -> list[UsbToken]:
        """The keys, locked in serial order; one not recorded, or not the actor's (held by one of their
        points, or for ``receiving`` on its way to one), is refused as missing."""
        found: dict[str, UsbToken] = {}
        ordered = sorted(serials)
        for i in range(0, len(ordered), 500):
            for t in s.exec(
                select(UsbToken)
                .where(col(UsbToken.serial).in_(ordered[i : i + 500]))
                .order_by(col(UsbToken.serial))
                .with_for_update()
            ).all():
                found[t.serial] = t
        for x in serials:
            if x not in found:
                raise missing_token(x)
            t = found[x]
            if receiving:
                if scope.covers(t.point_id) and not scope.covers(t.transfer_to_id):
                    raise InvalidTransitionError(
                        f"token {x} is not on its way to your point"
                        + (" (it is received where it goes)" if t.transfer_to_id else ""),
                        message_zh="该USB Key不是调拨给本受理点的",
                    )
                require_in_scope(scope, t.transfer_to_id, missing_token(x), f"token {x} (its destination)")
            else:
                require_in_scope(scope, t.point_id, missing_token(x), f"token {x}")
        return [found[x] for x in serials]

    @staticmethod
    def _movable(t: UsbToken, doing: str) -> None:
        if t.transfer_to_id is not None:
            raise InvalidTransitionError(
                f"token {t.serial} is in transit: it is received before it is {doing}",
                message_zh="该USB Key正在调拨中",
            )
        if t.state not in IN_STOCK:
            raise InvalidTransitionError(
                f"token {t.serial} is {t.state.value}: only keys in stock (blank or returned) are {doing}",
                message_zh="只有库存中的USB Key可以调拨或退回",
            )

    def _set(self, s: Session, serials: list[str], actor: Actor, **values: object) -> None:
        now = self._ctx.now()
        for i in range(0, len(serials), 500):
            s.execute(
                update(UsbToken)
                .where(col(UsbToken.serial).in_(serials[i : i + 500]))
                .values(updated_at=now, updated_by=actor.username, **values)
            )

    @staticmethod
    def _keep_stock(s: Session, point_id: int) -> str:
        point = s.get(Point, point_id)
        assert point is not None
        if not point.stock_kept:
            point.stock_kept = True
            s.add(point)
        return point.name

    def _audit(
        self, s: Session, actor: Actor, doing: str, serials: list[str], details: dict[str, object]
    ) -> None:
        s.flush()
        now = self._ctx.now()
        audit.append_many(
            s, [audit.Entry(now, actor.username, f"token.{doing}", "token", x, details) for x in serials]
        )


def blank_key(
    serial: str, model: str, point_id: int | None, *, by: str, at: datetime, label: str = ""
) -> UsbToken:
    """A key recorded for the first time, blank, at ``point_id``: taken into stock, or seen when issued onto."""
    return UsbToken(
        serial=serial,
        model=model,
        label=label,
        state=TokenState.BLANK,
        first_seen_at=at,
        updated_at=at,
        updated_by=by,
        point_id=point_id,
    )


def missing_token(serial: str) -> NotFoundError:
    return NotFoundError(f"token {serial} is not recorded", message_zh="该USB Key未登记")


def _visible(scope: Scope) -> Any:
    """Keys in ``scope``: held by one of its points, or on their way to one."""
    return or_(scope.where(col(UsbToken.point_id)), scope.where(col(UsbToken.transfer_to_id)))
