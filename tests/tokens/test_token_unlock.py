"""The unlock deal carried out on SoftHSM2 through the service (services/unlock.py) and tokens/admin.unblock,
on SQLite and PostgreSQL: refused without an approved deal (the key untouched), by role and by separation of
duties, and a desk that stopped after the key's work and before the center heard of it finishes on a rerun."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from pki.enums import Action, Deal, RequestState
from pki.errors import PermissionDeniedError, SeparationOfDutiesError, TokenError
from pki.models import TokenSoPin, User
from pki.services import Actor, Service
from policies import load_policies
from policies._load import PACKAGED
from tests.conftest import T0, fixed_seal
from tests.support import softhsm
from tests.support.pki import approved, on_record
from tokens import admin
from tokens.session import Module, TokenInfo
from tokens.usbkey import open_usb_key

SOFTHSM = "SoftHSM2"
NEW_PIN = "246810"


def on_key(svc: Service, people: dict[str, Actor], token: softhsm.Token) -> str:
    """A certificate issued onto ``token`` (its SO PIN on record): its serial."""
    rid = approved(svc, people, usbkey_model=SOFTHSM)
    module = Module(token.module)
    with open_usb_key(module, module.find(label=token.label), token.pin) as key:
        done = svc.token_issuance.issue(rid, key, actor=people["distributor"], key_type="ec-p256")
    svc.token_secrets.register(token.serial, token.so_pin, actor=people["ops"])
    return done.serial


def unlock_deal(svc: Service, people: dict[str, Actor], serial: str) -> int:
    req = svc.deals.open(Deal.UNLOCK, serial, actor=people["clerk"])
    assert req.id is not None
    svc.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model=SOFTHSM)
    return req.id


def logs_in(module: Module, info: TokenInfo, pin: str) -> bool:
    try:
        with module.session(info, pin):
            return True
    except TokenError:
        return False


def so_logs_in(module: Module, info: TokenInfo, so_pin: str) -> bool:
    try:
        admin.check_so_pin(module, info, so_pin)
        return True
    except TokenError:
        return False


def pending(svc: Service, serial: str) -> bool:
    with Session(svc.ctx.engine) as s:
        row = s.get(TokenSoPin, serial)
        assert row is not None
        return row.next_sealed is not None


def test_no_approved_deal_no_role_nothing_touched(
    ca_service: Service, people: dict[str, Actor], token: softhsm.Token
) -> None:
    serial = on_key(ca_service, people, token)
    with pytest.raises(PermissionDeniedError) as none:
        ca_service.unlock.begin(token.serial, actor=people["distributor"])
    assert f"'pkictl request new --type unlock --serial {serial}'" in none.value.message
    rid = unlock_deal(ca_service, people, serial)
    assert ca_service.requests.get(rid).state is RequestState.APPROVED  # [deals.unlock] steps = []
    for who in ("clerk", "acceptor", "reviewer", "head", "admin"):  # roles.complete: distributor, ops
        with pytest.raises(PermissionDeniedError, match="has no role that may complete on a unlock deal"):
            ca_service.unlock.begin(token.serial, actor=people[who])
        with pytest.raises(PermissionDeniedError):
            ca_service.unlock.finish(token.serial, rid, actor=people[who], so_pin_changed=True)
    assert not pending(ca_service, token.serial)  # no SO PIN handed out
    module = Module(token.module)
    info = module.find(serial=token.serial)
    assert logs_in(module, info, token.pin) and so_logs_in(module, info, token.so_pin)
    assert ca_service.requests.get(rid).state is RequestState.APPROVED


def test_unlock_through_the_service_keeps_the_key_pair(
    ca_service: Service, people: dict[str, Actor], token: softhsm.Token
) -> None:
    serial = on_key(ca_service, people, token)
    rid = unlock_deal(ca_service, people, serial)
    module = Module(token.module)
    info = module.find(serial=token.serial)
    with module.session(info, token.pin) as s:  # the holder's PIN, changed behind pkictl's back
        s.setPin(token.pin, "999999")
    plan = ca_service.unlock.begin(token.serial, actor=people["ops"])
    assert (plan.request_id, plan.serial, plan.so_pins) == (rid, serial, (token.so_pin,))
    assert token.so_pin not in repr(plan) and plan.new_so_pin not in repr(plan)
    done = admin.unblock(module, info, so_pins=plan.so_pins, new_user_pin=NEW_PIN, new_so_pin=plan.new_so_pin)
    assert done.so_pin_changed
    unlocked = ca_service.unlock.finish(token.serial, rid, actor=people["ops"], so_pin_changed=True)
    assert unlocked.state == "completed" and ca_service.requests.get(rid).state is RequestState.COMPLETED
    assert logs_in(module, info, NEW_PIN) and not logs_in(module, info, "999999")
    assert so_logs_in(module, info, plan.new_so_pin) and not so_logs_in(module, info, token.so_pin)
    assert not pending(ca_service, token.serial)
    with module.session(info, NEW_PIN) as s:  # the key pair and certificate stay
        assert len(s.findObjects()) == 3
    with pytest.raises(PermissionDeniedError, match="no approved unlock deal"):
        ca_service.unlock.begin(token.serial, actor=people["ops"])


@pytest.mark.parametrize("stopped", ["after-so-pin-change", "before-so-pin-change"])
def test_a_desk_that_stopped_before_finishing_finishes_on_a_rerun(
    ca_service: Service, people: dict[str, Actor], token: softhsm.Token, stopped: str
) -> None:
    serial = on_key(ca_service, people, token)
    rid = unlock_deal(ca_service, people, serial)
    module = Module(token.module)
    info = module.find(serial=token.serial)
    first = ca_service.unlock.begin(token.serial, actor=people["distributor"])
    if stopped == "after-so-pin-change":  # C_InitPIN and C_SetPIN done, then the desk died
        admin.unblock(module, info, so_pins=first.so_pins, new_user_pin="111111", new_so_pin=first.new_so_pin)
    else:  # C_InitPIN done, then the desk died
        admin.unlock(module, info, so_pin=first.so_pins[0], new_user_pin="111111")
    assert ca_service.requests.get(rid).state is RequestState.APPROVED
    # Run again: the same new SO PIN comes back, the pending one offered first; the key opens with one.
    again = ca_service.unlock.begin(token.serial, actor=people["distributor"])
    assert again.so_pins == (first.new_so_pin, token.so_pin) and again.new_so_pin == first.new_so_pin
    done = admin.unblock(
        module, info, so_pins=again.so_pins, new_user_pin=NEW_PIN, new_so_pin=again.new_so_pin
    )
    assert done.so_pin_changed and done.so_pin_error is None
    ca_service.unlock.finish(token.serial, rid, actor=people["distributor"], so_pin_changed=True)
    assert ca_service.requests.get(rid).state is RequestState.COMPLETED
    assert logs_in(module, info, NEW_PIN) and so_logs_in(module, info, first.new_so_pin)
    assert on_record(ca_service, token.serial, people["ops"]) == (first.new_so_pin,)


def test_separation_of_duties_as_workflow_toml_says(
    ca_service: Service, people: dict[str, Actor], token: softhsm.Token, tmp_path: Path
) -> None:
    """An unlock that also needs review: the reviewer who approved it may not carry it out."""
    serial = on_key(ca_service, people, token)
    text = (PACKAGED / "workflow.toml").read_text(encoding="utf-8")
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "workflow.toml").write_text(
        text.replace(
            "[deals.unlock]  # 解锁: the commonest visit, accepted at the desk and done there\nsteps = []",
            '[deals.unlock]\nsteps = ["approve"]',
        ),
        encoding="utf-8",
    )
    svc = Service(
        ca_service.ctx.engine,
        clock=ca_service.ctx.clock,
        policies=load_policies(policy),
        audit_seal=fixed_seal(tmp_path),
    )
    both = Actor("rev-dist", frozenset({"reviewer", "distributor"}))
    with Session(svc.ctx.engine) as s:
        s.add(User(username=both.username, password_hash="!", roles="distributor,reviewer", created_at=T0))
        s.commit()
    rid = unlock_deal(svc, people, serial)
    svc.requests.review(rid, actor=both, decision=Action.APPROVE)
    with pytest.raises(SeparationOfDutiesError, match="may not issue, distribute or carry out"):
        svc.unlock.begin(token.serial, actor=both)
    assert not pending(svc, token.serial)
    plan = svc.unlock.begin(token.serial, actor=people["distributor"])
    assert plan.request_id == rid
