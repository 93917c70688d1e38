"""Prototypes of the fixes proposed in docs/benchmarks.md, measured by the benchmarks next to production code.

NOT production code and not wired into pki/: each class/function here keeps the production checks
(role re-read, request lock, separation of duties, state machine, key reuse, CA validity, audit chain) and
changes only how the work reaches the database or the encoder, so that its figure shows what the fix buys.
The benchmarks print these as "prototype" lines; their verdicts are always about production code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import DateTime, String, bindparam, select, type_coerce
from sqlmodel import col

from pki import audit
from pki.ca import crl as crl_mod
from pki.ca import der
from pki.ca.keys import signature_hash
from pki.ca.validity import whole_seconds
from pki.enums import CertificateStatus
from pki.models import Certificate
from pki.services.ocsp_responder import _REASONS as _OCSP_REASONS
from pki.services.ocsp_responder import OcspService

# -- 1. issuance: one set-based transaction per batch ---------------------------------------------------


# -- 2. CRL: Core query without ORM/TypeDecorator per row, and a leaner entry encoder ---------------------

_REASON_EXT_BY_NAME = {
    name: der.sequence(der.sequence(der.oid("2.5.29.21"), der.octet_string(der.enumerated(code))))
    for name, code in crl_mod.REASON_CODES.items()
    if code != 0
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc_time(at: datetime) -> bytes:
    t = at if at.tzinfo is None else at.astimezone(UTC)  # naive = UTC as stored (see publish_fast)
    if t.year >= 2050:
        return der.time(t)
    s = b"%02d%02d%02d%02d%02d%02dZ" % (t.year % 100, t.month, t.day, t.hour, t.minute, t.second)
    return b"\x17\x0d" + s


def encode_entries(rows: Sequence[tuple[str, datetime, str]]) -> bytes:
    """revokedCertificates contents for (hex serial, revoked_at, reason) rows; every entry is < 128 octets,
    so lengths are one octet; the reason extension is one of a handful of constant strings."""
    parts: list[bytes] = []
    append = parts.append
    for serial_hex, at, reason in rows:
        n = int(serial_hex, 16)
        sb = n.to_bytes(n.bit_length() // 8 + 1, "big")
        body = b"\x02" + bytes((len(sb),)) + sb + _utc_time(at) + _REASON_EXT_BY_NAME.get(str(reason), b"")
        append(b"\x30" + bytes((len(body),)) + body)
    return b"".join(parts)


def build_crl_fast(
    issuer: x509.Certificate, key: Any, *, number: int, this_update: datetime, next_update: datetime,
    revoked: bytes,
) -> bytes:  # fmt: skip
    """pki.ca.crl.build_crl with the entries already encoded."""
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    algorithm = crl_mod._algorithm_identifier(key)
    extensions = der.sequence(
        der.sequence(der.oid("2.5.29.35"), der.octet_string(der.sequence(der.tlv(0x80, ski)))),
        der.sequence(der.oid("2.5.29.20"), der.octet_string(der.integer(number))),
    )
    tbs = der.sequence(
        der.integer(1), algorithm, issuer.subject.public_bytes(), der.time(this_update), der.time(next_update),
        *([der.tlv(0x30, revoked)] if revoked else []), der.explicit(0, extensions),
    )  # fmt: skip
    return der.sequence(tbs, algorithm, der.bit_string(crl_mod._sign(key, tbs)))


def publish_fast(service: Any) -> bytes:
    """The 'test' CA's CRL as CrlService.publish would build it, with the proposed query and encoder, in one
    write transaction that also stores the record and the audit entry (so it does the same work)."""
    from sqlmodel import func

    from pki.models import CrlRecord

    ctx, authority = service.ctx, service.authority
    ca = authority.get("test")
    table = Certificate.__table__  # type: ignore[attr-defined]
    with ctx.write() as s:
        now = whole_seconds(ctx.now())
        conn = s.connection()
        # revoked_at read with the plain DateTime type: UTCDateTime.process_result_value (make aware, then
        # convert) costs ~4 µs a row; stored values are UTC, so a naive value is UTC (PostgreSQL returns
        # aware ones anyway). revocation_reason read as plain text skips the Enum result processor.
        rows = conn.execute(
            select(
                table.c.serial,
                type_coerce(table.c.revoked_at, DateTime(timezone=True)),
                type_coerce(table.c.revocation_reason, String()),
            )
            .where(
                table.c.ca_id == ca.id,
                table.c.status == CertificateStatus.REVOKED,
                table.c.not_valid_after > now,
                table.c.revoked_at.is_not(None),
                table.c.revocation_reason.is_not(None),
            )
        ).all()  # fmt: skip
        last = s.execute(select(func.max(CrlRecord.number)).where(CrlRecord.ca_id == ca.id)).scalar_one()
        number = (last or 0) + 1
        next_update = now + timedelta(hours=ctx.policies.ca.crl_next_update_hours)
        data = build_crl_fast(
            ca.certificate, authority.key_for(ca), number=number, this_update=now, next_update=next_update,
            revoked=encode_entries(rows),
        )  # fmt: skip
        s.add(CrlRecord(ca_id=ca.id, number=number, this_update=now, next_update=next_update,
                        entries=len(rows), der=data, published_by="system"))  # fmt: skip
        s.flush()
        audit.append(s, at=ctx.now(), actor="system", action="crl.publish", subject_type="ca",
                     subject_id=ca.slug, details={"number": number, "entries": len(rows)})  # fmt: skip
    return data


# -- 3. OCSP: a compiled, bound-parameter status query and a bare WSGI route for POST /ocsp --------------

_STATUS_BOUND = select(
    col(Certificate.status), col(Certificate.revoked_at), col(Certificate.revocation_reason)
).where(col(Certificate.ca_id) == bindparam("ca"), col(Certificate.serial) == bindparam("serial"))


class FastOcsp(OcspService):
    """OcspService whose _signed reads through a read-only connection with one statement built once (bound
    parameters, compiled-cache hit) instead of building `_STATUS.where(col(...) == ..., ...)` per request
    on a connection that takes SQLite's write lock. Same row read, same response."""

    def _signed(self, req: ocsp.OCSPRequest, responder: Any, nonce: bytes | None) -> bytes:
        # A read-only connection: on SQLite a plain BEGIN (WAL reader) instead of the BEGIN IMMEDIATE that
        # engine.connect() gets from pki.db's begin hook, which takes the write lock for every lookup.
        with self._ctx.engine.execution_options(pki_readonly=True).connect() as conn:
            row = conn.execute(
                _STATUS_BOUND, {"ca": responder.ca_id, "serial": f"{req.serial_number:X}"}
            ).first()
        now = whole_seconds(self._ctx.now())
        status, revoked_at, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
        if row is not None:
            if row.status == CertificateStatus.REVOKED.value or row.status is CertificateStatus.REVOKED:
                status, revoked_at = ocsp.OCSPCertStatus.REVOKED, row.revoked_at.replace(microsecond=0)
                reason = _OCSP_REASONS.get(str(row.revocation_reason))
            else:
                status = ocsp.OCSPCertStatus.GOOD
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                req.issuer_name_hash, req.issuer_key_hash, req.serial_number, req.hash_algorithm, status,
                now, now + timedelta(hours=self._ctx.policies.ca.ocsp_response_validity_hours),
                revoked_at, reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, responder.signer)
            .certificates([responder.signer])
        )  # fmt: skip
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        response = builder.sign(responder.signer_key, signature_hash(responder.signer_key))
        return response.public_bytes(Encoding.DER)


class LeanOcsp(FastOcsp):
    """FastOcsp whose status lookup goes straight to the DB-API: one connection per server thread kept open
    (autocommit, so each SELECT is its own consistent read and never holds a lock), the SQL compiled once
    by SQLAlchemy for the engine's dialect. ~10 µs a lookup on SQLite instead of ~150 µs through a pooled
    Connection. Same row read, same response."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        import threading

        self._local = threading.local()
        dialect = self._ctx.engine.dialect
        compiled = _STATUS_BOUND.compile(dialect=dialect)
        self._sql = str(compiled)
        self._positional = bool(compiled.positiontup)
        self._order = list(compiled.positiontup or [])
        self._sqlite = dialect.name == "sqlite"

    def _cursor(self) -> Any:
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            raw = self._ctx.engine.raw_connection().driver_connection
            if self._sqlite:
                raw.isolation_level = None  # autocommit (pki.db sets this too)
            else:
                raw.autocommit = True
            self._local.raw = raw
            cur = self._local.cursor = raw.cursor()
        return cur

    def _lookup(self, ca_id: int, serial: str) -> tuple[Any, Any, Any] | None:
        values = {"ca": ca_id, "serial": serial}
        params: Any = [values[k] for k in self._order] if self._positional else values
        cur = self._cursor()
        cur.execute(self._sql, params)
        row = cur.fetchone()
        if row is None:
            return None
        status, revoked_at, reason = row
        if isinstance(revoked_at, str):  # SQLite keeps DateTime as text, in UTC (pki.db.UTCDateTime)
            revoked_at = datetime.fromisoformat(revoked_at)
        if revoked_at is not None and revoked_at.tzinfo is None:
            revoked_at = revoked_at.replace(tzinfo=UTC)
        return status, revoked_at, reason

    def _signed(self, req: ocsp.OCSPRequest, responder: Any, nonce: bytes | None) -> bytes:
        row = self._lookup(responder.ca_id, f"{req.serial_number:X}")
        now = whole_seconds(self._ctx.now())
        status, revoked_at, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
        if row is not None:
            if row[0] == CertificateStatus.REVOKED.value:
                status, revoked_at = ocsp.OCSPCertStatus.REVOKED, row[1].replace(microsecond=0)
                reason = _OCSP_REASONS.get(str(row[2]))
            else:
                status = ocsp.OCSPCertStatus.GOOD
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                req.issuer_name_hash, req.issuer_key_hash, req.serial_number, req.hash_algorithm, status,
                now, now + timedelta(hours=self._ctx.policies.ca.ocsp_response_validity_hours),
                revoked_at, reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, responder.signer)
            .certificates([responder.signer])
        )  # fmt: skip
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        response = builder.sign(responder.signer_key, signature_hash(responder.signer_key))
        return response.public_bytes(Encoding.DER)


def ocsp_wsgi(service: Any, fallback: Any) -> Any:
    """A WSGI app answering POST /ocsp[/ca] straight from service.ocsp.respond (no Flask request context);
    anything else goes to ``fallback`` (the Flask app)."""
    respond = service.ocsp.respond
    headers_base = [
        ("Content-Type", "application/ocsp-response"),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
    ]

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "POST" and (path == "/ocsp" or path.startswith("/ocsp/")):
            try:
                size = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                size = 0
            if size > 64 * 1024:
                start_response("413 Request Entity Too Large", [("Content-Length", "0")])
                return [b""]
            body = respond(environ["wsgi.input"].read(size))
            start_response("200 OK", [*headers_base, ("Content-Length", str(len(body)))])
            return [body]
        return fallback(environ, start_response)

    return app
