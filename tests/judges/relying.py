"""Relying parties nobody here wrote, run as real processes for the judges: `pkictl serve`, nginx verifying
client certificates, and curl presenting a certificate whose key stays on a SoftHSM2 token (OpenSSL's PKCS#11
engine, libp11). Everything binds to 127.0.0.1 on free ports and is stopped at teardown."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.tls import server_certificate

NGINX = "/usr/sbin/nginx"
ENGINE = Path(f"/usr/lib/{platform.machine()}-linux-gnu/engines-3/pkcs11.so")  # Debian multiarch
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own http URL)
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer:\n{log.read_text(errors='replace')}")


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited {proc.returncode}:\n{log.read_text(errors='replace')}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}:\n{log.read_text(errors='replace')}")


@contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A background process, its output in ``log``; terminated (then killed) when the block ends."""
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def pkictl_serve(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """`pkictl serve` on 127.0.0.1:``port``; yields its base URL once /healthz answers."""
    argv = [sys.executable, "-c", "import pki.cli; pki.cli.main()", "serve", "--host", "127.0.0.1"]
    with running([*argv, "--port", str(port)], env, log) as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for(f"{base}/healthz", proc, log)
        yield base


@dataclass(frozen=True)
class Nginx:
    """One nginx (single process, no daemon) with two TLS servers that require a client certificate: one
    checks revocation with our CRL bundle (ssl_crl), the other asks our OCSP responder (ssl_ocsp)."""

    directory: Path
    crl_port: int
    ocsp_port: int

    def config(self, ca_bundle: Path, crl_bundle: Path) -> Path:
        d = self.directory
        cert, key = server_certificate(d)
        common = (
            f"        ssl_certificate {cert};\n        ssl_certificate_key {key};\n"
            f"        ssl_verify_client on;\n        ssl_verify_depth 2;\n"
            f"        ssl_client_certificate {ca_bundle};\n"
            '        location / { return 200 "$ssl_client_serial\\n"; }\n'
        )
        temp = " ".join(
            f"{name}_temp_path {d / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        text = (
            f"daemon off;\nmaster_process off;\npid {d / 'nginx.pid'};\nerror_log {d / 'error.log'} info;\n"
            "events { worker_connections 64; }\n"
            f"http {{\n    access_log {d / 'access.log'};\n    {temp}\n"
            f"    server {{\n        listen 127.0.0.1:{self.crl_port} ssl;\n{common}"
            f"        ssl_crl {crl_bundle};\n    }}\n"
            f"    server {{\n        listen 127.0.0.1:{self.ocsp_port} ssl;\n{common}"
            "        ssl_ocsp on;\n    }\n}\n"
        )
        path = d / "nginx.conf"
        path.write_text(text, encoding="utf-8")
        return path

    @contextmanager
    def serving(self, ca_bundle: Path, crl_bundle: Path) -> Iterator[None]:
        """nginx reads the CRL file when it starts: a new CRL means a new start (as `nginx -s reload`)."""
        conf = self.config(ca_bundle, crl_bundle)
        log = self.directory / "nginx.out"
        argv = [NGINX, "-p", str(self.directory), "-c", str(conf), "-e", str(self.directory / "error.log")]
        with running(argv, dict(os.environ), log) as proc:
            wait_for_port(self.crl_port, proc, log)
            wait_for_port(self.ocsp_port, proc, log)
            yield

    def error_log(self) -> str:
        return (self.directory / "error.log").read_text(errors="replace")


def engine_config(directory: Path) -> Path:
    """An OpenSSL configuration that loads libp11's pkcs11 engine over the SoftHSM2 module."""
    path = directory / "openssl-pkcs11.cnf"
    path.write_text(
        "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n"
        "[engine_section]\npkcs11 = pkcs11_section\n"
        f"[pkcs11_section]\nengine_id = pkcs11\ndynamic_path = {ENGINE}\nMODULE_PATH = {SOFTHSM}\ninit = 0\n",
        encoding="ascii",
    )
    return path
