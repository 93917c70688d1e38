"""Acceptance points (受理点): adding them (admins, workflow.toml [operations] point_admin), listing them, and
finding one by name for the other services (users, requests, parties and USB keys name points by name)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from pki import audit
from pki.application import single_line
from pki.errors import ConflictError, FieldError, PointOutOfScopeError, ValidationError
from pki.models import Point, User
from pki.models.point import DEFAULT_POINT
from pki.services.authz import require_operation
from pki.services.context import Actor, Context
from pki.services.scope import Scope, scope_for

NAME_MAX = 64


@dataclass(frozen=True)
class PointView:
    id: int
    name: str
    province: str  # "" for the default point (the center's own desk)
    parent: str | None  # the provincial point it is under
    users: int
    created_at: datetime
    created_by: str


def _no_point(name: str, field: str) -> ValidationError:
    return ValidationError(
        [
            FieldError(
                field, f"no acceptance point named {name.strip()!r} (see 'pkictl point list')", "受理点不存在"
            )
        ]
    )


def point_named(s: Session, name: str, *, field: str = "point") -> Point:
    """The point called ``name``; ValidationError naming ``field`` when there is none."""
    found = s.exec(select(Point).where(Point.name == name.strip())).one_or_none()
    if found is None:
        raise _no_point(name, field)
    return found


def default_point(s: Session) -> Point:
    """Where a center user's entries go when they name no point (made by migration 0009)."""
    return point_named(s, DEFAULT_POINT)


def point_for_new_work(s: Session, scope: Scope, name: str | None, *, field: str = "point") -> int:
    """The point new work (a request, a party, a key taken into stock) goes to: ``name`` if given (it must be
    in the actor's scope: a provincial user may name a point under theirs), else the actor's own point, else
    (a center user) the default point."""
    if name is not None and name.strip():
        point = point_named(s, name, field=field)
        assert point.id is not None
        if not scope.covers(point.id):  # refused as a point that does not exist (and audited)
            raise PointOutOfScopeError(
                _no_point(name, field), f"point {point.id} is outside the actor's points"
            )
        return point.id
    if scope.home is not None:
        return scope.home
    found = default_point(s).id
    assert found is not None
    return found


class PointService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def add(self, name: str, *, province: str, actor: Actor, parent: str | None = None) -> PointView:
        """Add an acceptance point in ``province`` (provinces.toml), under the provincial point ``parent`` if
        given (one level: a point under another has none under it). Raises ValidationError, ConflictError,
        PermissionDeniedError."""
        name = name.strip()
        errors: list[FieldError] = []
        if not name or len(name) > NAME_MAX or not single_line(name):
            errors.append(
                FieldError("name", f"1–{NAME_MAX} characters on one line", f"名称：1–{NAME_MAX}个字，单行")
            )
        known = self._ctx.policies.provinces.lookup(province)
        if known is None:
            errors.append(FieldError("province", f"unknown province {province.strip()!r}", "省份名称无效"))
        if errors:
            raise ValidationError(errors)
        assert known is not None
        with self._ctx.denials_recorded(actor, "point.add", "point", name), self._ctx.write() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "point_admin")
            parent_id = None
            if parent is not None and parent.strip():
                above = point_named(s, parent, field="parent")
                if above.parent_id is not None:
                    raise ValidationError(
                        [
                            FieldError(
                                "parent",
                                f"{above.name!r} is itself under another point: points nest one level deep",
                                "上级受理点不能是下级受理点",
                            )
                        ]
                    )
                parent_id = above.id
            if s.exec(select(Point.id).where(Point.name == name)).first() is not None:
                raise ConflictError(
                    f"acceptance point {name!r} already exists", message_zh=f"受理点“{name}”已存在"
                )
            now = self._ctx.now()
            point = Point(
                name=name, province=known.name, parent_id=parent_id, created_at=now, created_by=actor.username
            )
            s.add(point)
            s.flush()
            assert point.id is not None
            audit.append(
                s,
                at=now,
                actor=actor.username,
                action="point.add",
                subject_type="point",
                subject_id=point.id,
                details={"name": name, "province": known.name, "parent": parent.strip() if parent else None},
            )
            return PointView(
                point.id, name, known.name, parent.strip() if parent else None, 0, now, actor.username
            )

    def directory(self, *, actor: Actor) -> list[PointView]:
        """:meth:`list` for the administration page: the roles of point_admin only (a refusal is recorded)."""
        with self._ctx.denials_recorded(actor, "point.list", "point"), self._ctx.read() as s:
            require_operation(self._ctx.policies.workflow, self._ctx.resolve(s, actor), "point_admin")
        return self.list()

    def for_new_work(self, *, actor: Actor) -> list[PointView]:
        """The points :func:`point_for_new_work` lets ``actor`` name (services/scope.py), in :meth:`list`'s
        order: every point for a center user (the default point first), a point user's own point and those
        under it (their own first)."""
        with self._ctx.read() as s:
            scope = scope_for(s, actor)
        return [v for v in self.list() if scope.covers(v.id)]

    def list(self) -> list[PointView]:
        """Every point, provincial points each followed by the points under them. Point names are no secret:
        a point's users need them to transfer keys to another point."""
        parent = aliased(Point)
        users = (
            select(User.point_id, func.count().label("n"))
            .where(col(User.point_id).is_not(None))
            .group_by(col(User.point_id))
            .subquery()
        )
        stmt = (
            select(Point, parent.name, users.c.n)
            .outerjoin(parent, col(parent.id) == col(Point.parent_id))
            .outerjoin(users, users.c.point_id == col(Point.id))
        )
        with self._ctx.read() as s:
            rows = s.exec(stmt).all()
        views = [
            PointView(p.id or 0, p.name, p.province, above, int(n or 0), p.created_at, p.created_by)
            for p, above, n in rows
        ]
        by_id = {p.id: p for p, _, _ in rows}

        def order(v: PointView) -> tuple[int, int]:
            top = by_id[v.id].parent_id or v.id
            return (top, 0 if top == v.id else v.id)

        return sorted(views, key=order)

    def name_of(self, point_id: int | None) -> str | None:
        if point_id is None:
            return None
        with self._ctx.read() as s:
            found = s.get(Point, point_id)
        return found.name if found else None
