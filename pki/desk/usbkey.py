"""The desk's half of issuing onto a USB key through the center's API (services/token_handshake.py is the
center's half). The key pair is made on the token and never leaves it; the center sees a CSR the token
signed, and answers with the certificate, which is written beside the key and read back before delivery.

A failure before the center recorded the certificate removes the new key pair; after it, the certificate
waits on the center for ``pkictl issue ID --resume`` with the same token.

A renewal onto the key (services/token_renewal.py) makes no key pair: the key pair already there signs a
CSR (the proof), the center issues, the desk writes the new certificate object in place of the old one; after
the center recorded it, ``pkictl renew SERIAL --token-serial S --resume`` finishes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from pki.ca.keys import spki_sha256
from pki.errors import TokenError
from pki.services.token_device import (
    HoldingDevice,
    TokenDevice,
    not_this_token,
    put_on_token,
    refuse_labelled,
    replace_on_token,
    token_csr,
)

OpenDevice = Callable[[], AbstractContextManager[TokenDevice]]


class Caller(Protocol):
    def call(self, name: str, /, **fields: Any) -> Any: ...


def issue(desk: Caller, request_id: int, open_device: OpenDevice, token_serial: str, key_type: str) -> Any:
    """Begin, generate and sign on the token, record, write and read back, deliver. The delivery document."""
    import base64

    begun = desk.call("token.begin", request_id=request_id, token_serial=token_serial)
    label = begun["label"]
    with open_device() as device:
        refuse_labelled(device, label, request_id)
        key_id, private_key = device.generate(key_type, label)
        try:
            csr = token_csr(private_key, label)
            recorded = desk.call(
                "token.record",
                request_id=request_id,
                token_serial=device.serial,
                token_model=device.model,
                token_label=device.label,
                key_id=key_id.hex(),
                key_type=key_type,
                label=label,
                csr=csr.public_bytes(Encoding.DER),
            )
        except BaseException as failure:
            # Removed only when the center says it recorded nothing for this key pair: a failure after its
            # commit (an answer lost on the way, a server gone) must leave the key for --resume.
            if _recorded(desk, request_id, key_id, failure) is False:
                _remove(device, key_id, failure)
            raise
        der = base64.b64decode(recorded["der"])
        return _write_and_deliver(
            desk, device, request_id, recorded["serial"], der, key_id, label, resumed=False
        )


def resume(desk: Caller, request_id: int, open_device: OpenDevice, waiting: dict[str, Any]) -> Any:
    """Write the certificate the center recorded for ``request_id`` (``waiting``: its token.pending document)
    onto its token, then deliver it."""
    import base64

    der = base64.b64decode(waiting["der"])
    with open_device() as device:
        if device.serial != waiting["token_serial"]:
            raise TokenError(
                f"certificate {waiting['serial']} belongs on token {waiting['token_serial']}, not on "
                f"{device.serial}: insert that token",
                message_zh="请插入签发时使用的USB Key",
                ckr="CKR_TOKEN_NOT_PRESENT",
            )
        key_id = bytes.fromhex(waiting["key_id"])
        public = device.public_key(key_id)
        certified = x509.load_der_x509_certificate(der).public_key()
        if public is None or spki_sha256(public) != spki_sha256(certified):  # type: ignore[arg-type]
            raise TokenError(
                f"token {device.serial} no longer holds the key pair of certificate {waiting['serial']} "
                f"(id {waiting['key_id']}): revoke it and issue anew",
                message_zh="USB Key上已无该证书对应的密钥",
            )
        return _write_and_deliver(
            desk, device, request_id, waiting["serial"], der, key_id, waiting["label"], resumed=True
        )


def _write_and_deliver(
    desk: Caller,
    device: TokenDevice,
    request_id: int,
    serial: str,
    der: bytes,
    key_id: bytes,
    label: str,
    *,
    resumed: bool,
) -> Any:
    put_on_token(_Sent(serial, der, request_id), device, key_id, label, resumed=resumed)
    return desk.call(
        "token.deliver", request_id=request_id, token_serial=device.serial, serial=serial, resumed=resumed
    )


@dataclass(frozen=True)
class _Sent:
    """The certificate the center sent, as phase 3 writes it."""

    serial: str
    der: bytes
    request_id: int | None


def _recorded(desk: Caller, request_id: int, key_id: bytes, failure: BaseException) -> bool | None:
    """Whether the center holds a certificate for ``key_id`` waiting for this token; None when it cannot
    say (it is unreachable): then the key pair stays, and ``failure`` says what to do."""
    from pki.errors import NotFoundError, PkiError

    keep = (
        f"the new key pair {key_id.hex()} stays on the token: run 'pkictl issue {request_id} --resume' once "
        "the server answers, or remove it with 'pkictl token clean' on the center's host if it recorded nothing"
    )
    try:
        waiting = desk.call("token.pending", request_id=request_id)
    except NotFoundError:
        return False
    except (PkiError, KeyboardInterrupt):
        failure.add_note(keep)
        return None
    if waiting["key_id"] == key_id.hex():
        failure.add_note(
            f"the center recorded certificate {waiting['serial']} for it: finish with "
            f"'pkictl issue {request_id} --resume'"
        )
        return True
    return False


def _remove(device: TokenDevice, key_id: bytes, failure: BaseException) -> None:
    """Nothing recorded on the center: leave the token as we found it (and say so if it cannot be)."""
    try:
        device.remove(key_id)
    except TokenError as cleanup:
        failure.add_note(f"the new key pair {key_id.hex()} is still on the token: {cleanup.message}")


# -- 续期 onto the key holding the old key pair (services/token_renewal.py is the center's half) ----------------

OpenHolding = Callable[[], AbstractContextManager[HoldingDevice]]


def refuse_other_token(plan: dict[str, Any], presented: str) -> None:
    """Before the PIN is asked for: the key presented must be the one the certificate's key pair is on
    (``plan``: the renew.token.begin or renew.token.pending document)."""
    if presented != plan["token_serial"]:
        raise not_this_token(plan["serial"], plan["token_serial"], presented)


def renew(desk: Caller, plan: dict[str, Any], open_device: OpenHolding, *, months: int | None) -> Any:
    """Renew ``plan["serial"]`` (its renew.token.begin document) onto the key holding its key pair: the key
    pair found and proven there, the renewal recorded, written beside it in place of the old certificate
    object, delivered. Nothing is written to the key before the center recorded the renewal; after that a
    failure leaves it for --resume. The delivery document."""
    import base64

    serial, key_id = plan["serial"], bytes.fromhex(plan["key_id"])
    with open_device() as device:
        refuse_other_token(plan, device.serial)
        proof = _proof(device, serial, key_id, plan["spki_sha256"], plan["label"])
        recorded = desk.call(
            "renew.token.record", serial=serial, token_serial=device.serial, months=months, csr=proof
        )
        return _replace_and_deliver(
            desk,
            device,
            serial,
            recorded["renewal"],
            base64.b64decode(recorded["der"]),
            base64.b64decode(plan["der"]),
            key_id,
            plan["label"],
            resumed=False,
        )


def resume_renewal(desk: Caller, waiting: dict[str, Any], open_device: OpenHolding) -> Any:
    """Finish a renewal the center recorded for the key (``waiting``: its renew.token.pending document)."""
    import base64

    der = base64.b64decode(waiting["der"])
    key_id = bytes.fromhex(waiting["key_id"])
    with open_device() as device:
        refuse_other_token(waiting, device.serial)
        public = device.public_key(key_id)
        certified = x509.load_der_x509_certificate(der).public_key()
        if public is None or spki_sha256(public) != spki_sha256(certified):  # type: ignore[arg-type]
            raise _not_the_key_pair(device.serial, waiting["serial"], waiting["key_id"])
        return _replace_and_deliver(
            desk,
            device,
            waiting["serial"],
            waiting["renewal"],
            der,
            base64.b64decode(waiting["replaces"]),
            key_id,
            waiting["label"],
            resumed=True,
        )


def _proof(device: HoldingDevice, serial: str, key_id: bytes, spki: str, label: str) -> bytes:
    """A CSR the key pair ``key_id`` on the key signs, once its public half is seen to be certificate
    ``serial``'s (``spki``) and its private half is there; the center checks the signature again."""
    public = device.public_key(key_id)
    if public is None or spki_sha256(public) != spki:
        raise _not_the_key_pair(device.serial, serial, key_id.hex())
    private_key = device.signing_key(key_id)
    if private_key is None:
        raise TokenError(
            f"token {device.serial} holds no private key with id {key_id.hex()}: certificate {serial}'s key "
            "pair is not whole on it, and its renewal would be of no use (nothing was written)",
            message_zh="USB Key中缺少原证书的私钥",
        )
    return token_csr(private_key, label).public_bytes(Encoding.DER)


def _not_the_key_pair(token_serial: str, serial: str, key_id: str) -> TokenError:
    return TokenError(
        f"token {token_serial} holds no key pair with id {key_id} whose public key is certificate {serial}'s: "
        "it is not the key that certificate was issued onto, or its key pair was changed (nothing was written)",
        message_zh="USB Key中没有原证书对应的密钥",
    )


def _replace_and_deliver(
    desk: Caller,
    device: HoldingDevice,
    serial: str,
    renewal: str,
    der: bytes,
    replaces: bytes,
    key_id: bytes,
    label: str,
    *,
    resumed: bool,
) -> Any:
    resume = f"pkictl renew {serial} --token-serial {device.serial} --resume"
    replace_on_token(_Sent(renewal, der, None), device, key_id, label, replaces, resume)
    return desk.call(
        "renew.token.deliver",
        serial=serial,
        token_serial=device.serial,
        renewal=renewal,
        resumed=resumed,
    )


def clean(desk: Caller, device: Any, *, remove: bool) -> list[dict[str, Any]]:
    """What an interrupted issuance left on ``device`` (a logged-in key with ``objects_with_prefix`` and
    ``remove_labelled``): listed, or with ``remove`` removed, the center deciding and auditing each step."""
    from pki.services.token_cleanup import Leftover, remove_found
    from pki.services.token_issuance import OBJECT_PREFIX

    objects = [
        {"key_id": key_id.hex(), "label": label, "cls": cls}
        for key_id, label, cls in device.objects_with_prefix(OBJECT_PREFIX)
    ]
    if not remove:
        found: list[dict[str, Any]] = desk.call(
            "token.leftovers", token_serial=device.serial, objects=objects
        )
        return found
    docs = desk.call("token.clean", token_serial=device.serial, objects=objects)
    chosen = [Leftover(x["key_id"], x["label"], tuple(x["classes"]), x["request_id"]) for x in docs]

    def done(removed: list[Leftover], failed: str | None) -> None:
        outcome = [{**asdict(x), "classes": list(x.classes)} for x in removed]
        desk.call("token.cleaned", token_serial=device.serial, removed=outcome, failed=failed)

    removed = remove_found(device, chosen, done)
    return [{**asdict(x), "classes": list(x.classes)} for x in removed]
