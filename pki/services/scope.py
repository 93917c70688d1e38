"""Which acceptance points' work a person sees and acts on: the one rule every list, show and act applies.

A user placed at a point (受理点) sees the requests, parties, certificates and USB keys of that point and, for
a provincial point, of the points under it. A center user (no point) sees every point's. Lists filter in SQL
(:meth:`Scope.where`); a record outside the scope is refused exactly as a missing one is
(:func:`require_in_scope` raises OutOfScopeError, a NotFoundError), and Context.denials_recorded audits the
refusal. Certificates belong to the point of their request.

``actor=None`` is the center's own host (the local CLI without ``--as``, internal callers): everything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import false, true
from sqlalchemy import select as sa_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from pki.errors import NotFoundError, OutOfScopeError
from pki.models import Certificate, CertificateRequest, Point, User
from pki.services.context import Actor, user_points

_USERS = User.__table__  # type: ignore[attr-defined]
_POINTS = Point.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Scope:
    """The points whose records an actor may see; ``points`` None: every point (a center user)."""

    points: frozenset[int] | None
    home: int | None = None  # the actor's own point: where what they enter goes

    @property
    def everything(self) -> bool:
        return self.points is None

    def covers(self, point_id: int | None) -> bool:
        return self.points is None or (point_id is not None and point_id in self.points)

    def where(self, column: Any) -> ColumnElement[bool]:
        """The SQL condition on a ``point_id`` column that keeps the rows in scope."""
        if self.points is None:
            return true()
        if not self.points:
            return false()
        return column.in_(sorted(self.points))  # type: ignore[no-any-return]


EVERYTHING = Scope(None)
NOTHING = Scope(frozenset())


def scope_for(s: Session, actor: Actor | None) -> Scope:
    """The actor's scope as the user table says now (an unknown user sees nothing; a deactivated one is
    refused by the role checks, which read the same row, once per transaction: Context.resolve)."""
    if actor is None:
        return EVERYTHING
    rows = user_points(s, actor.username)
    if not rows:
        return NOTHING
    home = rows[0][0]
    if home is None:
        return EVERYTHING
    return Scope(frozenset({home, *(i for _, i in rows if i is not None)}), home)


def require_in_scope(scope: Scope, point_id: int | None, missing: NotFoundError, what: str) -> None:
    """OutOfScopeError (the same refusal as ``missing``) unless ``point_id`` is in ``scope``."""
    if not scope.covers(point_id):
        raise OutOfScopeError(missing, f"{what} belongs to point {point_id}, outside the actor's points")


def by_request(scope: Scope, request_id: Any) -> ColumnElement[bool]:
    """The SQL condition on a ``request_id`` column (a certificate's) that keeps the rows whose request is in
    ``scope``: a certificate belongs to the point of its request."""
    if scope.points is None:
        return true()
    requests = CertificateRequest.__table__  # type: ignore[attr-defined]
    return request_id.in_(  # type: ignore[no-any-return]
        sa_select(requests.c.id).where(scope.where(requests.c.point_id))
    )


def require_certificates_in_scope(
    s: Session, scope: Scope, certs: Sequence[Certificate], missing: Callable[[str], NotFoundError]
) -> None:
    """OutOfScopeError (``missing(serial)``) for the first certificate whose request is outside ``scope``."""
    if scope.points is None or not certs:
        return
    requests = CertificateRequest.__table__  # type: ignore[attr-defined]
    ids = sorted({c.request_id for c in certs if c.request_id is not None})
    points: dict[int, int | None] = {}
    for i in range(0, len(ids), 500):
        points.update(
            s.execute(
                sa_select(requests.c.id, requests.c.point_id).where(requests.c.id.in_(ids[i : i + 500]))
            ).all()
        )
    for cert in certs:
        point = points.get(cert.request_id) if cert.request_id is not None else None
        require_in_scope(scope, point, missing(cert.serial), f"certificate {cert.serial}")
