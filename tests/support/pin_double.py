"""A USB key whose holder's PIN is locked, for tests: SoftHSM2 behind a small PKCS#11 module of our own
(pin_locked_pkcs11.c, compiled here with gcc) that reports CKF_USER_PIN_LOCKED and refuses the user's log-in
with CKR_PIN_LOCKED for the token serials listed in a file. SoftHSM2 itself never locks a PIN. pkictl loads
the module by path like any USB key's driver."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.softhsm import MODULE

SOURCE = Path(__file__).with_name("pin_locked_pkcs11.c")
HEADER = Path("/usr/include/p11-kit-1/p11-kit/pkcs11.h")  # Debian's libp11-kit-dev (scripts/_system.sh)


@dataclass(frozen=True)
class LockedDouble:
    module: str  # the module's path, for --module
    locked: Path  # the file listing the locked serials (PKCS11_DOUBLE_LOCKED)

    def lock(self, *serials: str) -> None:
        self.locked.write_text("".join(f"{s}\n" for s in serials), encoding="ascii")

    def serials(self) -> list[str]:
        """The serials still locked (a C_InitPIN through the module unlists one)."""
        return self.locked.read_text(encoding="ascii").split() if self.locked.exists() else []

    def env(self, mode: str = "locked") -> dict[str, str]:
        """The environment of a process loading the module: which keys, and how (see the C source)."""
        return {"PKCS11_DOUBLE_LOCKED": str(self.locked), "PKCS11_DOUBLE_PIN": mode}


def build(directory: Path) -> LockedDouble:
    """Compile the module into ``directory``; skips the test when gcc or the PKCS#11 header is missing."""
    gcc = shutil.which("gcc")
    if gcc is None or not HEADER.exists():
        pytest.skip(
            "the locked-PIN token double needs gcc and libp11-kit-dev (scripts/_system.sh installs them)"
        )
    directory.mkdir(parents=True, exist_ok=True)
    module = directory / "pin-locked-pkcs11.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-Wall", f"-I{HEADER.parents[1]}",
         f'-DREAL_MODULE="{MODULE}"', "-o", str(module), str(SOURCE), "-ldl"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return LockedDouble(str(module), directory / "locked-serials")
