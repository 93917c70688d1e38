"""One desk process of a load test or benchmark: log in to a server, issue a list of approved requests from
CSRs it makes itself (through pki.desk.remote.RemoteDesk, the CLI's own client), and write what happened.

    python -m tests.support.desk_worker SERVER USER PASSWORD IDS_JSON OUT_JSON

OUT_JSON: {"issued": {request id: serial}, "refused": {request id: error code}, "latency_ms": [...]}.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pki.desk.remote import RemoteDesk, open_session
from pki.errors import PkiError


def spawn(
    server: str, user: str, password: str, ids: list[int], directory: Path, tag: str
) -> subprocess.Popen[bytes]:
    """A desk process issuing ``ids`` through ``server``; it writes ``directory/{tag}.out.json``."""
    ids_path = directory / f"{tag}.ids.json"
    ids_path.write_text(json.dumps(ids))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.desk_worker",
            server,
            user,
            password,
            str(ids_path),
            str(directory / f"{tag}.out.json"),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )


def result(directory: Path, tag: str) -> dict[str, Any]:
    """What the desk process ``tag`` wrote."""
    document: dict[str, Any] = json.loads((directory / f"{tag}.out.json").read_text())
    return document


def csr() -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "desk")])
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )


def main(server: str, user: str, password: str, ids_path: str, out_path: str) -> None:
    ids = json.loads(Path(ids_path).read_text())
    csrs = [csr() for _ in ids]  # made before the clock starts
    session = open_session(server, user, password)
    desk = RemoteDesk(server, session["token"], user)
    issued: dict[int, str] = {}
    refused: dict[int, str] = {}
    latency: list[float] = []
    started = time.perf_counter()
    for rid, request in zip(ids, csrs, strict=True):
        t0 = time.perf_counter()
        try:
            issued[rid] = desk.call("issue.csr", request_id=rid, csr=request)["serial"]
        except PkiError as e:
            refused[rid] = e.code
        latency.append((time.perf_counter() - t0) * 1000)
    elapsed = time.perf_counter() - started
    desk.close()
    Path(out_path).write_text(
        json.dumps({"issued": issued, "refused": refused, "latency_ms": latency, "elapsed_s": elapsed})
    )


if __name__ == "__main__":
    main(*sys.argv[1:6])
