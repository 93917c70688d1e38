"""SoftHSM2 as the real token in tests: one token directory per test process, a fresh token per test.

SoftHSM reads SOFTHSM2_CONF when the module is first initialized in a process and does not see tokens that
other processes create later, so tokens are initialized in-process through PKCS#11 (C_InitToken on the free
slot, then C_InitPIN as SO).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import PyKCS11

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SO_PIN = "so-pin-12345678"
USER_PIN = "123456"


def configure(directory: Path) -> Path:
    """Write a softhsm2.conf under ``directory`` and point SOFTHSM2_CONF at it (before the first load)."""
    (directory / "tokens").mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="ascii",
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return conf


_configured: list[Path] = []


def configure_once(make_directory: Callable[[], Path]) -> Path:
    """The process's one SoftHSM configuration, made in ``make_directory()`` on first use: SoftHSM reads it
    once per process, so every suite that needs tokens (tokens/, e2e/) must share it."""
    if not _configured:
        _configured.append(configure(make_directory()))
    return _configured[0]


@dataclass(frozen=True)
class Token:
    module: str
    label: str
    serial: str
    pin: str
    so_pin: str
    conf: Path


def new_token(conf: Path, *, pin: str = USER_PIN) -> Token:
    lib = PyKCS11.PyKCS11Lib()
    lib.load(MODULE)
    free = [s for s, info in _readable(lib) if not info.flags & PyKCS11.CKF_TOKEN_INITIALIZED]
    label = f"t-{uuid.uuid4().hex[:12]}"
    lib.initToken(free[0], SO_PIN, label)
    slot = next(s for s, info in _readable(lib) if info.label.rstrip(" \x00") == label)
    session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    session.login(SO_PIN, PyKCS11.CKU_SO)
    session.initPin(pin)
    session.logout()
    session.closeSession()
    serial = lib.getTokenInfo(slot).serialNumber.rstrip(" \x00")
    return Token(MODULE, label, serial, pin, SO_PIN, conf)


def _readable(lib: PyKCS11.PyKCS11Lib) -> list[tuple[int, PyKCS11.CK_TOKEN_INFO]]:
    """(slot, token info) for each slot whose token can be read: a test that deleted a token's files (a key
    pulled out) leaves a slot that fails with CKR_GENERAL_ERROR for the rest of the process."""
    out = []
    for slot in lib.getSlotList(tokenPresent=True):
        try:
            out.append((slot, lib.getTokenInfo(slot)))
        except PyKCS11.PyKCS11Error:
            continue
    return out


def pkcs11_tool(token: Token, *args: str, pin: str | None = None) -> str:
    """OpenSC's pkcs11-tool (a judge nobody here wrote) on ``token``, logged in with ``pin`` (default the
    token's): its standard output; CalledProcessError when it fails."""
    return subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            token.module,
            "--token-label",
            token.label,
            "--login",
            "--pin",
            token.pin if pin is None else pin,
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"SOFTHSM2_CONF": str(token.conf), "PATH": "/usr/bin:/bin"},
        timeout=60,
    ).stdout
