"""API fixtures: homes prepared in-process hash passwords and derive the audit key at the smallest cost (a
server started over them verifies and unlocks at the cost kept in each hash and key file)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

import pki.audit_key
import pki.passwords


@pytest.fixture(autouse=True)
def cheap_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pki.passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    monkeypatch.setattr(pki.audit_key, "SCRYPT_N", 2**4)
