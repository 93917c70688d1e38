"""The cutover: readiness of every connected party at an instant, the switch and its decisions, status.

Readiness is computed in SQL, one pass per chunk of parties (keyset on party id) joined with their
certificates by USCC, so memory does not grow with the registry. A run commits a chunk at a time with its
cursor in the platform's one ``cutover_run`` row: a second run finds it done and changes nothing; an
interrupted run resumes from the cursor; a claim with a heartbeat keeps a second runner out.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Select, and_, case, false, func, insert, literal, not_, or_, true, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from pki import audit
from pki.enums import AccessType, CutoverRunState, PartyKind, Readiness
from pki.errors import ConflictError, CutoverNotDueError, PermissionDeniedError
from pki.models import Certificate, CutoverDecision, CutoverRun, Party
from pki.services.authz import require_operation
from pki.services.context import Actor, Context
from pki.services.prerequisites import PrerequisiteReport, evaluate
from pki.services.requests import request_in_scope
from pki.services.scope import EVERYTHING, Scope, scope_for
from policies.cutover import Platform

CHUNK = 5000  # rows fetched at a time by the plan
RUN_CHUNK = 10_000  # parties decided per committed transaction by the run
LEASE = timedelta(seconds=60)  # a runner that has not committed a chunk for this long is presumed dead

_P = Party.__table__  # type: ignore[attr-defined]
_C = Certificate.__table__  # type: ignore[attr-defined]
_RUNS = CutoverRun.__table__  # type: ignore[attr-defined]
_D = CutoverDecision.__table__  # type: ignore[attr-defined]
ALLOWED = frozenset({Readiness.READY, Readiness.EXPIRING})


@dataclass(frozen=True)
class PartyReadiness:
    party_id: int
    credential_number: str
    name: str
    province: str
    party_kind: PartyKind
    readiness: Readiness
    reason: str
    valid_until: datetime | None  # the accepted certificate's end, when one is valid at the instant

    @property
    def allowed(self) -> bool:
        """What the platform decides for this party from the cutover instant on."""
        return self.readiness in ALLOWED


@dataclass
class PlanSummary:
    platform: str
    at: datetime
    horizon: datetime
    cutover: datetime
    by_province: dict[str, Counter[Readiness]] = field(default_factory=dict)  # the standard province order

    def add(self, row: PartyReadiness) -> None:
        self.by_province.setdefault(row.province, Counter())[row.readiness] += 1

    @property
    def totals(self) -> Counter[Readiness]:
        out: Counter[Readiness] = Counter()
        for counts in self.by_province.values():
            out.update(counts)
        return out

    @property
    def parties(self) -> int:
        return sum(self.totals.values())


@dataclass(frozen=True)
class RunSummary:
    platform: str
    at: datetime
    cutover: datetime
    state: str  # running | done | rehearsal
    allowed: int
    refused: int
    changed: bool  # false when the run had already completed (or for a rehearsal)
    started_by: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class PlatformStatus:
    platform: str
    label_zh: str
    cutover: datetime
    enforced: bool  # a run has completed: decisions recorded, enforcement switched
    run: RunSummary | None


@dataclass(frozen=True)
class DecisionRecord:
    party_id: int
    credential_number: str
    name: str
    province: str
    allowed: bool
    readiness: Readiness
    reason: str


def _wall_clock() -> datetime:
    """Heartbeats measure real elapsed time between runners, whatever instant the run decides for."""
    return datetime.now(UTC)


class CutoverService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    # -- prerequisites (test → formal) ----------------------------------------------------------------

    def prerequisites(
        self, request_id: int, *, at: datetime | None = None, actor: Actor | None = None
    ) -> PrerequisiteReport:
        """Each test → formal rule for the request (in ``actor``'s scope) with passed/failed and why, at
        ``at`` (default now)."""
        with self._ctx.denials_recorded(actor, "show", "request", request_id), self._ctx.read() as s:
            req = request_in_scope(s, request_id, actor)
            return evaluate(s, self._ctx.policies, req, at or self._ctx.now())

    # -- readiness ------------------------------------------------------------------------------------

    def plan(
        self,
        *,
        platform: str = "production",
        at: datetime | None = None,
        days: int = 30,
        sink: Callable[[PartyReadiness], None] | None = None,
        chunk: int = CHUNK,
        actor: Actor | None = None,
    ) -> PlanSummary:
        """Readiness of every party of ``platform`` at ``at`` (default: the platform's cutover instant, or
        now once that has passed),
        handed to ``sink`` one at a time in party order, with totals per province.

        Expiring means valid at ``at`` but ending before ``at`` + ``days``. Reads one consistent snapshot.
        Only the parties of ``actor``'s scope (services/scope.py) are planned and counted.
        """
        plat = self._ctx.policies.cutover.platform(platform)
        when = _aware(at or max(self._ctx.now(), plat.cutover))
        if days < 0:
            raise ValueError("days must not be negative")
        summary = PlanSummary(plat.name, when, when + timedelta(days=days), plat.cutover)
        with self._ctx.read(snapshot=True) as s:
            scope = scope_for(s, actor)
            for row in self._classified(s, plat, when, summary.horizon, after=0, chunk=chunk, scope=scope):
                summary.add(row)
                if sink is not None:
                    sink(row)
        provinces = self._ctx.policies.provinces
        summary.by_province = dict(sorted(summary.by_province.items(), key=lambda kv: provinces.order(kv[0])))
        return summary

    def _classified(
        self,
        s: Session,
        plat: Platform,
        at: datetime,
        horizon: datetime,
        *,
        after: int,
        chunk: int,
        scope: Scope = EVERYTHING,
    ) -> Iterator[PartyReadiness]:
        """Every party's readiness in one pass: one statement, streamed ``chunk`` rows at a time (a
        server-side cursor on PostgreSQL), so memory stays flat and certificates are joined once."""
        stmt = classify(plat, at, horizon, after=after, scope=scope)
        for row in s.execute(stmt, execution_options={"yield_per": chunk}):
            yield PartyReadiness(
                party_id=row.party_id,
                credential_number=row.credential_number,
                name=row.name,
                province=row.province,
                party_kind=PartyKind(row.party_kind),
                readiness=Readiness(row.readiness),
                reason=row.reason,
                valid_until=_utc(row.valid_until),
            )

    # -- the run --------------------------------------------------------------------------------------

    def run(
        self,
        *,
        actor: Actor,
        platform: str = "production",
        at: datetime | None = None,
        rehearse: bool = False,
        chunk: int = RUN_CHUNK,
        lease: timedelta = LEASE,
        on_chunk: Callable[[int], None] | None = None,
    ) -> RunSummary:
        """Switch enforcement for ``platform`` and record a decision per party at ``at`` (default now).

        Refuses (CutoverNotDueError) before the platform's instant unless ``rehearse``, which decides
        everything and writes nothing. A completed run is not repeated (``changed`` false); an interrupted
        one resumes at its cursor with its original instant; a run claimed by a live runner raises
        ConflictError. ``on_chunk`` is called with the cursor after each committed chunk (progress).
        """
        plat = self._ctx.policies.cutover.platform(platform)
        when = _aware(at or self._ctx.now())
        with self._ctx.denials_recorded(actor, "cutover.run", "cutover", platform), self._ctx.read() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "cutover")
            if not scope_for(s, actor).everything:  # it decides for every point's parties
                raise PermissionDeniedError(
                    "the cutover is run by the center's users (no acceptance point)",
                    message_zh="切换只能由中心用户执行",
                )
        if rehearse:
            return self._rehearse(plat, when, chunk)
        if when < plat.cutover:
            raise CutoverNotDueError(
                f"the {plat.name} platform's cutover is at {plat.cutover.isoformat()}; "
                f"{when.isoformat()} is before it (use --rehearse to try it without writing)",
                message_zh="尚未到切换时间，可先演练",
            )
        token = uuid.uuid4().hex
        begun = self._claim(plat, when, actor, token, lease)
        if begun is not None:
            return begun
        try:
            while True:
                with self._ctx.write() as s:
                    run = self._locked_run(s, plat.name, token)
                    if not self._record(s, plat, run, chunk):
                        return self._finish(s, run, actor)
                    cursor = run.cursor
                if on_chunk is not None:
                    on_chunk(cursor)
        except BaseException:
            self._release(plat.name, token)
            raise

    def _rehearse(self, plat: Platform, when: datetime, chunk: int) -> RunSummary:
        counts: Counter[bool] = Counter()
        with self._ctx.read(snapshot=True) as s:
            for row in self._classified(s, plat, when, when, after=0, chunk=chunk):
                counts[row.allowed] += 1
        return RunSummary(
            plat.name, when, plat.cutover, "rehearsal", counts[True], counts[False], changed=False
        )

    def _claim(
        self, plat: Platform, when: datetime, actor: Actor, token: str, lease: timedelta
    ) -> RunSummary | None:
        """Create or take over the platform's run row; the finished run's summary if it is done already."""
        with self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "cutover")
            run = s.exec(
                select(CutoverRun).where(CutoverRun.platform == plat.name).with_for_update()
            ).one_or_none()
            wall = _wall_clock()
            now = self._ctx.now()
            if run is None:
                run = CutoverRun(
                    platform=plat.name,
                    cutover=plat.cutover,
                    at=when,
                    state=CutoverRunState.RUNNING,
                    started_by=actor.username,
                    started_at=now,
                    claimed_by=token,
                    heartbeat_at=wall,
                )
                s.add(run)
                s.flush()
                action = "cutover.start"
            elif run.state is CutoverRunState.DONE:
                return _summary(run, changed=False)
            elif (
                run.claimed_by is not None
                and run.heartbeat_at is not None
                and wall - run.heartbeat_at < lease
            ):
                raise ConflictError(
                    f"a cutover run for {plat.name} is in progress (started by {run.started_by}, "
                    f"at party {run.cursor}); try again when it has finished",
                    message_zh="该平台的切换正在进行中",
                )
            else:
                run.claimed_by, run.heartbeat_at = token, wall
                s.add(run)
                action = "cutover.resume"
            audit.append(
                s,
                at=now,
                actor=actor.username,
                action=action,
                subject_type="cutover",
                subject_id=plat.name,
                details={"at": run.at.isoformat(), "cursor": run.cursor, "cutover": plat.cutover.isoformat()},
            )
        return None

    @staticmethod
    def _locked_run(s: Session, platform: str, token: str) -> CutoverRun:
        run = s.exec(select(CutoverRun).where(CutoverRun.platform == platform).with_for_update()).one()
        if run.claimed_by != token:
            raise ConflictError(
                f"the cutover run for {platform} was taken over by another runner", message_zh="切换已被接管"
            )
        return run

    @staticmethod
    def _record(s: Session, plat: Platform, run: CutoverRun, chunk: int) -> bool:
        """Decide the next chunk of parties after the run's cursor, set-based: one INSERT … SELECT of the
        readiness query, two UPDATEs of party states, the cursor and totals. False when none is left."""
        assert run.id is not None
        ids = (
            sa_select(_P.c.id)
            .where(_P.c.platform == plat.name, _P.c.id > run.cursor)
            .order_by(_P.c.id)
            .limit(chunk)
            .subquery("ids")
        )
        upto = s.execute(sa_select(func.max(ids.c.id))).scalar_one_or_none()
        if upto is None:
            return False
        decided = classify(plat, run.at, run.at, after=run.cursor, upto=upto).subquery("decided")
        s.execute(
            insert(_D).from_select(
                ["run_id", "party_id", "allowed", "readiness", "reason"],
                sa_select(
                    literal(run.id, Integer),
                    decided.c.party_id,
                    decided.c.allowed,
                    decided.c.readiness,
                    decided.c.reason,
                ),
            )
        )
        mine = and_(_D.c.run_id == run.id, _D.c.party_id > run.cursor, _D.c.party_id <= upto)
        counts = dict(
            s.execute(sa_select(_D.c.allowed, func.count()).where(mine).group_by(_D.c.allowed)).all()
        )
        run.cursor = upto
        run.allowed += counts.get(True, 0)
        run.refused += counts.get(False, 0)
        run.heartbeat_at = _wall_clock()
        s.add(run)
        return True

    def _finish(self, s: Session, run: CutoverRun, actor: Actor) -> RunSummary:
        run.state = CutoverRunState.DONE
        run.finished_at = self._ctx.now()
        run.claimed_by = run.heartbeat_at = None
        s.add(run)
        audit.append(
            s,
            at=run.finished_at,
            actor=actor.username,
            action="cutover.run",
            subject_type="cutover",
            subject_id=run.platform,
            details={
                "at": run.at.isoformat(),
                "cutover": run.cutover.isoformat(),
                "allowed": run.allowed,
                "refused": run.refused,
            },
        )
        return _summary(run, changed=True)

    def _release(self, platform: str, token: str) -> None:
        """Best effort after an interruption: drop the claim so a resume need not wait for the lease."""
        try:
            with self._ctx.write() as s:
                s.execute(
                    update(_RUNS)
                    .where(_RUNS.c.platform == platform, _RUNS.c.claimed_by == token)
                    .values(claimed_by=None, heartbeat_at=None)
                )
        except Exception:  # noqa: S110 - the lease expires anyway; the original error matters more
            pass

    # -- status ---------------------------------------------------------------------------------------

    def status(self) -> list[PlatformStatus]:
        """Every platform of cutover.toml with its instant and its run, if any."""
        with self._ctx.read() as s:
            runs = {r.platform: r for r in s.exec(select(CutoverRun)).all()}
        out = []
        for plat in self._ctx.policies.cutover.platforms.values():
            run = runs.get(plat.name)
            out.append(
                PlatformStatus(
                    platform=plat.name,
                    label_zh=plat.label_zh,
                    cutover=plat.cutover,
                    enforced=run is not None and run.state is CutoverRunState.DONE,
                    run=_summary(run, changed=False) if run is not None else None,
                )
            )
        return out

    def decisions(
        self,
        *,
        platform: str = "production",
        refused_only: bool = False,
        after_id: int = 0,
        limit: int = 1000,
        actor: Actor | None = None,
    ) -> list[DecisionRecord]:
        """One page (keyset on party id) of the decisions the platform's run recorded for the parties of
        ``actor``'s scope."""
        d = _D
        stmt = (
            sa_select(
                d.c.party_id,
                _P.c.credential_number,
                _P.c.name,
                _P.c.province,
                d.c.allowed,
                d.c.readiness,
                d.c.reason,
            )
            .join(_RUNS, _RUNS.c.id == d.c.run_id)
            .join(_P, _P.c.id == d.c.party_id)
            .where(_RUNS.c.platform == platform, d.c.party_id > after_id)
            .order_by(d.c.party_id)
            .limit(max(1, min(limit, 10_000)))
        )
        if refused_only:
            stmt = stmt.where(d.c.allowed.is_(False))
        with self._ctx.read() as s:
            stmt = stmt.where(scope_for(s, actor).where(_P.c.point_id))
            return [DecisionRecord(*row) for row in s.execute(stmt).all()]


def _summary(run: CutoverRun, *, changed: bool) -> RunSummary:
    return RunSummary(
        platform=run.platform,
        at=run.at,
        cutover=run.cutover,
        state=run.state.value,
        allowed=run.allowed,
        refused=run.refused,
        changed=changed,
        started_by=run.started_by,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


def classify(
    plat: Platform,
    at: datetime,
    horizon: datetime,
    *,
    after: int,
    limit: int | None = None,
    upto: int | None = None,
    scope: Scope = EVERYTHING,
) -> Select[Any]:
    """The readiness of the parties of ``plat`` with ids after ``after`` (the next ``limit`` of them, or up to
    ``upto``) at ``at``: one statement joining their certificates by USCC, grouped per party. The one
    definition of readiness, used by the plan (rows to Python) and by the run (INSERT … SELECT).

    Ready: a certificate of an accepted kind valid and unrevoked at ``at`` (expiring: ending before
    ``horizon``); test only: only one of another kind; revoked: an accepted one revoked by ``at``; missing:
    none (expired or never issued). Allowed from the cutover: ready or expiring.
    """
    where = [_P.c.platform == plat.name, _P.c.id > after]
    if not scope.everything:
        where.append(scope.where(_P.c.point_id))
    if upto is not None:
        where.append(_P.c.id <= upto)
    parties = sa_select(_P.c.id, _P.c.credential_number, _P.c.name, _P.c.province, _P.c.party_kind).where(
        *where
    )
    if limit is not None:
        parties = parties.order_by(_P.c.id).limit(limit)
    p = parties.subquery("p")
    accepted = _C.c.kind.in_([AccessType(k) for k in sorted(plat.accepted_kinds)])
    live = and_(
        _C.c.not_valid_before <= at,
        _C.c.not_valid_after > at,
        or_(_C.c.revoked_at.is_(None), _C.c.revoked_at > at),
    )
    agg = (
        sa_select(
            p.c.id,
            p.c.credential_number,
            p.c.name,
            p.c.province,
            p.c.party_kind,
            func.max(case((and_(accepted, live), _C.c.not_valid_after))).label("valid_until"),
            func.max(case((and_(not_(accepted), live), 1), else_=0)).label("other_live"),
            func.max(case((and_(accepted, _C.c.revoked_at <= at), 1), else_=0)).label("revoked"),
            func.max(case((and_(accepted, _C.c.not_valid_after <= at), 1), else_=0)).label("expired"),
        )
        .select_from(p.outerjoin(_C, _C.c.credential_number == p.c.credential_number))
        .group_by(p.c.id, p.c.credential_number, p.c.name, p.c.province, p.c.party_kind)
        .subquery("agg")
    )
    until = agg.c.valid_until
    kinds = "/".join(sorted(plat.accepted_kinds))
    test_only = f"only a certificate of a kind not accepted on the {plat.name} platform (needs {kinds})"
    outcomes = [
        (
            and_(until.is_not(None), until < horizon),
            Readiness.EXPIRING,
            "certificate expires before the horizon",
        ),
        (until.is_not(None), Readiness.READY, "valid certificate of an accepted kind"),
        (agg.c.other_live == 1, Readiness.TEST_ONLY, test_only),
        (agg.c.revoked == 1, Readiness.REVOKED, "certificate revoked"),
        (agg.c.expired == 1, Readiness.MISSING, "certificate expired"),
    ]
    readiness = case(
        *((cond, literal(r.value)) for cond, r, _ in outcomes), else_=literal(Readiness.MISSING.value)
    )
    reason = case(*((cond, literal(why)) for cond, _, why in outcomes), else_=literal("no certificate"))
    return sa_select(
        agg.c.id.label("party_id"),
        agg.c.credential_number,
        agg.c.name,
        agg.c.province,
        agg.c.party_kind,
        readiness.label("readiness"),
        reason.label("reason"),
        case((until.is_not(None), true()), else_=false()).label("allowed"),
        until.label("valid_until"),
    ).order_by(agg.c.id)


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite through a subquery may lose the column type
        return value.replace(tzinfo=UTC)
    return value


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return at.astimezone(UTC)
