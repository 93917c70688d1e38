"""The OCSP responder (RFC 6960): delegated signers, nonce echoed, status read fresh from the database.

Responses are never cached, so a revocation shows in the very next response. Error statuses
(malformedRequest, unauthorized, internalError) are unsigned, as §2.3 requires.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import bindparam, select
from sqlmodel import col

from pki.ca import certs, ocsp_der
from pki.ca.keys import SigningKey, signature_hash
from pki.ca.sm2 import Sm2PrivateKey
from pki.ca.validity import whole_seconds
from pki.db import READONLY_OPTION
from pki.enums import CaRole, CertificateStatus
from pki.errors import NotFoundError
from pki.models import Certificate, CertificateAuthority
from pki.services.authority import ROTATE_WITHIN, AuthorityService
from pki.services.context import Context

log = logging.getLogger(__name__)
_CAS = CertificateAuthority.__table__  # type: ignore[attr-defined]
RELOAD_BACKOFF = timedelta(hours=1)
MAX_NONCE = 128  # octets (RFC 9654 recommends at most 32; we accept what RFC 6960 clients send)
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_STATUS_SQL = {
    "qmark": "SELECT status, revoked_at, revocation_reason FROM certificate WHERE ca_id = ? AND serial = ?",
    "format": "SELECT status, revoked_at, revocation_reason FROM certificate WHERE ca_id = %s AND serial = %s",
}
_REASONS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "certificateHold": x509.ReasonFlags.certificate_hold,
}
# Built once, with bound parameters: each request only binds and runs it.
_STATUS = select(
    col(Certificate.status), col(Certificate.revoked_at), col(Certificate.revocation_reason)
).where(col(Certificate.ca_id) == bindparam("ca"), col(Certificate.serial) == bindparam("serial"))


@dataclass(frozen=True)
class _Responder:
    ca_id: int
    signer: x509.Certificate
    signer_key: SigningKey
    for_cas: bool = False  # the root's: answers for the CA certificates it issued, not end entities

    @property
    def ends(self) -> datetime:
        return self.signer.not_valid_after_utc


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


class OcspService:
    def __init__(self, ctx: Context, authority: AuthorityService) -> None:
        self._ctx = ctx
        self._authority = authority
        self._by_hash: dict[tuple[str, bytes, bytes], _Responder] | None = None
        self._refresh_at = datetime.max.replace(tzinfo=UTC)
        self._rotation_lock = threading.Lock()
        # A read-only connection: on SQLite it begins with a plain BEGIN, so a responder never waits for (or
        # blocks) a writer such as a CRL publication or a batch issuance.
        self._reader = ctx.engine.execution_options(**{READONLY_OPTION: True})
        # Constant text; the values are always bound by the driver.
        self._sql = _STATUS_SQL["qmark" if ctx.engine.dialect.paramstyle == "qmark" else "format"]

    def _responders(self) -> dict[tuple[str, bytes, bytes], _Responder]:
        """(hash algorithm, issuer name hash, issuer key hash) -> responder, for the root and every issuing CA.

        Built on first use and again when a signer nears its end; a signer that ends within ROTATE_WITHIN is
        rotated first (needs the issuing CA keys), so the responder never signs with an expired certificate.
        """
        table = self._by_hash
        if table is None or self._ctx.now() >= self._refresh_at:
            with self._rotation_lock:
                if self._by_hash is None or self._ctx.now() >= self._refresh_at:
                    self._by_hash = self._build()
                table = self._by_hash
        return table

    def _build(self) -> dict[tuple[str, bytes, bytes], _Responder]:
        # The responder only reloads: rotation (which needs the issuing CA keys) belongs to `crl publish`.
        self._authority.refresh()
        table: dict[tuple[str, bytes, bytes], _Responder] = {}
        for ca in self._authority.loaded().values():
            if ca.record.role not in (CaRole.ISSUING, CaRole.ROOT):
                continue
            try:
                signer = self._authority.ocsp_signer_for(ca)
            except NotFoundError:  # a root from before its signer existed: `pkictl init` adds one
                continue
            responder = _Responder(
                ca.id, signer.certificate, self._authority.key_for(signer), ca.record.role is CaRole.ROOT
            )
            name_der = ca.certificate.subject.public_bytes()
            key_bits = certs.subject_public_key_bits(ca.certificate)
            for algo in _HASHES:
                table[(algo, hashlib.new(algo, name_der).digest(), hashlib.new(algo, key_bits).digest())] = (
                    responder
                )
        # Look again for a rotated signer every hour once one is inside its rotation window.
        earliest = min((r.ends for r in table.values()), default=self._ctx.now() + ROTATE_WITHIN)
        self._refresh_at = max(earliest - ROTATE_WITHIN, self._ctx.now() + RELOAD_BACKOFF)
        return table

    def warm(self) -> int:
        """Load every responder key now (a server calls this at start, so a passphrase prompt happens there)."""
        return len(self._responders())

    def respond(self, request_der: bytes, *, connection: Any = None) -> bytes:
        """A DER OCSPResponse for a DER OCSPRequest; never raises.

        ``connection``: a driver (DB-API) connection in autocommit mode that the caller owns and uses from one
        thread only (the dedicated responder keeps one per process); by default a pooled read-only one.
        """
        try:
            req = ocsp.load_der_ocsp_request(request_der)
            nonce = _nonce(req)
            algo = req.hash_algorithm.name
        except (ValueError, TypeError, x509.UnsupportedGeneralNameType):
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        except Exception:  # cryptography raises a few other types on garbage
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        try:
            responder = self._responders().get((algo, req.issuer_name_hash, req.issuer_key_hash))
            if responder is None:
                return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
            if responder.ends <= self._ctx.now():  # never sign with an expired responder certificate
                log.error(
                    "OCSP signer of CA %s has expired: run 'pkictl crl publish' to rotate it", responder.ca_id
                )
                return _unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)
            return self._signed(req, responder, nonce, connection)
        except Exception:
            log.exception("OCSP response failed")
            return _unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)

    def driver_connection(self) -> Any:
        """A driver connection for ``respond(connection=...)``, in autocommit mode; the caller closes it."""
        raw = self._ctx.engine.raw_connection()
        driver = raw.driver_connection
        raw.detach()  # the caller's now, not the pool's
        if self._ctx.engine.dialect.name == "postgresql":
            driver.autocommit = True  # type: ignore[union-attr]
        return driver

    def _lookup(
        self, ca_id: int, serial: str, connection: Any = None
    ) -> tuple[str, datetime | None, str | None] | None:
        """(status, revoked_at UTC, reason) of a certificate, fresh from the database on every call.

        The hot path of the responder: one constant statement handed straight to the driver (no SQL compilation,
        no ORM, no type processing) on a read-only connection, so it never waits for a writer.
        """
        if connection is not None:
            cur = connection.cursor()
            try:
                cur.execute(self._sql, (ca_id, serial))
                row = cur.fetchone()
            finally:
                cur.close()
        else:
            with self._reader.connect() as conn:
                row = conn.exec_driver_sql(self._sql, (ca_id, serial)).first()
        if row is None:
            return None
        status, revoked_at, reason = row
        if isinstance(revoked_at, str):  # SQLite hands back the stored text
            revoked_at = datetime.fromisoformat(revoked_at)
        if revoked_at is not None and revoked_at.tzinfo is None:
            revoked_at = revoked_at.replace(tzinfo=UTC)
        return str(status), revoked_at, reason

    def _ca_lookup(self, root_id: int, serial: str) -> tuple[str, datetime | None, str | None] | None:
        """A CA certificate the root issued is good while its record holds that serial (CA certificates
        are not revoked here; one replaced by re-certification is unknown)."""
        with self._reader.connect() as conn:
            found = conn.execute(
                select(_CAS.c.id).where(_CAS.c.parent_id == root_id, _CAS.c.serial == serial)
            ).first()
        return (CertificateStatus.VALID.value, None, None) if found is not None else None

    def _signed(
        self, req: ocsp.OCSPRequest, responder: _Responder, nonce: bytes | None, connection: Any = None
    ) -> bytes:
        serial = f"{req.serial_number:X}"
        if responder.for_cas:
            row = self._ca_lookup(responder.ca_id, serial)
        else:
            row = self._lookup(responder.ca_id, serial, connection)
        now = whole_seconds(self._ctx.now())
        status, revoked_at, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
        if row is not None:
            if row[0] == CertificateStatus.REVOKED.value and row[1] is not None:
                status, revoked_at = ocsp.OCSPCertStatus.REVOKED, row[1].replace(microsecond=0)
                # Like the CRL, leave the reason out rather than say unspecified (RFC 5280 §5.3.1).
                reason = None if row[2] == "unspecified" else _REASONS.get(str(row[2]))
            else:
                status = ocsp.OCSPCertStatus.GOOD
        next_update = now + timedelta(hours=self._ctx.policies.ca.ocsp_response_validity_hours)
        if isinstance(responder.signer_key, Sm2PrivateKey):  # cryptography cannot sign SM2: the same answer
            return ocsp_der.basic_response(
                signer_der=responder.signer.public_bytes(Encoding.DER),
                signer_key=responder.signer_key,
                hash_algorithm=req.hash_algorithm.name,
                issuer_name_hash=req.issuer_name_hash,
                issuer_key_hash=req.issuer_key_hash,
                serial=req.serial_number,
                status=status.name.lower(),
                revoked_at=revoked_at,
                reason=reason.name if reason is not None else None,
                this_update=now,
                next_update=next_update,
                nonce=nonce,
            )
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                req.issuer_name_hash,
                req.issuer_key_hash,
                req.serial_number,
                req.hash_algorithm,
                status,
                now,
                next_update,
                revoked_at,
                reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, responder.signer)
            .certificates([responder.signer])
        )
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        response = builder.sign(responder.signer_key, signature_hash(responder.signer_key))
        return response.public_bytes(Encoding.DER)


def _nonce(req: ocsp.OCSPRequest) -> bytes | None:
    try:
        value = req.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None
    if not 0 < len(value) <= MAX_NONCE:
        raise ValueError("nonce length out of range")
    return value
