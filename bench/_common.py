"""Shared set-up for the benchmarks in bench/: a fresh database (SQLite file or a throw-away PostgreSQL
schema), the migrated schema, the CA hierarchy, actors as user rows, and a few helpers.

Nothing here is timed; each benchmark times only its own loop. Not a test module: run the scripts directly.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session  # noqa: E402

from pki.audit_key import PassphraseProtection, create_key_file  # noqa: E402
from pki.audit_seal import AuditSeal  # noqa: E402
from pki.bootstrap import migrate  # noqa: E402
from pki.ca.keystore import FileKeyStore  # noqa: E402
from pki.db import make_engine, normalize_url  # noqa: E402
from pki.enums import Role  # noqa: E402
from pki.models import User  # noqa: E402
from pki.services import Actor, Service  # noqa: E402
from policies import load_policies  # noqa: E402

PG_URL = os.environ.get("PKI_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PASSPHRASE = "bench-ca-passphrase-123"


def base_parser(description: str, n: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--n", type=int, default=n, help=f"size of the workload (default {n})")
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and schema")
    return p


def machine() -> str:
    import cryptography

    ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False).stdout.strip()
    return (
        f"nproc={os.cpu_count()} python={platform.python_version()} cryptography={cryptography.__version__}"
        f" ({_backend_openssl()}) openssl-cli='{ossl}'"
    )


def _backend_openssl() -> str:
    from cryptography.hazmat.backends.openssl.backend import backend

    return str(backend.openssl_version_text())


@dataclass
class Env:
    tmp: Path
    url: str
    engine: Engine
    service: Service
    people: dict[str, Actor]


@contextmanager
def database(db: str, tmp: Path, *, keep: bool = False) -> Iterator[str]:
    """A URL to an empty database: a file under ``tmp``, or a fresh PostgreSQL schema (dropped after)."""
    if db == "sqlite":
        yield f"sqlite:///{tmp / 'pki.db'}"
        return
    schema = f"pkibench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = normalize_url(PG_URL)
    url = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        if not keep:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


PEOPLE = {
    "clerk": (Role.ENTRY,),
    "acceptor": (Role.ACCEPTOR,),
    "head": (Role.HEAD,),
    "reviewer": (Role.REVIEWER,),
    "distributor": (Role.DISTRIBUTOR,),
    "ops": (Role.OPS,),
}


@contextmanager
def environment(
    db: str, *, keep: bool = False, prefix: str = "pkibench-", policy_dir: Path | None = None
) -> Iterator[Env]:
    """Temp dir, migrated database, service with a FileKeyStore, CA hierarchy, and the actors as user rows
    (password_hash "!" as in tests/conftest.py: we act as them directly). ``policy_dir``: policy files
    overriding the packaged ones (bench/sm2.py's SM2 ca.toml)."""
    tmpdir = tempfile.mkdtemp(prefix=prefix)
    tmp = Path(tmpdir)
    try:
        with database(db, tmp, keep=keep) as url:
            engine = make_engine(url)
            try:
                migrate(engine)
                # The audit key in the home's key file (a server over this home unlocks it with PASSPHRASE),
                # held unlocked here: what a server holds after its one unlock at start.
                key = create_key_file(
                    tmp / "audit" / "audit.key", PassphraseProtection(lambda: PASSPHRASE), keyed_from=1
                )
                seal = AuditSeal.fixed(key, tmp / "audit" / "checkpoints.jsonl")
                service = Service(
                    engine,
                    policies=load_policies(policy_dir) if policy_dir else None,
                    keys=FileKeyStore(tmp / "ca", lambda: PASSPHRASE),
                    audit_seal=seal,
                )
                service.authority.ensure_hierarchy()
                now = datetime.now(UTC)
                people = {
                    name: Actor(name, frozenset(r.value for r in roles)) for name, roles in PEOPLE.items()
                }
                with Session(engine) as s:
                    for a in people.values():
                        s.add(
                            User(
                                username=a.username,
                                password_hash="!",
                                roles=",".join(sorted(a.roles)),
                                created_at=now,
                            )
                        )
                    s.commit()
                yield Env(tmp, url, engine, service, people)
            finally:
                engine.dispose()
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def export_key_unencrypted(service: Service, slug: str, path: Path) -> None:
    """Write the CA's key (loaded through the FileKeyStore) as unencrypted PKCS#8 PEM, owner-only."""
    ca = service.authority.get(slug)
    key = service.authority.key_for(ca)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def export_cert(service: Service, slug: str, path: Path) -> None:
    ca = service.authority.get(slug)
    path.write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def openssl_time(at: datetime) -> str:
    """index.txt time: UTCTime YYMMDDHHMMSSZ."""
    return at.astimezone(UTC).strftime("%y%m%d%H%M%SZ")


def even_hex(serial: int) -> str:
    """The serial as openssl writes it in index.txt (BN_bn2hex: upper case, whole bytes)."""
    h = f"{serial:X}"
    return h if len(h) % 2 == 0 else "0" + h


def line(char: str = "-") -> None:
    print(char * 78)


# -- certificate rows in bulk (CRL and OCSP benchmarks) ----------------------------------------------------

# Reasons both we and `openssl ca` can express (openssl's ca/ocsp index knows no privilegeWithdrawn).
BENCH_REASONS = ("unspecified", "keyCompromise", "affiliationChanged", "superseded", "cessationOfOperation")


@dataclass(frozen=True)
class CertRow:
    serial: int
    not_after: datetime
    revoked_at: datetime | None
    reason: str | None


def insert_certificates(
    env: Env, slug: str, count: int, *, revoked_share: float, seed: int = 1
) -> list[CertRow]:
    """``count`` certificate rows of CA ``slug`` by bulk SQL insert (der is a placeholder: the CRL and OCSP
    paths read only serial, status, revocation time and reason). A ``revoked_share`` of them are revoked at
    distinct whole-second times during the past year, reasons spread over BENCH_REASONS."""
    import random

    from sqlalchemy import insert

    from pki.models import Certificate

    rnd = random.Random(seed)
    ca = env.service.authority.get(slug)
    now = datetime.now(UTC).replace(microsecond=0)
    not_before = now - timedelta(days=200)
    out: list[CertRow] = []
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    n_revoked = round(count * revoked_share)
    for i in range(count):
        serial = rnd.getrandbits(159) | (1 << 120)  # like x509.random_serial_number(), never tiny
        while serial in seen:
            serial = rnd.getrandbits(159) | (1 << 120)
        seen.add(serial)
        not_after = not_before + timedelta(days=365 + rnd.randrange(0, 700))
        revoked = i < n_revoked
        revoked_at = now - timedelta(seconds=rnd.randrange(60, 180 * 86400)) if revoked else None
        reason = BENCH_REASONS[rnd.randrange(len(BENCH_REASONS))] if revoked else None
        out.append(CertRow(serial, not_after, revoked_at, reason))
        rows.append(
            {
                "serial": f"{serial:X}",
                "ca_id": ca.id,
                "request_id": None,
                "kind": ca.record.kind,
                "subject": f"C=CN,O=bench unit {i},CN=bench unit {i}",
                "unit_name": f"bench unit {i}",
                "credential_number": f"BENCH{i:012d}",
                "province": "北京",
                "not_valid_before": not_before,
                "not_valid_after": not_after,
                "status": "revoked" if revoked else "valid",
                "revoked_at": revoked_at,
                "revocation_reason": reason,
                "revocation_comment": "",
                "revoked_by": "ops" if revoked else None,
                "key_algorithm": "ec-p256",
                "spki_sha256": f"{rnd.getrandbits(256):064x}",
                "der": b"\x30\x03\x02\x01\x00",
                "issued_by": "distributor",
                "issued_at": not_before,
                "renewed_from_id": None,
                "delivered": True,
            }
        )
    with env.engine.begin() as conn:
        for lo in range(0, len(rows), 10_000):
            conn.execute(insert(Certificate), rows[lo : lo + 10_000])
    return out


def write_index(path: Path, rows: list[CertRow]) -> None:
    """An openssl ca/ocsp index.txt for ``rows`` (V or R; revocation 'time,reason', reason left out when
    unspecified, as our CRL leaves the extension out)."""
    with path.open("w") as f:
        for i, r in enumerate(rows):
            if r.revoked_at is None:
                status, rev = "V", ""
            else:
                status = "R"
                rev = openssl_time(r.revoked_at)
                if r.reason and r.reason != "unspecified":
                    rev += "," + r.reason
            f.write(
                f"{status}\t{openssl_time(r.not_after)}\t{rev}\t{even_hex(r.serial)}\tunknown\t/CN=u{i}\n"
            )
    path.with_name(path.name + ".attr").write_text("unique_subject = no\n")


def temporary_softhsm() -> Path:
    """A SoftHSM2 token directory for this run, SOFTHSM2_CONF pointing at it (call before SoftHSM is first
    loaded); removed when the script ends."""
    from tests.support import softhsm

    directory = Path(tempfile.mkdtemp(prefix="pkibench-softhsm-"))
    atexit.register(shutil.rmtree, directory, True)
    return softhsm.configure(directory)
