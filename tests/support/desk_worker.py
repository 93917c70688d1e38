"""One desk process of a load test or benchmark: log in to a server, issue a list of approved requests
(through pki.desk.remote.RemoteDesk, the CLI's own client), and write what happened.

    python -m tests.support.desk_worker SERVER USER PASSWORD IDS_JSON OUT_JSON [csr|usbkey] [GO_FILE]

csr: from CSRs the desk makes before its clock starts, one call each. usbkey: onto a SoftHSM2 token of the
desk's own, as `pkictl issue --token-serial` does (pki.desk.usbkey: begin, key pair and CSR on the token,
record, write and read back, deliver), then the key handed back (objects removed, `token.mark returned`) so
the next unit meets a returned key, as a desk reusing keys does.

GO_FILE: once logged in with its CSRs or its token made, the desk writes OUT_JSON + ".ready" and starts its
clock when GO_FILE exists, so that a benchmark's desks all start at once (none still starting up while the
others are timed).

OUT_JSON: {"issued": {request id: serial}, "refused": {request id: error code}, "latency_ms": [...],
"calls": {operation: [ms, ...]}, "elapsed_s": s, "cpu_s": s}; latency_ms is per unit, calls per API call;
cpu_s is the desk process's own CPU time while its clock ran (SoftHSM2 included: a library in it).
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
    server: str,
    user: str,
    password: str,
    ids: list[int],
    directory: Path,
    tag: str,
    mode: str = "csr",
    go: Path | None = None,
) -> subprocess.Popen[bytes]:
    """A desk process issuing ``ids`` through ``server``; it writes ``directory/{tag}.out.json``; with ``go``,
    it waits for that file once ready (:func:`start_together`)."""
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
            mode,
            *([str(go)] if go is not None else []),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )


def start_together(procs: list[subprocess.Popen[bytes]], directory: Path, tags: list[str], go: Path) -> None:
    """Wait until every desk spawned with ``go`` is ready, then let them all start."""
    waiting = [directory / f"{tag}.out.json.ready" for tag in tags]
    while not all(path.exists() for path in waiting):
        if any(p.poll() not in (None, 0) for p in procs):
            raise RuntimeError("a desk failed while starting")
        time.sleep(0.02)
    go.touch()


def _ready_then_wait(out_path: str, go: str | None) -> None:
    if go is None:
        return
    Path(out_path + ".ready").touch()
    while not Path(go).exists():
        time.sleep(0.005)


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


class TimedDesk:
    """The desk, timing every API call by operation name."""

    def __init__(self, desk: RemoteDesk) -> None:
        self.desk = desk
        self.calls: dict[str, list[float]] = {}

    def call(self, name: str, **fields: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.desk.call(name, **fields)
        finally:
            self.calls.setdefault(name, []).append((time.perf_counter() - t0) * 1000)


def by_csr(
    desk: TimedDesk, ids: list[int], csrs: list[bytes], issued: dict[int, str], refused: dict[int, str]
) -> list[float]:
    latency: list[float] = []
    for rid, request in zip(ids, csrs, strict=True):
        t0 = time.perf_counter()
        try:
            issued[rid] = desk.call("issue.csr", request_id=rid, csr=request)["serial"]
        except PkiError as e:
            refused[rid] = e.code
        latency.append((time.perf_counter() - t0) * 1000)
    return latency


def usb_key(tokens: Path) -> tuple[Any, Any, str]:
    """This desk's own SoftHSM2 token: its module, its slot's info and its PIN."""
    from tests.support import softhsm

    softhsm.configure(tokens)  # this desk's own key, before SoftHSM is first loaded here
    from tokens.session import Module

    token = softhsm.new_token(tokens / "softhsm2.conf")
    module = Module(token.module)
    return module, module.find(label=token.label), token.pin


def on_usb_key(
    desk: TimedDesk,
    ids: list[int],
    issued: dict[int, str],
    refused: dict[int, str],
    key: tuple[Any, Any, str],
) -> list[float]:
    from pki.desk import usbkey
    from tokens.usbkey import open_usb_key

    module, info, pin = key
    latency: list[float] = []
    for rid in ids:
        t0 = time.perf_counter()
        try:
            done = usbkey.issue(desk, rid, lambda: open_usb_key(module, info, pin), info.serial, "ec-p256")
        except PkiError as e:
            refused[rid] = e.code
            continue
        latency.append((time.perf_counter() - t0) * 1000)
        issued[rid] = done["serial"]
        with open_usb_key(module, info, pin) as device:
            device.remove(bytes.fromhex(done["key_id"]))
        desk.call("token.mark", serial=info.serial, mark="returned")
    return latency


def main(
    server: str,
    user: str,
    password: str,
    ids_path: str,
    out_path: str,
    mode: str = "csr",
    go: str | None = None,
) -> None:
    ids = json.loads(Path(ids_path).read_text())
    session = open_session(server, user, password)
    desk = TimedDesk(RemoteDesk(server, session["token"], user))
    issued: dict[int, str] = {}
    refused: dict[int, str] = {}
    # Made before the clock starts: the desk's CSRs, or its token.
    key = usb_key(Path(out_path).with_suffix(".tokens")) if mode == "usbkey" else None
    csrs = [csr() for _ in ids] if key is None else []
    desk.desk.call("ca.show")  # a desk at work loaded its code and reached the server long before: not timed
    _ready_then_wait(out_path, go)
    started, cpu = time.perf_counter(), time.process_time()
    if key is not None:
        latency = on_usb_key(desk, ids, issued, refused, key)
    else:
        latency = by_csr(desk, ids, csrs, issued, refused)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    desk.desk.close()
    Path(out_path).write_text(
        json.dumps(
            {
                "issued": issued,
                "refused": refused,
                "latency_ms": latency,
                "calls": desk.calls,
                "elapsed_s": elapsed,
                "cpu_s": cpu,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:8])
