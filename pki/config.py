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

    def default_database_url(self) -> str:
        return f"sqlite:///{self.home / DB_FILE}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """PKI_HOME (default ./pki-home), PKI_DATABASE_URL (default SQLite inside the home) and PKI_POLICY_DIR
        (default HOME/policies when it exists: TOML files there override the packaged policies one by one)."""
        env = dict(os.environ) if env is None else env
        home = Path(env.get("PKI_HOME") or DEFAULT_HOME).resolve()
        url = env.get("PKI_DATABASE_URL") or f"sqlite:///{home / DB_FILE}"
        policy_dir = Path(env["PKI_POLICY_DIR"]).resolve() if env.get("PKI_POLICY_DIR") else None
        if policy_dir is None and (home / "policies").is_dir():
            policy_dir = home / "policies"
        return cls(home=home, database_url=url, policy_dir=policy_dir)
