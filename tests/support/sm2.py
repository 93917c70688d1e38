"""SM2 homes and SM2 CSRs for the 国密 tests: a policy directory whose ca.toml makes CAs SM2, CSRs made by
the system OpenSSL 3 (`openssl req -new -sm3 -sigopt distid:1234567812345678`), and the second SM2
implementation that judges our signatures (the pure-Python gmssl package, which pkictl does not sign with).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cryptography import x509
from gmssl import sm2 as gm_sm2
from sqlalchemy.engine import Engine

from pki.ca import certs
from pki.ca.keystore import FileKeyStore
from pki.ca.sm2 import SIGNER_ID, Sm2PublicKey
from pki.clock import FixedClock
from pki.services import Service
from policies import load_policies
from policies._load import PACKAGED
from tests.conftest import CA_PASSPHRASE, fixed_seal

DISTID = f"distid:{SIGNER_ID}"


def policy_dir(directory: Path, *, formal_only: bool = False) -> Path:
    """ca.toml with every CA SM2, or (``formal_only``) only the formal issuing CA: an SM2 kind beside an
    ECDSA one under an ECDSA root."""
    text = (PACKAGED / "ca.toml").read_text(encoding="utf-8")
    if formal_only:
        marker = "[issuing.formal]\n"
        assert marker in text
        text = text.replace(marker, marker + 'key_algorithm = "sm2"\n')
    else:
        assert 'key_algorithm = "ec-p256"' in text
        text = text.replace('key_algorithm = "ec-p256"', 'key_algorithm = "sm2"')
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.toml").write_text(text, encoding="utf-8")
    return directory


def sm2_service(engine: Engine, clock: FixedClock, tmp_path: Path, *, formal_only: bool = False) -> Service:
    """A service whose hierarchy (made here) is SM2 per ca.toml, over the test's database."""
    service = Service(
        engine,
        policies=load_policies(policy_dir(tmp_path / "sm2-policies", formal_only=formal_only)),
        clock=clock,
        keys=FileKeyStore(tmp_path / "ca", lambda: CA_PASSPHRASE),
        audit_seal=fixed_seal(tmp_path),
    )
    service.authority.ensure_hierarchy()
    return service


def openssl(*args: str | Path) -> bytes:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def openssl_key(directory: Path, name: str = "unit") -> Path:
    path = directory / f"{name}.key"
    openssl("genpkey", "-algorithm", "SM2", "-out", path)
    return path


def openssl_csr(
    directory: Path, *, key: Path | None = None, distid: bool = True, name: str = "unit"
) -> bytes:
    """A PEM SM2 CSR from OpenSSL 3 (a fresh key unless ``key``); ``distid=False``: OpenSSL 3.0's default,
    the empty signer ID."""
    key = key or openssl_key(directory, name)
    sigopt = ["-sigopt", DISTID] if distid else []
    return openssl("req", "-new", "-sm3", *sigopt, "-key", key, "-subj", "/CN=ignored by the CA")


def gmssl_verifies(signer: x509.Certificate, signature: bytes, signed: bytes) -> bool:
    """The pure-Python gmssl package's verdict on an SM3withSM2 signature (DER) with the standard signer ID
    (gmssl's only one) under ``signer``'s public key."""
    point = Sm2PublicKey.from_spki(certs.subject_public_key_info(signer)).point
    judge = gm_sm2.CryptSM2(private_key=None, public_key=point[1:].hex(), asn1=True)
    # gmssl 3.2.2 drops a "04" prefix with str.lstrip("04"), which also eats an X coordinate's own leading 0s
    # and 4s (one key in a few hundred): give it the 128 hex digits of X and Y exactly as they are.
    judge.public_key = point[1:].hex()
    return bool(judge.verify_with_sm3(signature.hex(), signed))
