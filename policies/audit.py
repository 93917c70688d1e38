"""How the audit key is protected and when the audit chain's head is checkpointed outside the database
(audit.toml), validated at load."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pki.errors import ConfigurationError
from policies._load import need, read_toml

KEY_PROTECTIONS = ("passphrase", "pkcs11")


@dataclass(frozen=True)
class AuditPolicy:
    checkpoint_every_records: int
    checkpoint_every: timedelta
    key_protection: str = "passphrase"
    pkcs11_module: str = ""
    pkcs11_token_label: str = ""

    def checkpoint_due(self, *, seq: int, now: datetime, last_seq: int, last_at: datetime) -> bool:
        """A checkpoint is due once the chain is ``every_records`` past the last one, or it is older than
        ``every_minutes`` and records were written since."""
        if seq <= last_seq:
            return False
        return seq - last_seq >= self.checkpoint_every_records or now - last_at >= self.checkpoint_every


def load_audit(directory: Path) -> AuditPolicy:
    data = read_toml(directory, "audit.toml")
    table = need(data, "checkpoints", dict, "audit.toml")
    where = "audit.toml [checkpoints]"
    records: int = need(table, "every_records", int, where)
    minutes: int = need(table, "every_minutes", int, where)
    if not 1 <= records <= 1_000_000:
        raise ConfigurationError(f"{where}: 'every_records' must be between 1 and 1000000")
    if not 1 <= minutes <= 7 * 24 * 60:
        raise ConfigurationError(f"{where}: 'every_minutes' must be between 1 and 10080 (a week)")
    key = need(data, "key", dict, "audit.toml")
    protection: str = need(key, "protection", str, "audit.toml [key]")
    if protection not in KEY_PROTECTIONS:
        raise ConfigurationError(
            f"audit.toml [key]: 'protection' must be one of {', '.join(KEY_PROTECTIONS)}"
        )
    module: str = need(key, "pkcs11_module", str, "audit.toml [key]")
    label: str = need(key, "pkcs11_token_label", str, "audit.toml [key]")
    if protection == "pkcs11" and not (module and label):
        raise ConfigurationError("audit.toml [key]: pkcs11 needs pkcs11_module and pkcs11_token_label")
    return AuditPolicy(
        checkpoint_every_records=records,
        checkpoint_every=timedelta(minutes=minutes),
        key_protection=protection,
        pkcs11_module=module,
        pkcs11_token_label=label,
    )
