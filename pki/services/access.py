"""Access decisions: may a presented certificate connect to a platform at an instant?

The chain and signatures are checked by OpenSSL (pyOpenSSL's X509Store with our root as the only trust
anchor, the issuing CAs as untrusted intermediates, the verification time set to the instant asked about).
Revocation comes from our own certificate records, the data the CRLs and OCSP answers are built from: it
is exact at any instant (a published CRL is only as fresh as its thisUpdate, and a CRL checked at a past or
future instant would be refused as not yet valid or expired). The rules themselves are policies/cutover.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import crypto
from sqlmodel import select

from pki.clock import CHINA_TZ
from pki.enums import CaRole
from pki.errors import FieldError, ValidationError
from pki.models import Certificate, Party
from pki.services.authority import AuthorityService
from pki.services.context import Context
from policies.cutover import CertificateFacts, Decision, access_decision, decision_for_problem

# OpenSSL verify codes for the leaf's own validity period: reported by our rules instead, in our words.
_X509_V_ERR_CERT_NOT_YET_VALID = 9
_X509_V_ERR_CERT_HAS_EXPIRED = 10
MAX_CERTIFICATE = 64 * 1024


@dataclass(frozen=True)
class AccessResult:
    platform: str
    at: datetime
    allowed: bool
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    serial: str | None = None
    credential_number: str | None = None
    kind: str | None = None
    party: str | None = None  # the registered party's name, when the USCC is registered

    @property
    def decision(self) -> str:
        return "allow" if self.allowed else "deny"


def parse_instant(text: str, *, field: str = "at") -> datetime:
    """An ISO 8601 instant (``Z`` or an offset); without an offset it is China Standard Time, what people
    read on screen. Raises ValidationError naming ``field``."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value)
    except ValueError:
        raise ValidationError(
            [
                FieldError(
                    field,
                    f"{text!r} is not an ISO 8601 instant such as 2020-11-15T00:00:00+08:00",
                    "时间格式无效（例：2020-11-15T00:00:00+08:00）",
                )
            ]
        ) from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:  # far ones overflow the arithmetic done with them
        raise ValidationError(
            [FieldError(field, f"{text!r}: the year must be {MIN_YEAR} to {MAX_YEAR}", "时间超出范围")]
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CHINA_TZ)


MIN_YEAR, MAX_YEAR = 1970, 9000


def parse_certificate(data: bytes) -> x509.Certificate:
    """A PEM or DER certificate; ValidationError (field ``certificate``) otherwise."""
    if not data or len(data) > MAX_CERTIFICATE:
        raise ValidationError(
            [FieldError("certificate", "a certificate (PEM or DER) is required", "请提供证书")]
        )
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise ValidationError(
            [FieldError("certificate", f"not a PEM or DER certificate ({e})", "证书格式无效")]
        ) from e


class AccessService:
    def __init__(self, ctx: Context, authority: AuthorityService) -> None:
        self._ctx = ctx
        self._authority = authority

    def check(
        self, presented: bytes | None, *, platform: str = "production", at: datetime | None = None
    ) -> AccessResult:
        """Allow or deny a connection presenting ``presented`` (PEM/DER; None: no certificate) at ``at``.

        Before the platform's cutover instant every connection is allowed, a problem becomes a warning; from
        the instant on a valid, unrevoked certificate of an accepted kind issued by our CAs is required.
        Raises ValidationError for bytes that are not a certificate, ConfigurationError for an unknown
        platform.
        """
        plat = self._ctx.policies.cutover.platform(platform)
        when = (at or self._ctx.now()).astimezone(UTC)
        if not presented:
            return _result(plat.name, when, decision_for_problem(plat, "no certificate presented", at=when))
        cert = parse_certificate(presented)
        serial = format(cert.serial_number, "X")
        chain_problem = self._chain_problem(cert, when)
        with self._ctx.read() as s:
            record = s.exec(select(Certificate).where(Certificate.serial == serial)).one_or_none()
            if record is not None and record.der != cert.public_bytes(Encoding.DER):
                record = None  # same serial, other certificate: not one we issued
            party = (
                s.exec(
                    select(Party.name).where(
                        Party.platform == plat.name, Party.credential_number == record.credential_number
                    )
                ).first()
                if record is not None
                else None
            )
        if chain_problem is not None:
            decision = decision_for_problem(plat, chain_problem, at=when)
        elif record is None:
            decision = decision_for_problem(plat, "certificate not issued by this center", at=when)
        else:
            facts = CertificateFacts(
                kind=record.kind.value,
                not_valid_before=record.not_valid_before,
                not_valid_after=record.not_valid_after,
                revoked_at=record.revoked_at,
            )
            decision = access_decision(plat, facts, at=when)
        return _result(
            plat.name,
            when,
            decision,
            serial=serial,
            credential_number=record.credential_number if record else None,
            kind=record.kind.value if record else None,
            party=party,
        )

    def _chain_problem(self, cert: x509.Certificate, at: datetime) -> str | None:
        """Why OpenSSL refuses the chain at ``at``, or None; the leaf's own dates are left to our rules."""
        cas = self._authority.loaded().values()
        store = crypto.X509Store()
        intermediates = []
        for ca in cas:
            if ca.record.role is CaRole.ROOT:
                store.add_cert(crypto.X509.from_cryptography(ca.certificate))
            elif ca.record.role is CaRole.ISSUING:
                intermediates.append(crypto.X509.from_cryptography(ca.certificate))
        store.set_time(at)
        context = crypto.X509StoreContext(store, crypto.X509.from_cryptography(cert), chain=intermediates)
        try:
            context.verify_certificate()
        except crypto.X509StoreContextError as e:
            code, depth, message = e.errors[0], e.errors[1], e.errors[2]
            if depth == 0 and code in (_X509_V_ERR_CERT_NOT_YET_VALID, _X509_V_ERR_CERT_HAS_EXPIRED):
                return None
            return f"certificate chain not valid: {message}"
        return None


def _result(
    platform: str,
    at: datetime,
    decision: Decision,
    *,
    serial: str | None = None,
    credential_number: str | None = None,
    kind: str | None = None,
    party: str | None = None,
) -> AccessResult:
    return AccessResult(
        platform=platform,
        at=at,
        allowed=decision.allowed,
        reasons=(decision.reason,),
        warnings=(decision.warning,) if decision.warning else (),
        serial=serial,
        credential_number=credential_number,
        kind=kind,
        party=party,
    )
