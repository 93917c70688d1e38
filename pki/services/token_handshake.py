"""Issuing onto a USB key plugged into a desk elsewhere: the phases of services/token_issuance.py, one call
each, for a desk that holds the token while the center holds the database and the CA key.

1. ``begin``: the read-only checks of phase 1 (role, duties, state, nothing pending; the token usable when
   its serial is given) and what the desk needs: the objects' label, the module and key type for the
   request's USBKEY model (the center's tokens.toml).
2. the desk generates the key pair on its token and has the token sign a CSR.
3. ``record``: phase 2 in one transaction, the public key proven by the CSR's signature: the certificate
   issued by the one issuance function, recorded as not delivered with where it goes (token serial,
   label, model, key id). The desk removes its key pair if this is refused.
4. the desk writes the certificate beside the key and reads it back.
5. ``deliver``: phase 4 in one transaction: delivered, the token issued to the unit, the request 'issued'.

``pending`` serves a resume: the certificate recorded for the request and where it goes. What the server
trusts from the desk is what it can check: the CSR's signature, the session's operator, the token serial it
is told; every rule is decided here, as for a local issuance.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from pki.ca.keys import PublicKey, algorithm_of
from pki.enums import Action, Deal
from pki.errors import ConflictError, FieldError, NotFoundError, ValidationError
from pki.models import Certificate
from pki.services.context import Actor, Context
from pki.services.issuance import csr_public_key
from pki.services.requests import SUBJECT as REQUEST
from pki.services.token_issuance import TokenIssuanceService, TokenIssued, WaitingCertificate, object_label


@dataclass(frozen=True)
class Begun:
    request_id: int
    label: str  # CKA_LABEL for the key pair and the certificate
    usbkey_model: str
    module: str | None  # the model's PKCS#11 module in the center's tokens.toml, if it knows the model
    key_type: str | None  # the model's default key type


@dataclass(frozen=True)
class SeenToken:
    """The token as the desk reports it (what _record_in and the inventory need)."""

    serial: str
    model: str
    label: str


@dataclass(frozen=True)
class ProvenKey:
    """A key pair on the desk's token, its public key proven by a CSR the token signed."""

    key_id: bytes
    label: str
    proven: PublicKey

    def public_key(self) -> PublicKey:
        return self.proven


@dataclass(frozen=True)
class Pending:
    request_id: int
    serial: str
    der: bytes
    token_serial: str
    key_id: str
    label: str
    key_type: str
    not_valid_after: datetime
    module: str | None  # the PKCS#11 module of the request's USBKEY model (tokens.toml), if known
    usbkey_model: str


class TokenHandshakeService:
    def __init__(self, ctx: Context, issuing: TokenIssuanceService) -> None:
        self._ctx = ctx
        self._issuing = issuing

    def begin(self, request_id: int, *, actor: Actor, token_serial: str | None = None) -> Begun:
        """Phase 1's checks and the desk's instructions. Raises what a local issuance would."""
        checked = self._issuing._check(request_id, actor, token_serial or "")
        model = self._ctx.policies.tokens.model(checked.model)
        return Begun(
            request_id,
            object_label(request_id, checked.credential),
            checked.model,
            model.module if model else None,
            model.key_type(None) if model else None,
        )

    def record(
        self,
        request_id: int,
        *,
        actor: Actor,
        token: SeenToken,
        key_id: bytes,
        key_type: str,
        label: str,
        csr: bytes,
    ) -> Certificate:
        """Phase 2: issue for the public key of ``csr`` (its signature checked), not yet delivered."""
        if not key_id or len(key_id) > 64:
            raise ValidationError([FieldError("key_id", "1 to 64 bytes, hex", "密钥标识无效")])
        public = self._issuing._issuance.checked_key(csr_public_key(csr))
        checked = self._issuing._check(request_id, actor, token.serial)
        self._ctx.policies.tokens.key_type_for(checked.model, key_type)
        if algorithm_of(public) != key_type:
            raise ValidationError(
                [FieldError("key_type", f"the CSR's key is not {key_type}", "证书请求的密钥类型与所报不符")]
            )
        expected = object_label(request_id, checked.credential)
        if label != expected:
            raise ValidationError(
                [
                    FieldError(
                        "label", f"the objects of request {request_id} are labelled {expected!r}", "标签无效"
                    )
                ]
            )
        return self._issuing._record_in(
            self._unordered
            if checked.deal is Deal.NEW
            else self._ctx.write,  # see TokenIssuanceService._record
            request_id,
            token,
            ProvenKey(key_id, label, public),
            key_type,
            actor,
        )

    def pending(self, request_id: int, *, actor: Actor) -> Pending:
        """The certificate recorded for ``request_id`` and not yet on its token (for a resume)."""
        found, model_name = self._waiting(request_id, actor)
        cert, placement = found.certificate, found.placement
        model = self._ctx.policies.tokens.model(model_name)
        return Pending(
            request_id,
            cert.serial,
            cert.der,
            found.token_serial,
            placement.key_id,
            placement.label,
            placement.key_type,
            cert.not_valid_after,
            model.module if model else None,
            model_name,
        )

    def deliver(
        self, request_id: int, *, actor: Actor, token_serial: str, serial: str, resumed: bool = False
    ) -> TokenIssued:
        """Phase 4, once the desk has written the certificate and read it back."""
        found, _ = self._waiting(request_id, actor)
        cert, placement = found.certificate, found.placement
        if (cert.serial, found.token_serial) != (serial.upper(), token_serial):
            raise ConflictError(
                f"request {request_id} waits for certificate {cert.serial} on token {found.token_serial}, "
                f"not {serial} on {token_serial}",
                message_zh="证书或USB Key与签发记录不符",
            )
        written: Future[None] = Future()
        written.set_result(None)
        self._issuing._deliver(self._unordered, cert, token_serial, actor, written)
        return TokenIssued(
            request_id,
            cert.serial,
            token_serial,
            placement.label,
            placement.key_id,
            placement.key_type,
            cert.not_valid_after,
            resumed,
        )

    def _waiting(self, request_id: int, actor: Actor) -> tuple[WaitingCertificate, str]:
        """The certificate recorded for ``request_id`` and not yet on its token, the actor checked first; and
        the USBKEY model the acceptor recorded."""
        with (
            self._ctx.denials_recorded(actor, Action.ISSUE.value, REQUEST, request_id),
            self._ctx.read() as s,
        ):
            req = self._issuing._check_actor(s, request_id, actor)
            found = self._issuing._pending(s, request_id)
        if found is None:
            raise NotFoundError(
                f"request {request_id} has no certificate waiting to be written to a token",
                message_zh="该申请没有待写入USB Key的证书",
            )
        return found, req.usbkey_model

    @contextmanager
    def _unordered(self) -> Iterator[Session]:
        """The write transaction of the desk's steps (record, deliver): left out of the writers' order, their
        rules rest on the request's and the USB key's rows they lock (and issuance on its key lock)."""
        with self._ctx.write(ordered=False) as s:
            yield s
