"""A USB key's own administration from a desk: registering its SO PIN with the center."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from pki.desk.contract import Input, NoInput, acting, operation

if TYPE_CHECKING:
    from pki.services import Actor, Service

TAG = "tokens"


class RegisterSoPin(Input):
    serial: str = Field(min_length=1, max_length=64)
    so_pin: str = Field(min_length=4, max_length=64, repr=False)
    replace: bool = False  # a key initialised anew


class SoPinDoc(BaseModel):
    serial: str
    registered: bool


@operation(
    "token.so_pin.register",
    "PUT",
    "/tokens/{serial}/so-pin",
    RegisterSoPin,
    SoPinDoc,
    summary="Keep a USB key's SO PIN, sealed, for unblocking its holder's PIN later (never shown again)",
    tag=TAG,
)
def register_so_pin(svc: Service, actor: Actor | None, data: RegisterSoPin) -> Any:
    svc.token_secrets.register(data.serial, data.so_pin, actor=acting(actor), replace=data.replace)
    return {"serial": data.serial, "registered": True}


class AllowedDoc(BaseModel):
    allowed: bool


@operation(
    "token.admin.allowed",
    "GET",
    "/tokens/administration",
    NoInput,
    AllowedDoc,
    summary="Whether the operator may initialise keys and keep their SO PINs (asked before touching a key)",
    tag=TAG,
)
def admin_allowed(svc: Service, actor: Actor | None, data: NoInput) -> Any:
    svc.token_secrets.require_admin(acting(actor))
    return {"allowed": True}
