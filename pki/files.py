"""Files pkictl writes for others (CRLs, exports, reports): whole or not at all.

A relying party that fetches a CRL while `crl publish` runs, or a clerk who opens a report while it is being
written, must see the old file or the new one, never a torn one. So every such file is written to a
temporary file in the same directory (same file system, so the rename is atomic), flushed to disk (fsync),
renamed over the target (os.replace, atomic on POSIX) and the directory is synced so that the rename itself
survives a power cut. A failure removes the temporary file and leaves the target as it was.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO


def _umask() -> int:
    # os.umask can only be read by setting it; the CLI writes these files from one thread.
    current = os.umask(0o022)
    os.umask(current)
    return current


@contextmanager
def atomic_binary(path: Path) -> Iterator[IO[bytes]]:
    """A binary file object whose contents replace ``path`` atomically when the block ends without error.

    The file gets the mode a plain ``open(path, "w")`` would give it (0o666 less the umask). Raises
    OSError as ``open`` would (missing directory, no permission).
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as e:  # name the file we were asked for, not our temporary one
        raise type(e)(e.errno, e.strerror, str(target)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(temp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _sync_directory(directory)


@contextmanager
def atomic_text(path: Path, *, encoding: str = "utf-8", newline: str | None = None) -> Iterator[IO[str]]:
    """Text over :func:`atomic_binary` (``newline=""`` for the csv module)."""
    with atomic_binary(path) as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, newline=newline, write_through=False)
        try:
            yield text
            text.flush()
        finally:
            text.detach()  # the binary file is closed by atomic_binary, after its fsync


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, atomically (see the module docstring)."""
    with atomic_binary(path) as f:
        f.write(data)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
