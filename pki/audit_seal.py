"""What the audit trail keeps outside the database: the audit key and the checkpoint file.

A process unlocks the key once, on its first write (or at start, for the server: see
AuditService.unlock), and keeps it in memory; the secret (a passphrase, or the user PIN of the audit key's
HSM token) comes from the protection it is given (PKI_AUDIT_PASSPHRASE or a prompt in the CLI). Without it a write is refused before its transaction starts:
a change is never kept without an authenticated record.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from pki.audit_checkpoints import Checkpoint, CheckpointFile
from pki.audit_key import AuditKey, KeyProtection, create_key_file, open_key_file
from pki.errors import KeyAccessError
from policies.audit import AuditPolicy

KEY_FILE = Path("audit") / "audit.key"  # in the home, beside ca/


class AuditSeal:
    def __init__(
        self,
        key_path: Path | None,
        protection: KeyProtection | None,
        checkpoint_path: Path,
        *,
        key: AuditKey | None = None,
    ) -> None:
        self.key_path = key_path
        self._protection = protection
        self._key = key
        self._lock = threading.Lock()
        self.checkpoints = CheckpointFile(checkpoint_path)
        self._last: Checkpoint | None = None  # the newest checkpoint this process knows of

    @classmethod
    def fixed(cls, key: AuditKey, checkpoint_path: Path) -> AuditSeal:
        """An already unlocked key (tests, benchmarks): no file, no KDF."""
        return cls(None, None, checkpoint_path, key=key)

    @property
    def unlocked(self) -> bool:
        return self._key is not None

    def key(self) -> AuditKey:
        """The audit key, unlocked on the first call. Raises KeyAccessError."""
        if self._key is None:
            with self._lock:
                if self._key is None:
                    if self.key_path is None or self._protection is None:
                        raise KeyAccessError(
                            "the audit key is locked: set PKI_AUDIT_PASSPHRASE", message_zh="审计密钥未解锁"
                        )
                    self._key = open_key_file(self.key_path, self._protection)
        return self._key

    def has_key_file(self) -> bool:
        return self._key is not None or (self.key_path is not None and self.key_path.exists())

    def create_key(self, *, keyed_from: int) -> AuditKey:
        """Make the home's audit key (``pkictl init``); the records from ``keyed_from`` on carry its MAC."""
        if self.key_path is None or self._protection is None:
            raise KeyAccessError("no audit key file or passphrase configured")
        with self._lock:
            self._key = create_key_file(self.key_path, self._protection, keyed_from=keyed_from)
        return self._key

    def checkpoint(self, *, seq: int, hash: str, at: datetime, reason: str) -> Checkpoint:
        checkpoint = Checkpoint.make(self.key(), seq=seq, hash=hash, at=at, reason=reason)
        self.checkpoints.append(checkpoint)
        self._last = checkpoint
        return checkpoint

    def after_commit(self, *, seq: int, hash: str, at: datetime, policy: AuditPolicy) -> None:
        """Checkpoint a head this process has just committed, if the policy's interval says so. Costs a
        comparison per write; the file is read once per process and again only when a checkpoint looks due
        (another process may have written one meanwhile)."""
        if self._last is None:
            self._last = self.checkpoints.last()
        last = self._last
        if last is not None and not policy.checkpoint_due(
            seq=seq, now=at, last_seq=last.seq, last_at=last.at
        ):
            return
        last = self._last = self.checkpoints.last()
        if last is None or policy.checkpoint_due(seq=seq, now=at, last_seq=last.seq, last_at=last.at):
            self.checkpoint(seq=seq, hash=hash, at=at, reason="interval")
