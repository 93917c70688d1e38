"""Each acceptance point's stock of USB keys: intake, transfer to another point, receipt there, defective
returns, and the counts per point, model and state (services/stock.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, Field

from pki.desk.contract import Input, NoInput, acting, operation
from pki.desk.types import Name, Text

if TYPE_CHECKING:
    from pki.services import Actor, Service

TAG = "usb-keys"
# The service checks each serial and names a bad one; the list is bounded here.
Serials = Annotated[list[Annotated[str, Field(max_length=128)]], Field(max_length=10_000)]


class Intake(Input):
    serials: Serials
    model: Name
    point: Name | None = None  # default: the operator's own point (a center user names one)


class Transfer(Input):
    serials: Serials
    to: Name


class Receive(Input):
    serials: Serials


class Return(Input):
    serials: Serials
    reason: Text


class MoveDoc(BaseModel):
    action: str
    serials: list[str]
    point: str
    state: str


class CountDoc(BaseModel):
    point: str
    model: str
    state: str
    count: int


@operation(
    "token.intake",
    "POST",
    "/tokens/intake",
    Intake,
    MoveDoc,
    summary="Take blank USB keys into a point's stock, by serial and tokens.toml model",
    tag=TAG,
    status=201,
)
def intake(svc: Service, actor: Actor | None, data: Intake) -> Any:
    return svc.stock.intake(data.serials, model=data.model, point=data.point, actor=acting(actor))


@operation(
    "token.transfer",
    "POST",
    "/tokens/transfers",
    Transfer,
    MoveDoc,
    summary="Send keys of the operator's points to another point (in transit until received there)",
    tag=TAG,
)
def transfer(svc: Service, actor: Actor | None, data: Transfer) -> Any:
    return svc.stock.transfer(data.serials, to=data.to, actor=acting(actor))


@operation(
    "token.receive",
    "POST",
    "/tokens/receipts",
    Receive,
    MoveDoc,
    summary="Receive keys transferred to one of the operator's points into its stock",
    tag=TAG,
)
def receive(svc: Service, actor: Actor | None, data: Receive) -> Any:
    return svc.stock.receive(data.serials, actor=acting(actor))


@operation(
    "token.return",
    "POST",
    "/tokens/returns",
    Return,
    MoveDoc,
    summary="Send defective keys back to the supplier, with the reason",
    tag=TAG,
)
def send_back(svc: Service, actor: Actor | None, data: Return) -> Any:
    return svc.stock.return_defective(data.serials, reason=data.reason, actor=acting(actor))


@operation(
    "token.stock",
    "GET",
    "/tokens/stock",
    NoInput,
    list[CountDoc],
    summary="USB keys per point, model and state (in transit counted at the sending point)",
    tag=TAG,
    needs_actor=False,
)
def counts(svc: Service, actor: Actor | None, data: NoInput) -> Any:
    return svc.stock.counts(actor=actor)
