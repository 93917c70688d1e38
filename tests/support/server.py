"""A real `pkictl serve` over a prepared home (a subprocess on a free loopback port), and desks that reach it
as `pkictl` subprocesses holding nothing but the server's URL and their session file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pki.bootstrap import initialize, open_service
from pki.config import Settings
from pki.services import Service

PASSWORD = "server-test-password"
PASSPHRASE = "server-test-ca-passphrase"
ROLES = ("entry", "acceptor", "head", "reviewer", "distributor", "ops")
# What a desk must never hold: the center's database and CA secrets.
CENTER_ONLY_ENV = (
    "PKI_HOME",
    "PKI_DATABASE_URL",
    "PKI_CA_PASSPHRASE",
    "PKI_AUDIT_PASSPHRASE",
    "PKI_HSM_PIN",
    "PKI_POLICY_DIR",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def center_env(home: Path, db_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PKI_HOME": str(home),
        "PKI_DATABASE_URL": db_url,
        "PKI_CA_PASSPHRASE": PASSPHRASE,
        "PKI_AUDIT_PASSPHRASE": PASSPHRASE,
    }


def prepare_home(home: Path, db_url: str, roles: tuple[str, ...] = ROLES, prefix: str = "u") -> None:
    """A home with its CA hierarchy, an admin and one user per role (``{prefix}-{role}``), all PASSWORD."""
    svc = initialize(
        Settings.from_env(center_env(home, db_url)), lambda: PASSPHRASE, audit_passphrase=lambda: PASSPHRASE
    )
    try:
        svc.users.add(f"{prefix}-admin", PASSWORD, ["admin"], actor=None)
        admin = svc.users.authenticate(f"{prefix}-admin", PASSWORD)
        for role in roles:
            svc.users.add(f"{prefix}-{role}", PASSWORD, [role], actor=admin)
    finally:
        svc.ctx.engine.dispose()


@contextmanager
def serving(
    env: dict[str, str],
    *,
    extra_path: Path | None = None,
    args: tuple[str, ...] = (),
    port: int | None = None,
) -> Iterator[str]:
    """`pkictl serve` on ``port`` (default a free one) with ``env``; yields its base URL; stopped on exit.

    ``extra_path`` goes first on PYTHONPATH (a sitecustomize shim that injects a fault, say)."""
    proc, base = start_server(env, extra_path=extra_path, args=args, port=port or free_port())
    try:
        yield base
    finally:
        stop_server(proc)


def start_server(
    env: dict[str, str], *, port: int, extra_path: Path | None = None, args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], str]:
    """A started `pkictl serve` and its URL (it answers /healthz)."""
    if extra_path is not None:
        env = {**env, "PYTHONPATH": os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import pki.cli; pki.cli.main()", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    scheme = "https" if "--tls-cert" in args else "http"
    base = f"{scheme}://127.0.0.1:{port}"
    try:
        wait_until_up(base, proc)
    except BaseException:
        stop_server(proc)
        raise
    return proc, base


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()


def wait_until_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    import ssl

    unverified = ssl._create_unverified_context()  # noqa: S323 - only "is it up?", on loopback
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1, context=unverified) as r:  # noqa: S310
                if r.status == 200:
                    return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"pkictl serve did not start: {out}") from None
            time.sleep(0.1)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class DeskProcess:
    """`pkictl` as a desk: PKI_SERVER, a session file of its own, and no database or CA secret at all."""

    def __init__(self, server: str, directory: Path, extra_env: dict[str, str] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.server = server
        self.directory = directory
        self.env = {k: v for k, v in os.environ.items() if k not in CENTER_ONLY_ENV}
        self.env |= {
            "PKI_SERVER": server,
            "PKI_SESSION_FILE": str(directory / "session.json"),
            "PKI_PASSWORD": PASSWORD,
            "HOME": str(directory),
        }
        self.env |= extra_env or {}

    def __call__(self, *argv: str, check: bool = False) -> Run:
        done = subprocess.run(
            [sys.executable, "-c", "import pki.cli; pki.cli.main()", *argv],
            env=self.env,
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        run = Run(done.returncode, done.stdout, done.stderr)
        if check and run.code != 0:
            raise AssertionError(f"pkictl {' '.join(argv)} -> {run.code}: {run.err}{run.out}")
        return run


def center_service(env: dict[str, str]) -> Service:
    """The center's service over the home of ``env`` (CA and audit keys unlocked with their passphrases)."""
    return open_service(
        Settings.from_env(env), passphrase=lambda: PASSPHRASE, audit_passphrase=lambda: PASSPHRASE
    )
