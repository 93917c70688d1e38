"""Acceptance points (受理点): adding one (admins) and listing them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from pki.desk.contract import Input, NoInput, acting, operation
from pki.desk.types import Instant, Name

if TYPE_CHECKING:
    from pki.services import Actor, Service

TAG = "points"


class AddPoint(Input):
    name: str = Field(min_length=1, max_length=64)
    province: Name
    parent: Name | None = None  # the provincial point it is under


class PointDoc(BaseModel):
    id: int
    name: str
    province: str  # "" for the default point (the center's own desk)
    parent: str | None
    users: int
    created_at: Instant
    created_by: str


@operation(
    "point.add",
    "POST",
    "/points",
    AddPoint,
    PointDoc,
    summary="Add an acceptance point (受理点), under a provincial point if given",
    tag=TAG,
    status=201,
)
def add(svc: Service, actor: Actor | None, data: AddPoint) -> Any:
    return svc.points.add(data.name, province=data.province, parent=data.parent, actor=acting(actor))


@operation(
    "point.list",
    "GET",
    "/points",
    NoInput,
    list[PointDoc],
    summary="Every acceptance point, each provincial point followed by the points under it",
    tag=TAG,
    needs_actor=False,
)
def find(svc: Service, actor: Actor | None, data: NoInput) -> Any:
    return svc.points.list()
