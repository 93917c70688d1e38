"""Certificate requests: entry, edits, acceptance, countersignature, review, cancellation.

Every public method is one transaction that checks the actor's role (policies/workflow.toml), separation of
duties against the request's own audit trail, and the state machine, then writes the change and its audit
record together.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, false, insert, literal, or_, tuple_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from pki import audit
from pki.application import single_line, validate_application
from pki.clock import CHINA_TZ
from pki.db import UTCDateTime, one_statement
from pki.enums import DEAL_LABELS_ZH, NEW_KEY_DEALS, AccessType, Action, CertificateStatus, Deal, RequestState
from pki.errors import (
    ConflictError,
    FieldError,
    InvalidTransitionError,
    NotFoundError,
    SeparationOfDutiesError,
    ValidationError,
)
from pki.ids import id_bound, known_id
from pki.lifecycle import ACTION_LABELS_ZH, FINISHES, TERMINAL, actions_from, transition
from pki.models import AuditRecord, Certificate, CertificateRequest
from pki.services import acceptance
from pki.services.authz import require_role
from pki.services.context import Actor, Context
from pki.services.points import point_for_new_work
from pki.services.prerequisites import require_prerequisites
from pki.services.scope import require_in_scope, scope_for
from pki.services.stock import require_stocked_model
from policies.workflow import WorkflowPolicy

SUBJECT = "request"


class RequestRow(Protocol):
    """A request's id, state and version: a CertificateRequest, or a locked row with these columns."""

    @property
    def id(self) -> int | None: ...

    @property
    def version(self) -> int: ...

    @property
    def state(self) -> RequestState: ...

    @property
    def deal(self) -> Deal: ...


_REQUESTS = CertificateRequest.__table__  # type: ignore[attr-defined]
_AUDIT = AuditRecord.__table__  # type: ignore[attr-defined]
_ACTIONS_BY = sa_select(_AUDIT.c.action).where(
    _AUDIT.c.subject_type == SUBJECT,
    _AUDIT.c.subject_id == bindparam("subject_id"),
    _AUDIT.c.actor == bindparam("actor"),
)
_MARK_ISSUED = (
    update(_REQUESTS)
    .where(_REQUESTS.c.id == bindparam("rid"))
    .values(
        state=bindparam("new_state"),
        version=bindparam("new_version"),
        issued_by=bindparam("by"),
        issued_at=bindparam("issued_at"),
        updated_at=bindparam("at"),
    )
)


_DEAL_OF = sa_select(_REQUESTS.c.deal).where(_REQUESTS.c.id == bindparam("rid"))


@functools.cache
def _lock_row_statement(columns: tuple[str, ...]) -> Any:
    """SELECT id, state, version, point_id, <columns> … FOR UPDATE, built once per column list."""
    return (
        sa_select(
            _REQUESTS.c.id,
            _REQUESTS.c.state,
            _REQUESTS.c.version,
            _REQUESTS.c.point_id,
            _REQUESTS.c.deal,
            _REQUESTS.c.subject_certificate_id,
            *(_REQUESTS.c[c] for c in columns),
        )
        .where(_REQUESTS.c.id == bindparam("rid"))
        .with_for_update()
    )


REASON_MAX = 500
# What a 统一社会信用代码 (18) or 事业单位法人登记证 number (12–15) looks like: letters and digits only.
_CODE_SHAPED = re.compile(r"[0-9A-Za-z]{12,18}")


@dataclass(frozen=True)
class RequestFilter:
    state: RequestState | None = None
    province: str | None = None
    access_type: AccessType | None = None
    search: str | None = None  # unit name substring or exact credential number
    after_id: int | None = None  # keyset pagination: only ids greater than this
    limit: int = 100
    states: tuple[RequestState, ...] | None = None  # any of these (a work queue)
    entered_from: date | None = None  # 录入日期, China Standard Time, inclusive
    entered_to: date | None = None  # inclusive
    before_id: int | None = None  # keyset pagination newest first: only ids smaller than this
    newest_first: bool = False
    # With an entry-date range, newest-first pages go by (entered_at, id): the cursor is both.
    before_entered_at: datetime | None = None
    queue: bool = False  # the actor's work queue ("待我处理"): what waits for a step their roles may take


# The states in which each forward step waits: a role's work queue ("待我处理") is the states of the steps
# its roles may take. Cancelling is possible in many states and makes no queue.
WORK_STEPS: Mapping[Action, RequestState] = {
    Action.EDIT: RequestState.RETURNED,
    Action.ACCEPT: RequestState.ENTERED,
    Action.COUNTERSIGN: RequestState.ACCEPTED,
    Action.APPROVE: RequestState.COUNTERSIGNED,
    Action.ISSUE: RequestState.APPROVED,
    Action.COMPLETE: RequestState.APPROVED,
    Action.DISTRIBUTE: RequestState.ISSUED,
}


class RequestService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    # -- entry ---------------------------------------------------------------------------------------

    def create(self, raw: Mapping[str, Any], *, actor: Actor, point: str | None = None) -> CertificateRequest:
        """Enter one 附件7 application for the actor's point (``point``: one in their scope; a center user's
        entry goes to the default point unless they name one). Raises PermissionDeniedError, ValidationError
        or ConflictError."""
        with self._ctx.denials_recorded(actor, Action.ENTER.value, SUBJECT), self._ctx.write() as s:
            require_role(self._ctx.policies.workflow, self._ctx.resolve(s, actor), Action.ENTER, Deal.NEW)
            scope = scope_for(s, actor)
            point_id = point_for_new_work(s, scope, point)
            values = validate_application(raw, policies=self._ctx.policies, today=self._ctx.today())
            clash = self.open_duplicates(s, [values]).get(_duplicate_key(values))
            if clash is not None:
                # The rule is the whole center's; the number only for a request the actor may look up.
                number = f" (request {clash[0]})" if scope.covers(clash[1]) else ""
                raise ConflictError(
                    f"unit {values['credential_number']} already has an open {values['access_type'].value} "
                    f"request for this system{number}",
                    message_zh=f"该单位已有同类在办申请{f'（编号 {clash[0]}）' if number else ''}",
                )
            return self.insert_validated(s, values, actor=actor, point_id=point_id)

    def insert_validated(
        self,
        s: Session,
        values: Mapping[str, Any],
        *,
        actor: Actor,
        point_id: int,
        details: Mapping[str, Any] | None = None,
    ) -> CertificateRequest:
        """Insert an already validated record for ``point_id`` inside the caller's transaction (``details``:
        more for its audit record)."""
        now = self._ctx.now()
        req = CertificateRequest(
            **values,
            state=RequestState.ENTERED,
            entered_by=actor.username,
            entered_at=now,
            updated_at=now,
            point_id=point_id,
        )
        s.add(req)
        s.flush()
        self._audit(s, req, actor, Action.ENTER, {"state": req.state.value, "batch": None, **(details or {})})
        return req

    def insert_many(
        self, s: Session, rows: Sequence[Mapping[str, Any]], *, actor: Actor, batch_id: int, point_id: int
    ) -> list[int]:
        """Insert validated records for ``point_id`` in one statement and audit each, inside the caller's
        transaction."""
        now = self._ctx.now()
        common = {
            "state": RequestState.ENTERED,
            "entered_by": actor.username,
            "entered_at": now,
            "updated_at": now,
            "batch_id": batch_id,
            "point_id": point_id,
        }
        stmt = insert(CertificateRequest).returning(col(CertificateRequest.id), sort_by_parameter_order=True)
        ids = list(s.execute(stmt, [{**row, **common} for row in rows]).scalars())
        details = {"state": RequestState.ENTERED.value, "batch": batch_id}
        audit.append_many(
            s,
            [
                audit.Entry(now, actor.username, f"{SUBJECT}.{Action.ENTER.value}", SUBJECT, rid, details)
                for rid in ids
            ],
        )
        return ids

    @staticmethod
    def open_duplicates(
        s: Session, rows: Sequence[Mapping[str, Any]]
    ) -> dict[tuple[str, str, str], tuple[int, int | None]]:
        """Open (not finished) requests, anywhere in the center, for the same unit, access type and system
        as any of ``rows``: their id and point."""
        numbers = sorted({r["credential_number"] for r in rows})
        found: dict[tuple[str, str, str], tuple[int, int | None]] = {}
        for i in range(0, len(numbers), 500):
            hits = s.execute(
                sa_select(
                    col(CertificateRequest.id),
                    col(CertificateRequest.credential_number),
                    col(CertificateRequest.access_type),
                    col(CertificateRequest.target_system),
                    col(CertificateRequest.point_id),
                ).where(
                    col(CertificateRequest.credential_number).in_(numbers[i : i + 500]),
                    col(CertificateRequest.state).not_in(TERMINAL),
                    col(CertificateRequest.deal) == Deal.NEW,
                )
            ).all()
            for rid, number, access, system, point_id in hits:
                assert rid is not None
                found.setdefault((number, str(access), system), (rid, point_id))
        return found

    def edit(
        self, request_id: int, raw: Mapping[str, Any], *, actor: Actor, expected_version: int | None = None
    ) -> CertificateRequest:
        """Replace the application's fields. After acceptance this voids the acceptance (back to entered).

        An edit that changes nothing is refused, so that it cannot void an acceptance by accident.
        """
        with self._change(request_id, actor, Action.EDIT, expected_version) as (s, req):
            values = validate_application(raw, policies=self._ctx.policies, today=self._ctx.today())
            changed = sorted(k for k, val in values.items() if getattr(req, k) != val)
            if not changed:
                raise ValidationError([FieldError("record", "nothing changed", "没有修改任何内容")])
            for key in changed:
                setattr(req, key, values[key])
            voided = req.accepted_by is not None
            self._clear_acceptance(req)
            self.advance(s, req, actor, Action.EDIT, {"changed": changed, "acceptance_voided": voided})
            return req

    # -- acceptance point ---------------------------------------------------------------------------

    def accept(
        self,
        request_id: int,
        *,
        actor: Actor,
        agree: bool,
        usbkey_model: str = "",
        comment: str = "",
        expected_version: int | None = None,
        confirm_uscc: bool = False,
    ) -> CertificateRequest:
        """Record 受理意见: 同意 needs the USBKEY 品牌及型号 when the request hands out a key (enums.NEW_KEY_DEALS;
        a model of tokens.toml the request's point has in stock: services/stock.py), the scans workflow.toml [acceptance] requires, and ``confirm_uscc`` when
        the credit code is on record under another unit name; 不同意 needs a reason and rejects the request."""
        action = Action.ACCEPT if agree else Action.DISAGREE
        with self._change(request_id, actor, action, expected_version) as (s, req):
            usbkey_model, comment = usbkey_model.strip(), comment.strip()
            if agree and not usbkey_model and req.deal in NEW_KEY_DEALS:
                raise ValidationError(
                    [FieldError("usbkey", "USB key brand and model are required", "USBKEY 品牌及型号：必填")]
                )
            if not agree and not comment:
                raise ValidationError(
                    [
                        FieldError(
                            "comment", "a reason is required to disagree", "受理意见：不同意时须填写理由"
                        )
                    ]
                )
            check_text("usbkey", usbkey_model, 128, "USBKEY 品牌及型号", lines=False)
            check_text("comment", comment, REASON_MAX, "受理意见")
            confirmed: tuple[acceptance.NameConflict, ...] = ()
            if agree and usbkey_model:  # a model of tokens.toml that the request's point has in stock
                usbkey_model = require_stocked_model(s, self._ctx.policies.tokens, req.point_id, usbkey_model)
            if agree:
                confirmed = acceptance.require_ready(s, self._ctx.policies, req, confirm_uscc=confirm_uscc)
            req.acceptance_opinion = "agree" if agree else "disagree"
            req.acceptance_comment = comment
            req.usbkey_model = usbkey_model
            req.accepted_by, req.accepted_at = actor.username, self._ctx.now()
            details: dict[str, Any] = {"usbkey": usbkey_model, "comment": comment}
            if confirmed:
                details["uscc_confirmed"] = [c.audit_ref for c in confirmed]
            self.advance(s, req, actor, action, details)
            return req

    def acceptance_check(self, request_id: int, *, actor: Actor | None = None) -> acceptance.AcceptanceCheck:
        """What agreeing to accept the request needs now (for the acceptor's page, before acting)."""
        with self._ctx.denials_recorded(actor, "show", SUBJECT, request_id), self._ctx.read() as s:
            return acceptance.check(s, self._ctx.policies, request_in_scope(s, request_id, actor))

    def countersign(
        self, request_id: int, *, actor: Actor, expected_version: int | None = None
    ) -> CertificateRequest:
        """The 负责人's countersignature completes the acceptance."""
        with self._change(request_id, actor, Action.COUNTERSIGN, expected_version) as (s, req):
            req.countersigned_by, req.countersigned_at = actor.username, self._ctx.now()
            self.advance(s, req, actor, Action.COUNTERSIGN, {})
            return req

    # -- review ---------------------------------------------------------------------------------------

    def review(
        self,
        request_id: int,
        *,
        actor: Actor,
        decision: Action,
        reason: str = "",
        expected_version: int | None = None,
    ) -> CertificateRequest:
        """Approve, return for correction or reject; returning and rejecting need a reason."""
        if decision not in (Action.APPROVE, Action.RETURN, Action.REJECT):
            raise ValueError(f"not a review decision: {decision}")
        with self._change(request_id, actor, decision, expected_version) as (s, req):
            reason = reason.strip()
            if decision is not Action.APPROVE and not reason:
                raise ValidationError(
                    [
                        FieldError(
                            "reason",
                            f"a reason is required to {decision.value}",
                            f"{ACTION_LABELS_ZH[decision]}须填写理由",
                        )
                    ]
                )
            check_text("reason", reason, REASON_MAX, "理由")
            if decision is Action.APPROVE and req.access_type is AccessType.FORMAL:
                require_prerequisites(s, self._ctx.policies, req, self._ctx.now())  # cutover.toml rules
            req.reviewed_by, req.reviewed_at = actor.username, self._ctx.now()
            req.review_decision, req.review_reason = decision.value, reason
            self.advance(s, req, actor, decision, {"reason": reason})
            return req

    def cancel(
        self, request_id: int, *, actor: Actor, reason: str, expected_version: int | None = None
    ) -> CertificateRequest:
        with self._change(request_id, actor, Action.CANCEL, expected_version) as (s, req):
            reason = reason.strip()
            if not reason:
                raise ValidationError(
                    [FieldError("reason", "a reason is required to cancel", "撤销须填写理由")]
                )
            check_text("reason", reason, REASON_MAX, "理由")
            self._refuse_cancel_pending(s, req)
            self.advance(s, req, actor, Action.CANCEL, {"reason": reason})
            return req

    @staticmethod
    def _refuse_cancel_pending(s: Session, req: CertificateRequest) -> None:
        """An approved request whose certificate is issued but not yet on its USB key is not cancelled: finish
        the write (``pkictl issue ID --resume``) or have the certificate revoked first."""
        if req.state is not RequestState.APPROVED:
            return
        serial = s.exec(
            select(Certificate.serial).where(
                Certificate.request_id == req.id,
                col(Certificate.delivered).is_(False),
                Certificate.status == CertificateStatus.VALID,
            )
        ).first()
        if serial is not None:
            raise ConflictError(
                f"request {req.id} has certificate {serial} issued but not yet written to its USB key: "
                "finish it with 'pkictl issue --resume' or revoke the certificate first",
                message_zh="该申请已签发证书但尚未写入USB Key，不能撤销",
            )

    # -- reads ------------------------------------------------------------------------------------------

    def get(self, request_id: int, *, actor: Actor | None = None) -> CertificateRequest:
        """One request, if it is in ``actor``'s scope (services/scope.py); NotFoundError otherwise."""
        with self._ctx.denials_recorded(actor, "show", SUBJECT, request_id), self._ctx.read() as s:
            return self.get_in_scope(s, request_id, actor)

    @staticmethod
    def get_in_scope(s: Session, request_id: int, actor: Actor | None) -> CertificateRequest:
        """:meth:`get` inside the caller's session (the caller records refusals: Context.denials_recorded)."""
        return request_in_scope(s, request_id, actor)

    def find(
        self, flt: RequestFilter | None = None, *, actor: Actor | None = None
    ) -> list[CertificateRequest]:
        """One page of the requests in ``actor``'s scope, by id (``newest_first`` for the lists),
        keyset-paginated.

        Two statements: the page's ids first, which the indexes answer without reading rows (a date range
        sorted by id would otherwise read and sort every row in the range), then those rows.
        """
        flt = flt or RequestFilter()
        stmt = select(CertificateRequest.id)
        if flt.state is not None:
            stmt = stmt.where(CertificateRequest.state == flt.state)
        if flt.province:
            known = self._ctx.policies.provinces.lookup(flt.province)  # accept 北京市 as well as 北京
            stmt = stmt.where(CertificateRequest.province == (known.name if known else flt.province.strip()))
        if flt.access_type:
            stmt = stmt.where(col(CertificateRequest.access_type) == flt.access_type)
        if flt.search:
            term = flt.search.strip()
            if _CODE_SHAPED.fullmatch(term):
                # A credit code or registration number: the indexed exact match alone (an OR with the
                # unit-name substring would scan every row, 100 ms at 100,000 requests).
                stmt = stmt.where(col(CertificateRequest.credential_number) == term.upper())
            else:
                stmt = stmt.where(
                    or_(
                        col(CertificateRequest.unit_name).contains(term, autoescape=True),
                        col(CertificateRequest.credential_number) == term.upper(),
                    )
                )
        id_bound(flt.before_id, "before_id")
        if id_bound(flt.after_id, "after_id") is not None:
            stmt = stmt.where(col(CertificateRequest.id) > flt.after_id)
        if flt.states is not None:
            stmt = stmt.where(col(CertificateRequest.state).in_(flt.states))
        if flt.queue:
            stmt = stmt.where(
                queue_clause(self._ctx.policies.workflow, actor.roles if actor else frozenset())
            )
        if flt.entered_from is not None:
            stmt = stmt.where(col(CertificateRequest.entered_at) >= china_midnight(flt.entered_from))
        if flt.entered_to is not None:
            end = china_midnight(flt.entered_to + timedelta(days=1))
            stmt = stmt.where(col(CertificateRequest.entered_at) < end)
        by_entry = flt.newest_first and (flt.entered_from is not None or flt.entered_to is not None)
        if by_entry:
            # A date range pages by (entered_at, id) on its index: ordering it by id alone made PostgreSQL
            # walk the primary key past every newer row (70,000 at 100,000 requests).
            if flt.before_id is not None and flt.before_entered_at is not None:
                cursor = tuple_(col(CertificateRequest.entered_at), col(CertificateRequest.id))
                stmt = stmt.where(
                    cursor < tuple_(literal(flt.before_entered_at, UTCDateTime()), flt.before_id)
                )
            stmt = stmt.order_by(col(CertificateRequest.entered_at).desc(), col(CertificateRequest.id).desc())
        else:
            if flt.before_id is not None:
                stmt = stmt.where(col(CertificateRequest.id) < flt.before_id)
            order = col(CertificateRequest.id).desc() if flt.newest_first else col(CertificateRequest.id)
            stmt = stmt.order_by(order)
        stmt = stmt.limit(max(1, min(flt.limit, 10_000)))
        with self._ctx.read() as s:
            ids = list(s.exec(stmt.where(scope_for(s, actor).where(col(CertificateRequest.point_id)))).all())
            rows: list[CertificateRequest] = []
            for i in range(0, len(ids), 500):
                rows += s.exec(
                    select(CertificateRequest).where(col(CertificateRequest.id).in_(ids[i : i + 500]))
                ).all()
        if by_entry:
            rows.sort(key=lambda r: (r.entered_at, r.id or 0), reverse=True)
        else:
            rows.sort(key=lambda r: r.id or 0, reverse=flt.newest_first)
        return rows

    def queue_states(self, actor: Actor) -> tuple[RequestState, ...]:
        """The states whose next step one of ``actor``'s roles may take on some deal type (their "待我处理"
        queue; :func:`queue_clause` narrows each state to those deal types)."""
        return tuple(sorted(queue_deals(self._ctx.policies.workflow, actor.roles)))

    def history(self, request_id: int, *, actor: Actor | None = None) -> list[AuditRecord]:
        with self._ctx.denials_recorded(actor, "show", SUBJECT, request_id), self._ctx.read() as s:
            self.get_in_scope(s, request_id, actor)
            return audit.records_for(s, SUBJECT, request_id)

    def allowed_actions(self, request_id: int, actor: Actor) -> frozenset[Action]:
        """What ``actor`` may do to this request now: state machine ∩ roles ∩ separation of duties."""
        with self._ctx.denials_recorded(actor, "show", SUBJECT, request_id), self._ctx.read() as s:
            req = self.get_in_scope(s, request_id, actor)
            earlier = self._actions_by(s, request_id, actor.username)
            actor = self._ctx.resolve(s, actor, quiet=True)
        wf = self._ctx.policies.workflow
        return frozenset(
            a
            for a in actions_from(req.state, wf.route(req.deal))
            if wf.role_allows(actor.roles, a, req.deal) and wf.conflict(earlier, a) is None
        )

    # -- the one gate every change passes ---------------------------------------------------------------

    @contextmanager
    def _change(
        self, request_id: int, actor: Actor, action: Action, expected_version: int | None
    ) -> Iterator[tuple[Session, CertificateRequest]]:
        """One write transaction on a locked, checked request; refusals are recorded as security events."""
        with self._ctx.denials_recorded(actor, action.value, SUBJECT, request_id), self._ctx.write() as s:
            yield s, self.lock_for(s, request_id, actor, action, expected_version)

    def lock_for(
        self, s: Session, request_id: int, actor: Actor, action: Action, expected_version: int | None
    ) -> CertificateRequest:
        """Lock the request and check role, separation of duties, state and version, in that order.

        The actor's roles are read from the user record inside this transaction: a user deactivated or
        stripped of a role since logging in cannot act on the rights they had.
        """
        known_id(request_id)
        actor = self._ctx.resolve(s, actor)
        require_role(self._ctx.policies.workflow, actor, action)
        req = s.exec(
            select(CertificateRequest).where(CertificateRequest.id == request_id).with_for_update()
        ).one_or_none()
        self._admit(s, request_id, req, actor, action, expected_version, req.point_id if req else None)
        assert req is not None
        return req

    def deal_of(self, request_id: int) -> Deal | None:
        """The request's type (None: no such request), in one statement of its own. A type never changes, so
        a caller may choose its transaction by it (a deal's issuance is an ordered write)."""
        with one_statement(self._ctx.engine, read=True) as conn:
            found = conn.execute(_DEAL_OF, {"rid": known_id(request_id)}).scalar()
        return None if found is None else Deal(found)

    def lock_row(
        self,
        s: Session,
        request_id: int,
        actor: Actor,
        action: Action,
        *columns: Any,
        expected_version: int | None = None,
    ) -> Any:
        """:meth:`lock_for` for a caller that needs only some columns: the same checks, the locked row as a
        plain row (``id``, ``state``, ``version`` and ``columns``), no ORM object."""
        known_id(request_id)
        actor = self._ctx.resolve(s, actor)
        require_role(self._ctx.policies.workflow, actor, action)
        row = s.execute(_lock_row_statement(tuple(c.name for c in columns)), {"rid": request_id}).first()
        self._admit(s, request_id, row, actor, action, expected_version, row.point_id if row else None)
        return row

    def _admit(
        self,
        s: Session,
        request_id: int,
        found: RequestRow | None,
        actor: Actor,
        action: Action,
        expected_version: int | None,
        point_id: int | None,
    ) -> None:
        """The checks after the lock: the request exists in the actor's scope, separation of duties, state,
        version."""
        if found is None:
            raise missing_request(request_id)
        require_in_scope(scope_for(s, actor), point_id, missing_request(request_id), f"request {request_id}")
        wf = self._ctx.policies.workflow
        require_role(wf, actor, action, found.deal)
        self.refuse_conflicting(s, request_id, actor, action)
        route = wf.route(found.deal)
        if action in FINISHES and action is not route.finish:
            raise wrong_finish(request_id, found.deal)
        transition(found.state, action, route)  # raises InvalidTransitionError
        if expected_version is not None and expected_version != found.version:
            raise ConflictError(
                f"request {request_id} was changed by someone else; reload it",
                message_zh="该申请已被他人修改，请刷新后重试",
            )

    def refuse_conflicting(self, s: Session, request_id: int, actor: Actor, action: Action) -> None:
        """Separation of duties: SeparationOfDutiesError if what ``actor`` did on the request rules out
        ``action`` (workflow.toml)."""
        rule = self._ctx.policies.workflow.conflict(self._actions_by(s, request_id, actor.username), action)
        if rule is not None:
            raise SeparationOfDutiesError(f"{rule.reason} (request {request_id})", message_zh=rule.reason_zh)

    @staticmethod
    def lock_many(s: Session, ids: Sequence[int], *, actor: Actor) -> dict[int, CertificateRequest]:
        """Lock many requests, always in id order (two batches cannot deadlock on each other); one outside
        ``actor``'s scope is refused as a missing one."""
        scope = scope_for(s, actor)
        out: dict[int, CertificateRequest] = {}
        ordered = sorted({known_id(i) for i in ids})
        for i in range(0, len(ordered), 500):
            for req in s.exec(
                select(CertificateRequest)
                .where(col(CertificateRequest.id).in_(ordered[i : i + 500]))
                .order_by(col(CertificateRequest.id))
                .with_for_update()
            ).all():
                assert req.id is not None
                require_in_scope(scope, req.point_id, missing_request(req.id), f"request {req.id}")
                out[req.id] = req
        return out

    @staticmethod
    def actions_by_many(s: Session, ids: Sequence[int], username: str) -> dict[int, set[Action]]:
        """For each request, the workflow actions ``username`` took on it (one query per 500 requests)."""
        out: dict[int, set[Action]] = {}
        keys = [str(i) for i in ids]
        mine = set(keys)
        for rec in audit.waiting(s):  # what this transaction appended counts too
            action = _workflow_action(rec.action)
            if rec.subject_type == SUBJECT and rec.subject_id in mine and rec.actor == username and action:
                out.setdefault(int(rec.subject_id), set()).add(action)
        for i in range(0, len(keys), 500):
            for subject_id, name in s.exec(
                select(AuditRecord.subject_id, AuditRecord.action).where(
                    AuditRecord.subject_type == SUBJECT,
                    col(AuditRecord.subject_id).in_(keys[i : i + 500]),
                    AuditRecord.actor == username,
                )
            ).all():
                action = _workflow_action(name)
                if action is not None:
                    out.setdefault(int(subject_id), set()).add(action)
        return out

    def mark_issued_many(
        self,
        s: Session,
        reqs: Sequence[RequestRow],
        *,
        actor: Actor,
        at: datetime,
        issued_at: datetime,
        serials: Sequence[str],
        details: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Move checked, locked, approved requests to 'issued' with one statement, and audit each move
        (``details``, one per request, are added to the audit records)."""
        target = transition(RequestState.APPROVED, Action.ISSUE)
        extra = details if details is not None else [{}] * len(reqs)
        moves = [
            {
                "rid": r.id,
                "new_state": target.value,
                "new_version": r.version + 1,
                "by": actor.username,
                "issued_at": issued_at,
                "at": at,
            }
            for r in reqs
        ]
        s.execute(_MARK_ISSUED, moves[0] if len(moves) == 1 else moves)
        audit.append_many(
            s,
            [
                audit.Entry(
                    at,
                    actor.username,
                    f"{SUBJECT}.{Action.ISSUE.value}",
                    SUBJECT,
                    r.id or 0,
                    {"from": r.state.value, "to": target.value, "serial": serial, **more},
                )
                for r, serial, more in zip(reqs, serials, extra, strict=True)
            ],
        )

    def advance(
        self, s: Session, req: CertificateRequest, actor: Actor, action: Action, details: dict[str, Any]
    ) -> None:
        before = req.state
        req.state = transition(before, action, self._ctx.policies.workflow.route(req.deal))
        req.version += 1
        req.updated_at = self._ctx.now()
        s.add(req)
        s.flush()
        self._audit(s, req, actor, action, {"from": before.value, "to": req.state.value, **details})

    def _audit(
        self, s: Session, req: CertificateRequest, actor: Actor, action: Action, details: dict[str, Any]
    ) -> None:
        assert req.id is not None
        audit.append(
            s,
            at=self._ctx.now(),
            actor=actor.username,
            action=f"{SUBJECT}.{action.value}",
            subject_type=SUBJECT,
            subject_id=req.id,
            details=details,
        )

    @staticmethod
    def _actions_by(s: Session, request_id: int, username: str) -> set[Action]:
        """Every workflow action ``username`` has ever taken on the request, from its audit trail."""
        names = [*s.execute(_ACTIONS_BY, {"subject_id": str(request_id), "actor": username}).scalars()]
        names += [  # what this transaction appended counts too
            rec.action
            for rec in audit.waiting(s)
            if rec.subject_type == SUBJECT and rec.subject_id == str(request_id) and rec.actor == username
        ]
        return {a for a in map(_workflow_action, names) if a is not None}

    @staticmethod
    def _clear_acceptance(req: CertificateRequest) -> None:
        req.acceptance_opinion = None
        req.acceptance_comment = ""
        req.usbkey_model = ""
        req.accepted_by = req.accepted_at = None
        req.countersigned_by = req.countersigned_at = None
        req.reviewed_by = req.reviewed_at = None
        req.review_decision = None
        req.review_reason = ""


def check_text(field: str, value: str, limit: int, label: str, *, lines: bool = True) -> None:
    """Length, and no control characters (line breaks allowed in reasons and comments unless ``lines``)."""
    if len(value) > limit:
        raise ValidationError(
            [FieldError(field, f"at most {limit} characters", f"{label}：不能超过{limit}个字")]
        )
    if not single_line(value.replace("\r\n", " ").replace("\n", " ") if lines else value):
        raise ValidationError(
            [FieldError(field, "must be a single line", f"{label}：不能包含换行或控制字符")]
        )


def request_in_scope(s: Session, request_id: int, actor: Actor | None) -> CertificateRequest:
    """The request, if it is in ``actor``'s scope (services/scope.py); refused as missing otherwise (the
    caller records refusals: Context.denials_recorded)."""
    req = s.get(CertificateRequest, known_id(request_id))
    if req is None:
        raise missing_request(request_id)
    require_in_scope(scope_for(s, actor), req.point_id, missing_request(request_id), f"request {request_id}")
    return req


# The command that carries out each deal that issues nothing.
CARRIED_OUT_BY: Mapping[Deal, str] = {
    Deal.UNLOCK: "pkictl token unlock --token-serial S",
    Deal.HOLD: "pkictl hold SERIAL",
    Deal.RELEASE: "pkictl release SERIAL",
    Deal.REVOKE: "pkictl revoke SERIAL",
}


def queue_deals(workflow: WorkflowPolicy, roles: Iterable[str]) -> dict[RequestState, frozenset[Deal]]:
    """Per state, the deal types whose next step waiting in it one of ``roles`` may take."""
    out: dict[RequestState, set[Deal]] = {}
    for step, state in WORK_STEPS.items():
        for deal in Deal:
            if workflow.route(deal).admits(step) and workflow.role_allows(roles, step, deal):
                out.setdefault(state, set()).add(deal)
    return {state: frozenset(deals) for state, deals in out.items()}


def queue_clause(workflow: WorkflowPolicy, roles: Iterable[str]) -> Any:
    """The requests waiting for a step ``roles`` may take, as a WHERE condition (false when none)."""
    slots = queue_deals(workflow, roles)
    return or_(
        false(),
        *(
            and_(col(CertificateRequest.state) == state, col(CertificateRequest.deal).in_(sorted(deals)))
            for state, deals in sorted(slots.items())
        ),
    )


def wrong_finish(request_id: int, deal: Deal) -> InvalidTransitionError:
    """The refusal to issue a deal that issues nothing, or to carry out one that issues a certificate."""
    if deal in CARRIED_OUT_BY:
        return InvalidTransitionError(
            f"request {request_id} is a {deal.value} deal: it issues no certificate; carry it out with "
            f"'{CARRIED_OUT_BY[deal]}'",
            message_zh=f"该申请为{DEAL_LABELS_ZH[deal]}业务，不签发证书，请办理",
        )
    return InvalidTransitionError(
        f"request {request_id} is a {deal.value} deal: it ends in a certificate; issue it with "
        f"'pkictl issue {request_id}'",
        message_zh=f"该申请为{DEAL_LABELS_ZH[deal]}业务，须签发证书",
    )


def missing_request(request_id: int) -> NotFoundError:
    return NotFoundError(f"request {request_id} not found", message_zh=f"申请 {request_id} 不存在")


def china_midnight(day: date) -> datetime:
    """The instant a China Standard Time calendar day begins."""
    return datetime.combine(day, time(0), tzinfo=CHINA_TZ)


def _duplicate_key(values: Mapping[str, Any]) -> tuple[str, str, str]:
    return (values["credential_number"], str(values["access_type"]), values["target_system"])


def _workflow_action(audited: str) -> Action | None:
    """The workflow action of a request's audit record (``request.accept`` -> ACCEPT); None for a record
    that names no workflow action."""
    try:
        return Action(audited.removeprefix(f"{SUBJECT}."))
    except ValueError:
        return None
