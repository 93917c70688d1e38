"""A SoftHSM2 token for a demo home: its own softhsm2.conf and token directory under the home, initialized by
softhsm2-util (a separate process, so whatever SoftHSM configuration this process already loaded is beside the
point). Never for real certificates: the PINs are kept in files beside the token."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pki.errors import ConfigurationError

DEMO_LABEL = "DEMO-USBKEY"
PIN_FILE = "DEMO-USBKEY-PIN"
SO_PIN_FILE = "DEMO-USBKEY-SO-PIN"


@dataclass(frozen=True)
class DemoToken:
    label: str
    conf: Path
    pin: str
    so_pin: str


def _secret_file(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")


def create_demo_token(home: Path, label: str = DEMO_LABEL) -> DemoToken:
    """Make ``home``/softhsm (conf + tokens) and one initialized token with random user and SO PINs."""
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise ConfigurationError("softhsm2-util not found: install the softhsm2 package for the demo USB key")
    directory = home / "softhsm"
    (directory / "tokens").mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="ascii",
    )
    pin = f"{secrets.randbelow(10**8):08d}"
    so_pin = secrets.token_hex(8)
    subprocess.run(
        [tool, "--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
        check=True,
        capture_output=True,
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        timeout=60,
    )
    _secret_file(home / PIN_FILE, pin)
    _secret_file(home / SO_PIN_FILE, so_pin)
    return DemoToken(label, conf, pin, so_pin)
