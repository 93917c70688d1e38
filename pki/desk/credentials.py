"""Where a desk keeps its session: one JSON file for the operating-system user, owner-only (0600).

PKI_SESSION_FILE names it; by default $XDG_CONFIG_HOME/pkictl/session.json (~/.config/pkictl/…). It holds
the server's URL, the operator and the bearer token; the server keeps only the token's hash.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class SavedSession:
    server: str
    username: str
    token: str
    expires_at: str


def session_file() -> Path:
    named = os.environ.get("PKI_SESSION_FILE")
    if named:
        return Path(named)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "pkictl" / "session.json"


def load() -> SavedSession | None:
    path = session_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return SavedSession(
            server=str(data["server"]),
            username=str(data["username"]),
            token=str(data["token"]),
            expires_at=str(data.get("expires_at", "")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable: as if logged out (login writes a fresh one)


def save(session: SavedSession) -> Path:
    """Write the session file owner-only, atomically (a reader sees the old file or the new one)."""
    import tempfile

    path = session_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A new file of our own (O_EXCL, 0600, a random name): nothing planted beside it is opened or followed.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)
            json.dump(asdict(session), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def forget() -> None:
    session_file().unlink(missing_ok=True)
