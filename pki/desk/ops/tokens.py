"""USB keys: the issuance handshake with a desk holding the token (services/token_handshake.py), a renewal
onto the key holding the old key pair (renew.token.*: services/token_renewal.py), the inventory next to the
tokens the desk sees, and marks (lost, destroyed, returned, suspended, reinstated)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from pki.desk.contract import Input, acting, later, operation
from pki.desk.types import FileData, FileOut, Instant, RecordId, Serial, Text

if TYPE_CHECKING:
    from pki.services import Actor, Service

TAG = "usb-keys"
TokenSerial = Field(min_length=1, max_length=64)


class Begin(Input):
    request_id: RecordId
    token_serial: str | None = Field(default=None, min_length=1, max_length=64)


class Record(Input):
    request_id: RecordId
    token_serial: str = TokenSerial
    token_model: str = Field(default="", max_length=64)
    token_label: str = Field(default="", max_length=64)
    key_id: str = Field(pattern=r"^(?:[0-9a-f]{2}){1,64}$")  # CKA_ID in hex, whole bytes
    key_type: Literal["ec-p256", "rsa-2048"]
    label: str = Field(min_length=1, max_length=128)
    csr: FileData


class RequestToken(Input):
    request_id: RecordId


class Deliver(Input):
    request_id: RecordId
    token_serial: str = TokenSerial
    serial: str = Field(min_length=1, max_length=64)
    resumed: bool = False


class PendingDoc(BaseModel):
    request_id: int
    serial: str
    der: FileOut
    token_serial: str
    key_id: str
    label: str
    key_type: str
    not_valid_after: Instant
    module: str | None
    usbkey_model: str


class RecordedDoc(BaseModel):
    request_id: int
    serial: str
    der: FileOut
    not_valid_after: Instant


class SeenDoc(BaseModel):
    serial: str = Field(max_length=64)
    label: str = Field(default="", max_length=64)
    model: str = Field(default="", max_length=64)
    module: str = Field(default="", max_length=512)


class ListTokens(Input):
    seen: list[SeenDoc] = Field(default_factory=list, max_length=256)


class TokenRow(BaseModel):
    serial: str
    model: str
    label: str
    state: str
    holder_unit: str
    holder_credential: str
    certificates: int
    present: bool
    module: str
    updated_at: Instant | None
    point: str | None  # the acceptance point holding it
    transfer_to: str | None  # in transit to this point


class Mark(Input):
    serial: str = TokenSerial
    mark: Literal["lost", "destroyed", "returned", "suspended", "reinstated"]
    comment: Text = ""


class MarkedDoc(BaseModel):
    serial: str
    state: str
    revoked: list[str]


def _begun() -> Any:
    from pki.services.token_handshake import Begun

    return Begun


def _issued() -> Any:
    from pki.services.token_issuance import TokenIssued

    return TokenIssued


@operation(
    "token.begin",
    "POST",
    "/requests/{request_id}/token-issuance",
    Begin,
    later(_begun),
    summary="Start issuing onto a USB key: the checks, the objects' label, the model's module and key type",
    tag=TAG,
    reads_only=True,
)
def begin(svc: Service, actor: Actor | None, data: Begin) -> Any:
    return svc.token_handshake.begin(data.request_id, actor=acting(actor), token_serial=data.token_serial)


@operation(
    "token.record",
    "POST",
    "/requests/{request_id}/token-issuance/certificate",
    Record,
    RecordedDoc,
    summary="Issue for the key pair on the desk's USB key (proven by the CSR it signed); recorded as not yet on the key",
    tag=TAG,
    status=201,
)
def record(svc: Service, actor: Actor | None, data: Record) -> Any:
    from pki.services.token_handshake import SeenToken

    cert = svc.token_handshake.record(
        data.request_id,
        actor=acting(actor),
        token=SeenToken(data.token_serial, data.token_model, data.token_label),
        key_id=bytes.fromhex(data.key_id),
        key_type=data.key_type,
        label=data.label,
        csr=data.csr,
    )
    return {
        "request_id": data.request_id,
        "serial": cert.serial,
        "der": cert.der,
        "not_valid_after": cert.not_valid_after,
    }


@operation(
    "token.pending",
    "GET",
    "/requests/{request_id}/token-issuance",
    RequestToken,
    PendingDoc,
    summary="The certificate issued for the request and not yet on its USB key (to resume)",
    tag=TAG,
)
def pending(svc: Service, actor: Actor | None, data: RequestToken) -> Any:
    return svc.token_handshake.pending(data.request_id, actor=acting(actor))


@operation(
    "token.deliver",
    "POST",
    "/requests/{request_id}/token-issuance/delivery",
    Deliver,
    later(_issued),
    summary="The certificate is on the USB key and read back: delivered, the request issued",
    tag=TAG,
)
def deliver(svc: Service, actor: Actor | None, data: Deliver) -> Any:
    return svc.token_handshake.deliver(
        data.request_id,
        actor=acting(actor),
        token_serial=data.token_serial,
        serial=data.serial,
        resumed=data.resumed,
    )


# -- 续期 onto the key holding the old key pair (services/token_renewal.py) ---------------------------------


class RenewOnKey(Input):
    serial: Serial
    token_serial: str | None = Field(default=None, min_length=1, max_length=64)
    months: int | None = Field(default=None, ge=1, le=120)


class RenewalPlanDoc(BaseModel):
    serial: str
    der: FileOut  # the certificate renewed: its object on the key is replaced
    spki_sha256: str
    token_serial: str
    key_id: str
    label: str
    key_type: str
    usbkey_model: str
    module: str | None
    request_id: int | None  # the renew deal carried out; none for a direct renewal


class RecordRenewal(Input):
    serial: Serial
    token_serial: str = TokenSerial
    months: int | None = Field(default=None, ge=1, le=120)
    csr: FileData  # signed on the key by the old key pair: the proof that it is there


class RecordedRenewalDoc(BaseModel):
    serial: str
    renewal: str
    request_id: int
    der: FileOut
    not_valid_after: Instant


class RenewalRef(Input):
    serial: Serial


class WaitingRenewalDoc(BaseModel):
    serial: str
    renewal: str
    der: FileOut
    replaces: FileOut
    request_id: int
    token_serial: str
    key_id: str
    label: str
    key_type: str
    not_valid_after: Instant
    module: str | None
    usbkey_model: str


class DeliverRenewal(Input):
    serial: Serial
    token_serial: str = TokenSerial
    renewal: Serial
    resumed: bool = False


def _renewed() -> Any:
    from pki.services.token_renewal import RenewedOntoKey

    return RenewedOntoKey


@operation(
    "renew.token.begin",
    "POST",
    "/certificates/{serial}/renewal/token",
    RenewOnKey,
    RenewalPlanDoc,
    summary="Start renewing a certificate onto the USB key holding its key pair: the checks, and where the key pair is",
    tag=TAG,
    reads_only=True,
)
def renew_begin(svc: Service, actor: Actor | None, data: RenewOnKey) -> Any:
    return svc.token_renewal.begin(
        data.serial, actor=acting(actor), token_serial=data.token_serial, months=data.months
    )


@operation(
    "renew.token.record",
    "POST",
    "/certificates/{serial}/renewal/token/certificate",
    RecordRenewal,
    RecordedRenewalDoc,
    summary="Renew for the key pair on the desk's USB key (proven by a CSR it signed); recorded as not yet on the key",
    tag=TAG,
    status=201,
)
def renew_record(svc: Service, actor: Actor | None, data: RecordRenewal) -> Any:
    cert = svc.token_renewal.record(
        data.serial, actor=acting(actor), token_serial=data.token_serial, csr=data.csr, months=data.months
    )
    return {
        "serial": data.serial,
        "renewal": cert.serial,
        "request_id": cert.request_id,
        "der": cert.der,
        "not_valid_after": cert.not_valid_after,
    }


@operation(
    "renew.token.pending",
    "GET",
    "/certificates/{serial}/renewal/token",
    RenewalRef,
    WaitingRenewalDoc,
    summary="The renewal of a certificate issued for its USB key and not yet on it (to resume)",
    tag=TAG,
)
def renew_pending(svc: Service, actor: Actor | None, data: RenewalRef) -> Any:
    return svc.token_renewal.pending(data.serial, actor=acting(actor))


@operation(
    "renew.token.deliver",
    "POST",
    "/certificates/{serial}/renewal/token/delivery",
    DeliverRenewal,
    later(_renewed),
    summary="The renewal is on the USB key beside its key pair and read back: delivered (a renew deal issued)",
    tag=TAG,
)
def renew_deliver(svc: Service, actor: Actor | None, data: DeliverRenewal) -> Any:
    return svc.token_renewal.deliver(
        data.serial,
        actor=acting(actor),
        token_serial=data.token_serial,
        renewal=data.renewal,
        resumed=data.resumed,
    )


class LockedToken(Input):
    token_serial: str = TokenSerial


def _locked_key() -> Any:
    from pki.services.token_issuance import LockedKey

    return LockedKey


@operation(
    "token.locked",
    "GET",
    "/tokens/{token_serial}/locked-pin",
    LockedToken,
    later(_locked_key),
    summary="A USB key whose holder's PIN is locked: the certificate on it that its unlock deal names",
    tag=TAG,
)
def locked_key(svc: Service, actor: Actor | None, data: LockedToken) -> Any:
    return svc.token_issuance.locked_key(data.token_serial, actor=acting(actor))


@operation(
    "token.list",
    "POST",
    "/tokens/inventory",
    ListTokens,
    list[TokenRow],
    summary="The USB keys of the operator's acceptance points next to the keys the desk sees",
    tag=TAG,
    needs_actor=False,
    reads_only=True,
)
def inventory(svc: Service, actor: Actor | None, data: ListTokens) -> Any:
    from pki.services.inventory import SeenToken as Present

    return svc.inventory.tokens(
        [Present(t.serial, t.label, t.model, t.module) for t in data.seen], actor=actor
    )


@operation(
    "token.mark",
    "POST",
    "/tokens/{serial}/marks",
    Mark,
    MarkedDoc,
    summary="Mark a USB key lost, destroyed, returned, suspended or reinstated (tokens.toml [inventory])",
    tag=TAG,
)
def mark(svc: Service, actor: Actor | None, data: Mark) -> Any:
    done = svc.inventory.mark(data.serial, data.mark, actor=acting(actor), comment=data.comment)
    return {"serial": done.serial, "state": done.state.value, "revoked": done.revoked}


class TokenObject(BaseModel):
    key_id: str = Field(pattern=r"^(?:[0-9a-f]{2}){0,64}$")
    label: str = Field(max_length=128)
    cls: str = Field(max_length=32)


class TokenObjects(Input):
    token_serial: str = TokenSerial
    objects: list[TokenObject] = Field(max_length=1024)


class LeftoverDoc(BaseModel):
    key_id: str
    label: str
    classes: list[str]
    request_id: int | None


class Cleaned(Input):
    token_serial: str = TokenSerial
    removed: list[LeftoverDoc] = Field(max_length=1024)
    failed: str | None = Field(default=None, max_length=500)


class Noted(BaseModel):
    recorded: bool


def _objects(data: TokenObjects) -> list[tuple[bytes, str, str]]:
    return [(bytes.fromhex(o.key_id), o.label, o.cls) for o in data.objects]


@operation(
    "token.leftovers",
    "POST",
    "/tokens/{token_serial}/leftovers",
    TokenObjects,
    list[LeftoverDoc],
    summary="Of the pkictl objects a desk read from its USB key, the key pairs no certificate record places there",
    tag=TAG,
    needs_actor=False,
    reads_only=True,
)
def leftovers(svc: Service, actor: Actor | None, data: TokenObjects) -> Any:
    return svc.token_cleanup.leftovers_among(data.token_serial, _objects(data))


@operation(
    "token.clean",
    "POST",
    "/tokens/{token_serial}/cleaning",
    TokenObjects,
    list[LeftoverDoc],
    summary="Begin removing leftovers from a USB key: what may be removed, audited before the key is touched",
    tag=TAG,
)
def clean(svc: Service, actor: Actor | None, data: TokenObjects) -> Any:
    return svc.token_cleanup.begin_removal(data.token_serial, _objects(data), actor=acting(actor))


@operation(
    "token.cleaned",
    "POST",
    "/tokens/{token_serial}/cleaning/outcome",
    Cleaned,
    Noted,
    summary="What the desk removed from its USB key, and what failed, for the audit trail",
    tag=TAG,
)
def cleaned(svc: Service, actor: Actor | None, data: Cleaned) -> Any:
    from pki.services.token_cleanup import Leftover

    removed = [Leftover(x.key_id, x.label, tuple(x.classes), x.request_id) for x in data.removed]
    svc.token_cleanup.end_removal(data.token_serial, removed, data.failed, actor=acting(actor))
    return {"recorded": True}
