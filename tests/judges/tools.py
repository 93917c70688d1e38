"""Helpers for the judges: run pkilint and openssl as real processes, issue and revoke through the service,
build OCSP requests the way a relying party does."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp

from pki.services import Actor, Service
from tests.conftest import T0
from tests.support.pki import approved, csr_for, key

BIN = Path(sys.executable).parent
TIMEOUT = 60

# openssl checks validity against the real time; everything here is issued at the fixed clock T0.
AT_T0 = int(T0.timestamp())


@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return f"$ {' '.join(self.argv)}\nexit {self.returncode}\n{self.stdout}{self.stderr}"


def tool(name: str) -> str:
    """A console script installed next to this interpreter (pkilint's)."""
    path = BIN / name
    assert path.exists(), f"{path} missing: install the test extras (pkilint)"
    return str(path)


Arg = str | Path | int


def run(argv: Sequence[Arg]) -> Outcome:
    args = tuple(str(a) for a in argv)
    done = subprocess.run(args, capture_output=True, timeout=TIMEOUT, check=False)
    return Outcome(
        args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    )


def run_all(commands: Sequence[Sequence[Arg]]) -> list[Outcome]:
    """Run independent commands concurrently (each pkilint start costs a few hundred ms of CPU)."""
    started: list[tuple[tuple[str, ...], subprocess.Popen[bytes]]] = []
    try:
        for argv in commands:
            args = tuple(str(a) for a in argv)
            proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            started.append((args, proc))
        out = []
        for args, proc in started:
            stdout, stderr = proc.communicate(timeout=TIMEOUT)
            out.append(
                Outcome(
                    args, proc.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")
                )
            )
        return out
    finally:
        for _, proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def assert_clean(outcomes: Sequence[Outcome]) -> None:
    """Every judge exited 0 and said nothing (pkilint prints one block per finding)."""
    bad = [o for o in outcomes if o.returncode != 0 or o.stdout.strip() or o.stderr.strip()]
    assert not bad, "\n\n".join(o.explain() for o in bad)


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs))
    return path


def write_der(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def ca_certs(service: Service) -> dict[str, x509.Certificate]:
    """Every CA certificate by slug: root, test, formal, ocsp-test, ocsp-formal, ocsp-root."""
    return {r.slug: x509.load_der_x509_certificate(r.certificate_der) for r in service.authority.all()}


def issue(
    service: Service, people: dict[str, Actor], *, alg: str = "ec-p256", index: int = 0, kind: str = "test"
) -> x509.Certificate:
    """An end-entity certificate for a freshly approved request, issued from a CSR by the distributor."""
    row = service.issuance.issue_from_csr(
        approved(service, people, access_type=kind), csr_for(key(alg, index)), actor=people["distributor"]
    )
    return x509.load_der_x509_certificate(row.der)


def crl_signed_by(crl_der: bytes, issuer: x509.Certificate) -> bool:
    key = issuer.public_key()
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return x509.load_der_x509_crl(crl_der).is_signature_valid(key)


def serial_hex(cert: x509.Certificate) -> str:
    return f"{cert.serial_number:X}"


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate, *, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    builder = builder.add_extension(x509.OCSPNonce(nonce or os.urandom(16)), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def _der_children(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, contents) of each TLV in ``data``; enough DER for a SubjectPublicKeyInfo."""
    out, i = [], 0
    while i < len(data):
        tag, size = data[i], data[i + 1]
        i += 2
        if size & 0x80:
            count = size & 0x7F
            size = int.from_bytes(data[i : i + count], "big")
            i += count
        out.append((tag, data[i : i + size]))
        i += size
    return out


def issuer_key_hash(issuer: x509.Certificate) -> bytes:
    """RFC 6960 §4.1.1: SHA-1 of the issuer's subjectPublicKey BIT STRING value (tag, length and unused-bits
    octet excluded), read straight from the SubjectPublicKeyInfo DER."""
    spki = issuer.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    [(_, body)] = _der_children(spki)
    tag, bits = _der_children(body)[1]
    assert tag == 0x03 and bits[0] == 0
    return hashlib.sha1(bits[1:], usedforsecurity=False).digest()


def ocsp_request_for_serial(serial: int, issuer: x509.Certificate, *, nonce: bytes | None = None) -> bytes:
    """A request naming ``issuer`` (by name and key hash) and a serial that need not exist."""
    name_hash = hashlib.sha1(issuer.subject.public_bytes(), usedforsecurity=False).digest()
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        name_hash, issuer_key_hash(issuer), serial, hashes.SHA1()
    )
    builder = builder.add_extension(x509.OCSPNonce(nonce or os.urandom(16)), critical=False)
    return builder.build().public_bytes(Encoding.DER)
