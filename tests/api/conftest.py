"""API fixtures: homes prepared in-process hash passwords and derive the audit key at the smallest cost (a
server started over them verifies and unlocks at the cost kept in each hash and key file)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlmodel import Session

import pki.audit_key
import pki.passwords
from pki.models import ApiSession
from pki.services import Service
from pki.services.sessions import token_hash


@pytest.fixture(autouse=True)
def cheap_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pki.passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    monkeypatch.setattr(pki.audit_key, "SCRYPT_N", 2**4)


def bearer(service: Service, username: str) -> dict[str, str]:
    """A session for ``username`` as login makes it (without paying for Argon2 in every test)."""
    token = f"pkis_test_{username}"
    now = service.ctx.now()
    with Session(service.ctx.engine) as s:
        s.add(
            ApiSession(
                token_hash=token_hash(token),
                username=username,
                created_at=now,
                last_used_at=now,
                expires_at=now + service.ctx.policies.access.desk_absolute,
            )
        )
        s.commit()
    return {"Authorization": f"Bearer {token}"}
