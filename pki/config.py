"""Where the home is and which database it uses (environment, then defaults)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "pki-home"
DB_FILE = "pki.db"


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    policy_dir: Path | None = None  # overrides for policies/*.toml, file by file
    audit_checkpoints: Path | None = None  # the audit checkpoint file; default HOME/audit/checkpoints.jsonl

    def default_database_url(self) -> str:
        return f"sqlite:///{self.home / DB_FILE}"

    def audit_checkpoint_path(self) -> Path:
        return self.audit_checkpoints or self.home / "audit" / "checkpoints.jsonl"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """PKI_HOME (default ./pki-home), PKI_DATABASE_URL (default SQLite inside the home), PKI_POLICY_DIR
        (default HOME/policies when it exists: TOML files there override the packaged policies one by one) and
        PKI_AUDIT_CHECKPOINTS (where audit checkpoints are appended: a file an operator ships elsewhere)."""
        env = dict(os.environ) if env is None else env
        home = Path(env.get("PKI_HOME") or DEFAULT_HOME).resolve()
        url = env.get("PKI_DATABASE_URL") or f"sqlite:///{home / DB_FILE}"
        policy_dir = Path(env["PKI_POLICY_DIR"]).resolve() if env.get("PKI_POLICY_DIR") else None
        if policy_dir is None and (home / "policies").is_dir():
            policy_dir = home / "policies"
        checkpoints = (
            Path(env["PKI_AUDIT_CHECKPOINTS"]).resolve() if env.get("PKI_AUDIT_CHECKPOINTS") else None
        )
        return cls(home=home, database_url=url, policy_dir=policy_dir, audit_checkpoints=checkpoints)
