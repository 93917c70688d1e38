"""Users, roles and passwords."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from pki.errors import AuthenticationError, ConflictError, PermissionDeniedError, ValidationError
from pki.services import Actor, Service


def test_first_user_must_be_admin_then_only_admins_add(service: Service) -> None:
    with pytest.raises(PermissionDeniedError, match="first user"):
        service.users.add("clerk", "a-long-password", ["entry"], actor=None)
    service.users.add("root", "a-long-password", ["admin"], actor=None)
    with pytest.raises(PermissionDeniedError, match="only an admin"):
        service.users.add("clerk", "a-long-password", ["entry"], actor=None)
    with pytest.raises(PermissionDeniedError):
        service.users.add("clerk", "a-long-password", ["entry"], actor=Actor("ops", frozenset({"ops"})))
    admin = service.users.authenticate("root", "a-long-password")
    created = service.users.add("clerk", "another-password", ["entry", "acceptor"], actor=admin)
    assert created.role_set() == {"entry", "acceptor"}
    with pytest.raises(ConflictError):
        service.users.add("clerk", "another-password", ["entry"], actor=admin)


@pytest.mark.parametrize(
    ("name", "password", "roles", "field"),
    [
        ("x", "a-long-password", ["entry"], "username"),
        ("has space", "a-long-password", ["entry"], "username"),
        ("clerk", "short", ["entry"], "password"),
        ("clerk", "a-long-password", ["king"], "roles"),
        ("clerk", "a-long-password", [], "roles"),
    ],
    ids=["short-name", "space", "short-password", "unknown-role", "no-role"],
)
def test_bad_new_users(service: Service, name: str, password: str, roles: list[str], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        service.users.add(name, password, roles, actor=None)
    assert [e.field for e in info.value.errors] == [field]


def test_passwords_are_hashed_and_checked(service: Service) -> None:
    service.users.add("root", "a-long-password", ["admin"], actor=None)
    with service.ctx.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM pki_user")).scalar_one()
    assert stored.startswith("$argon2id$") and "a-long-password" not in stored
    assert service.users.authenticate("root", "a-long-password").roles == {"admin"}
    with pytest.raises(AuthenticationError):
        service.users.authenticate("root", "A-long-password")
    with pytest.raises(AuthenticationError):
        service.users.authenticate("nobody", "a-long-password")


def test_inactive_user_cannot_log_in(service: Service) -> None:
    service.users.add("root", "a-long-password", ["admin"], actor=None)
    with service.ctx.engine.begin() as conn:
        conn.execute(text("UPDATE pki_user SET active = false"))
    with pytest.raises(AuthenticationError):
        service.users.authenticate("root", "a-long-password")
    assert '"reason":"inactive"' in service.audit.recent(limit=1)[0].details


def test_admins_change_roles_activation_and_passwords(service: Service) -> None:
    service.users.add("root", "a-long-password", ["admin"], actor=None)
    admin = service.users.authenticate("root", "a-long-password")
    service.users.add("li", "another-password", ["entry"], actor=admin)
    changed = service.users.update("li", actor=admin, roles=["entry", "acceptor"])
    assert changed.role_set() == {"entry", "acceptor"}
    service.users.update("li", actor=admin, password="a-new-password-1")
    assert service.users.authenticate("li", "a-new-password-1").roles == {"entry", "acceptor"}
    service.users.update("li", actor=admin, active=False)
    with pytest.raises(AuthenticationError):
        service.users.authenticate("li", "a-new-password-1")
    updates = [r.details for r in service.audit.recent(limit=20) if r.action == "user.update"]
    assert updates == ['{"roles":["acceptor","entry"]}', '{"password":"reset"}', '{"active":false}']
    with pytest.raises(ValidationError, match="nothing to change"):
        service.users.update("li", actor=admin, active=False)
    with pytest.raises(ConflictError, match="no active admin"):
        service.users.update("root", actor=admin, roles=["ops"])
    with pytest.raises(PermissionDeniedError):
        service.users.update(
            "root", actor=Actor("li", frozenset({"admin"})), active=False
        )  # li is not an admin
    with pytest.raises(Exception, match="no user 'nobody'"):
        service.users.update("nobody", actor=admin, active=False)
