"""Dashboard figures: counts by state and kind, certificates expiring soon, issuance and expiry by month.

Each figure is one GROUP BY query; nothing is counted row by row in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal
from sqlmodel import col, select

from pki.clock import CHINA_TZ
from pki.enums import AccessType, CertificateStatus, RequestState
from pki.models import Certificate, CertificateRequest
from pki.services.context import Actor, Context
from pki.services.requests import queue_clause
from pki.services.scope import by_request, scope_for

EXPIRY_HORIZONS = (30, 60, 90)


@dataclass(frozen=True)
class MonthCount:
    month: str  # YYYY-MM, China Standard Time
    issued: int
    expiring: int


@dataclass(frozen=True)
class Dashboard:
    requests_by_state: dict[RequestState, int]
    requests_by_kind: dict[AccessType, int]
    certificates_by_kind_status: dict[tuple[str, str], int]  # status: valid | revoked | expired
    expiring_within: dict[int, int]  # days -> valid certificates ending within that many days
    by_month: list[MonthCount]  # the months around today (issued in the past, expiring ahead)


@dataclass(frozen=True)
class Waiting:
    """A request waiting in a work queue since ``since`` (its last change: when it reached this state)."""

    request_id: int
    unit_name: str
    since: datetime


@dataclass(frozen=True)
class QueueFigure:
    """One work queue ("待受理", …): how many wait, since when the oldest, and the longest waiting few."""

    state: RequestState
    count: int
    oldest_since: datetime | None
    longest: tuple[Waiting, ...]


class StatsService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def work_queues(
        self, states: Sequence[RequestState], *, longest: int = 5, actor: Actor | None = None
    ) -> list[QueueFigure]:
        """For each of ``states`` (a role's queue: RequestService.queue_states), the requests of ``actor``'s
        scope waiting in it for a step their roles may take (requests.queue_clause: a distributor's 待签发
        holds no hold deal): one GROUP BY for the counts and oldest instants, one query per state for its
        longest waiting."""
        if not states:
            return []
        req = CertificateRequest
        with self._ctx.read(snapshot=True) as s:
            mine = scope_for(s, actor).where(col(req.point_id))
            if actor is not None:
                mine = and_(mine, queue_clause(self._ctx.policies.workflow, actor.roles))
            counts = {
                state: (int(n), oldest)
                for state, n, oldest in s.exec(
                    select(req.state, func.count(), func.min(req.updated_at))
                    .where(col(req.state).in_(states), mine)
                    .group_by(col(req.state))
                ).all()
            }
            out = []
            for state in states:
                n, oldest = counts.get(state, (0, None))
                rows = (
                    s.exec(
                        select(req.id, req.unit_name, req.updated_at)
                        .where(req.state == state, mine)
                        .order_by(col(req.updated_at), col(req.id))
                        .limit(longest)
                    ).all()
                    if n
                    else []
                )
                out.append(
                    QueueFigure(
                        state,
                        n,
                        oldest,
                        tuple(Waiting(rid or 0, name, at) for rid, name, at in rows),
                    )
                )
        return out

    def dashboard(
        self, *, months_back: int = 11, months_ahead: int = 12, actor: Actor | None = None
    ) -> Dashboard:
        """The figures of ``actor``'s scope (services/scope.py): their points' requests and certificates."""
        now = self._ctx.now()
        with self._ctx.read(snapshot=True) as s:
            scope = scope_for(s, actor)
            mine = scope.where(col(CertificateRequest.point_id))
            ours = by_request(scope, col(Certificate.request_id))
            by_state = dict(
                s.exec(
                    select(CertificateRequest.state, func.count())
                    .where(mine)
                    .group_by(col(CertificateRequest.state))
                ).all()
            )
            by_kind = dict(
                s.exec(
                    select(CertificateRequest.access_type, func.count())
                    .where(mine)
                    .group_by(col(CertificateRequest.access_type))
                ).all()
            )
            status = case(
                (col(Certificate.status) == CertificateStatus.REVOKED, literal("revoked")),
                (col(Certificate.not_valid_after) <= now, literal("expired")),
                else_=literal("valid"),
            )
            certs = {
                (str(kind), str(st)): int(n)
                for kind, st, n in s.exec(
                    select(Certificate.kind, status, func.count())
                    .where(ours)
                    .group_by(col(Certificate.kind), status)
                ).all()
            }
            horizon = case(
                *[
                    (col(Certificate.not_valid_after) <= now + timedelta(days=d), literal(d))
                    for d in EXPIRY_HORIZONS
                ],
                else_=literal(0),
            )
            expiring_rows = dict(
                s.exec(
                    select(horizon, func.count())
                    .where(
                        ours,
                        col(Certificate.status) == CertificateStatus.VALID,
                        col(Certificate.not_valid_after) > now,
                        col(Certificate.not_valid_after) <= now + timedelta(days=max(EXPIRY_HORIZONS)),
                    )
                    .group_by(horizon)
                ).all()
            )
            first = _month_start(now, -months_back)
            last = _month_start(now, months_ahead + 1)
            issued = self._per_month(s, col(Certificate.issued_at), first, last, ours)
            expiring = self._per_month(
                s, col(Certificate.not_valid_after), first, last, ours, valid_only=True
            )
        cumulative: dict[int, int] = {}
        running = 0
        for d in EXPIRY_HORIZONS:
            running += int(expiring_rows.get(d, 0))
            cumulative[d] = running
        months = _months(first, months_back + months_ahead + 1)
        return Dashboard(
            requests_by_state={st: int(by_state.get(st, 0)) for st in RequestState},
            requests_by_kind={k: int(by_kind.get(k, 0)) for k in AccessType},
            certificates_by_kind_status=certs,
            expiring_within=cumulative,
            by_month=[MonthCount(m, issued.get(m, 0), expiring.get(m, 0)) for m in months],
        )

    def _per_month(
        self, s: Any, column: Any, first: datetime, last: datetime, ours: Any, *, valid_only: bool = False
    ) -> dict[str, int]:
        if self._ctx.engine.dialect.name == "postgresql":
            month = func.to_char(func.timezone("Asia/Shanghai", column), "YYYY-MM")
        else:  # SQLite keeps UTC text; shift to Beijing time before taking the month
            month = func.strftime("%Y-%m", column, "+8 hours")
        stmt = select(month, func.count()).where(column >= first, column < last, ours)
        if valid_only:
            stmt = stmt.where(col(Certificate.status) == CertificateStatus.VALID)
        return {str(m): int(n) for m, n in s.exec(stmt.group_by(month)).all()}


def _month_start(now: datetime, offset: int) -> datetime:
    """The first instant (China Standard Time) of the month ``offset`` months from ``now``'s month."""
    local = now.astimezone(CHINA_TZ)
    index = local.year * 12 + local.month - 1 + offset
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=CHINA_TZ)


def _months(first: datetime, count: int) -> list[str]:
    index = first.year * 12 + first.month - 1
    return [f"{(index + i) // 12:04d}-{(index + i) % 12 + 1:02d}" for i in range(count)]
