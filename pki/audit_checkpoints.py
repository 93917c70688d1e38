"""Checkpoints: the audit chain's head, MAC'd with the audit key and written outside the database.

Record MACs stop anyone without the key from changing, inserting or appending records; they cannot show
that records were cut off the end (what is left is still a sound, keyed chain). A checkpoint can: it says
"record SEQ existed and had HASH". Each is one line of JSON appended to a file an operator can ship
elsewhere (``tail -F``, a log shipper, a write-once store): the lines are small, written whole under an
exclusive lock and fsync'd, so a kill leaves at most a torn last line, which the next append fences off.
"""

from __future__ import annotations

import fcntl
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pki.audit_key import AuditKey

REASONS = ("keyed", "interval", "crl", "manual")


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: datetime
    reason: str
    key_id: str
    keyed_from: int
    mac: str = ""

    def body(self) -> bytes:
        """What the MAC covers: every field but the MAC, canonically."""
        fields = asdict(self)
        del fields["mac"]
        fields["at"] = self.at.astimezone(UTC).isoformat(timespec="microseconds")
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def line(self) -> bytes:
        document = json.loads(self.body())
        document["mac"] = self.mac
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"

    @classmethod
    def make(cls, key: AuditKey, *, seq: int, hash: str, at: datetime, reason: str) -> Checkpoint:
        unsigned = cls(seq, hash, at, reason, key.key_id, key.keyed_from)
        return cls(seq, hash, at, reason, key.key_id, key.keyed_from, key.checkpoint_mac(unsigned.body()))

    def authentic(self, key: AuditKey) -> bool:
        return self.key_id == key.key_id and hmac.compare_digest(self.mac, key.checkpoint_mac(self.body()))

    @classmethod
    def parse(cls, line: bytes) -> Checkpoint:
        """Raises ValueError for anything that is not a checkpoint line."""
        try:
            d = json.loads(line)
            cp = cls(
                seq=int(d["seq"]),
                hash=str(d["hash"]),
                at=datetime.fromisoformat(d["at"]),
                reason=str(d["reason"]),
                key_id=str(d["key_id"]),
                keyed_from=int(d["keyed_from"]),
                mac=str(d["mac"]),
            )
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"not a checkpoint: {e}") from e
        if cp.at.tzinfo is None:
            raise ValueError("not a checkpoint: its time has no offset")
        return cp


@dataclass(frozen=True)
class CheckpointLine:
    """One line of the file as read: a checkpoint, or why it is not one."""

    number: int
    checkpoint: Checkpoint | None
    error: str = ""


class CheckpointFile:
    """An append-only JSON-lines file of checkpoints."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # writers in other processes (the server, a CLI command)
            data = checkpoint.line()
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a torn line left by a kill stays a line of its own
            os.write(fd, data)
            os.fdatasync(fd)
        finally:
            os.close(fd)  # releases the lock

    def lines(self) -> Iterator[CheckpointLine]:
        """Every non-empty line; nothing when the file does not exist."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    yield CheckpointLine(number, Checkpoint.parse(raw))
                except ValueError as e:
                    yield CheckpointLine(number, None, str(e))

    def last(self) -> Checkpoint | None:
        """The newest readable checkpoint, reading only the end of the file."""
        try:
            with self.path.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                tail = f.read().splitlines()
        except FileNotFoundError:
            return None
        for raw in reversed(tail):
            try:
                return Checkpoint.parse(raw)
            except ValueError:
                continue
        return None
