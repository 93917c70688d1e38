"""A USB key's own administration from a desk: registering its SO PIN with the center, and carrying out an
approved unlock deal (解锁) in two calls around the desk's work on the key."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from pki.desk.contract import Input, NoInput, acting, operation
from pki.desk.types import RecordId

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
    secrets=True,
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


class UnlockKey(Input):
    token_serial: str = Field(min_length=1, max_length=64)


class UnlockPlanDoc(BaseModel):
    request_id: int
    serial: str  # the certificate the deal concerns
    token_serial: str
    so_pins: list[str] = Field(repr=False)  # to try in this order; never printed, never logged
    new_so_pin: str = Field(repr=False)


class UnlockDone(Input):
    token_serial: str = Field(min_length=1, max_length=64)
    request_id: RecordId
    so_pin_changed: bool  # the key took the new SO PIN


class UnlockedDoc(BaseModel):
    request_id: int
    serial: str
    token_serial: str
    state: str
    so_pin_changed: bool


@operation(
    "token.unlock.begin",
    "POST",
    "/tokens/{token_serial}/unlock",
    UnlockKey,
    UnlockPlanDoc,
    summary="Start carrying out the approved unlock deal on a USB key: the deal and the key's SO PINs",
    tag=TAG,
    secrets=True,
)
def unlock_begin(svc: Service, actor: Actor | None, data: UnlockKey) -> Any:
    return svc.unlock.begin(data.token_serial, actor=acting(actor))


@operation(
    "token.unlock.finish",
    "POST",
    "/tokens/{token_serial}/unlock/done",
    UnlockDone,
    UnlockedDoc,
    summary="The key took the holder's new PIN (and the new SO PIN): the unlock deal completes",
    tag=TAG,
)
def unlock_finish(svc: Service, actor: Actor | None, data: UnlockDone) -> Any:
    return svc.unlock.finish(
        data.token_serial, data.request_id, actor=acting(actor), so_pin_changed=data.so_pin_changed
    )


class ResetPlanDoc(BaseModel):
    token_serial: str
    so_pins: list[str] = Field(repr=False)  # to try in this order; never printed, never logged


class ResetDone(Input):
    token_serial: str = Field(min_length=1, max_length=64)
    pending_used: bool  # the key took the SO PIN of a change not yet confirmed


class ResetDoc(BaseModel):
    token_serial: str
    reset: bool


@operation(
    "token.reset.begin",
    "POST",
    "/tokens/{token_serial}/reset",
    UnlockKey,
    ResetPlanDoc,
    summary="Start initialising again a USB key holding no good certificate: its SO PINs on record",
    tag=TAG,
    secrets=True,
)
def reset_begin(svc: Service, actor: Actor | None, data: UnlockKey) -> Any:
    return svc.token_reset.begin(data.token_serial, actor=acting(actor))


@operation(
    "token.reset.finish",
    "POST",
    "/tokens/{token_serial}/reset/done",
    ResetDone,
    ResetDoc,
    summary="The key was initialised again (erased) with its SO PIN on record",
    tag=TAG,
)
def reset_finish(svc: Service, actor: Actor | None, data: ResetDone) -> Any:
    svc.token_reset.finish(data.token_serial, actor=acting(actor), pending_used=data.pending_used)
    return {"token_serial": data.token_serial, "reset": True}
