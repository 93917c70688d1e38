"""A USB key's own administration on SoftHSM2: a blank key initialised with a random SO PIN and the
holder's PIN, the SO PIN kept sealed (never in plain text in the database or the audit trail), the holder's
PIN reset as the SO after it was changed behind pkictl's back, and the SO PIN rotated on the way."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from pki.errors import ConflictError, NotFoundError, PermissionDeniedError, TokenError
from pki.services import Actor, Service
from pki.token_pins import new_so_pin
from tests.support import softhsm
from tokens import admin
from tokens.session import Module


@pytest.fixture
def module(softhsm_conf: Path) -> Module:
    return Module(softhsm.MODULE)


def test_a_blank_key_is_initialised_and_its_holder_pin_reset_as_the_so(module: Module) -> None:
    blank = admin.blank_slots(module)
    assert blank, "SoftHSM always offers a free slot"
    so_pin, label = new_so_pin(), f"k-{uuid.uuid4().hex[:10]}"
    token = admin.initialize(module, blank[0][0], so_pin=so_pin, user_pin="111111", label=label)
    assert token.label == label and token.serial
    with module.session(token, "111111"):
        pass
    # The holder changes the PIN behind pkictl's back and forgets it: the SO sets a new one.
    with module.session(token, "111111") as s:
        s.setPin("111111", "999999")
    with pytest.raises(TokenError, match="wrong PIN"), module.session(token, "111111"):
        pass
    admin.unlock(module, token, so_pin=so_pin, new_user_pin="222222")
    with module.session(token, "222222"):
        pass
    assert not admin.user_pin_locked(module, token)
    # The SO PIN changes, and the old one is refused from then on, naming what happened.
    fresh = new_so_pin()
    admin.change_so_pin(module, token, old=so_pin, new=fresh)
    with pytest.raises(TokenError, match="SO PIN on record") as refused:
        admin.unlock(module, token, so_pin=so_pin, new_user_pin="333333")
    assert refused.value.ckr == "CKR_PIN_INCORRECT"
    admin.unlock(module, token, so_pin=fresh, new_user_pin="333333")


def test_so_pins_are_sealed_and_rotated(ca_service: Service, people: dict[str, Actor]) -> None:
    ops, clerk = people["ops"], people["clerk"]
    pin = new_so_pin()
    with pytest.raises(PermissionDeniedError):
        ca_service.token_secrets.register("T-1", pin, actor=clerk)
    ca_service.token_secrets.register("T-1", pin, actor=ops)
    with pytest.raises(ConflictError, match="already has its SO PIN"):
        ca_service.token_secrets.register("T-1", new_so_pin(), actor=ops)
    with ca_service.ctx.write() as s:
        first = ca_service.token_secrets.for_unblock(s, "T-1", actor=ops)
    assert first.current == (pin,) and first.new != pin
    # Stopped before the desk confirmed: both are offered, the pending one first and handed out again as the
    # new one (a third would lose the SO PIN of a key that took the second and stopped again); then confirmed.
    with ca_service.ctx.write() as s:
        second = ca_service.token_secrets.for_unblock(s, "T-1", actor=ops)
    assert second.current == (first.new, pin) and second.new == first.new
    assert pin not in repr(second) and first.new not in repr(second)
    ca_service.token_secrets.changed("T-1", actor=ops)
    with ca_service.ctx.write() as s:
        assert ca_service.token_secrets.for_unblock(s, "T-1", actor=ops).current == (second.new,)
    with pytest.raises(NotFoundError, match="no SO PIN on record"), ca_service.ctx.write() as s:
        ca_service.token_secrets.for_unblock(s, "T-2", actor=ops)
    # Not in plain text anywhere in the database (the audit trail included), and bound to its serial.
    with ca_service.ctx.engine.connect() as conn:
        for table in ("token_so_pin", "audit_record"):
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()
            dump = repr(rows)
            for secret in (pin, first.new, second.new):
                assert secret not in dump and secret.encode() not in b"".join(
                    v for r in rows for v in r if isinstance(v, bytes | memoryview)
                )
        conn.execute(text("UPDATE token_so_pin SET serial = 'T-3' WHERE serial = 'T-1'"))
        conn.commit()
    from pki.errors import KeyAccessError

    with pytest.raises(KeyAccessError), ca_service.ctx.write() as s:
        ca_service.token_secrets.for_unblock(s, "T-3", actor=ops)
