"""A USB key's own administration through PKCS#11: initialising a blank key (C_InitToken with its SO PIN,
then C_InitPIN for the holder), unblocking a user PIN as the SO (C_InitPIN), changing the SO PIN
(C_SetPIN as SO), and reading whether the user PIN is locked. The key pair and certificate on a key are
never touched here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import PyKCS11

from pki.errors import TokenError
from tokens.session import Module, TokenInfo, call


def blank_slots(module: Module, *, serial: str | None = None) -> list[tuple[int, str]]:
    """(slot, serial) of each key present that was never initialised (factory-fresh, or SoftHSM's free
    slot, whose serial is empty until then); only the one with ``serial`` when it is given."""
    lib = module.lib
    out = []
    for slot in call("listing slots", lambda: lib.getSlotList(tokenPresent=True)):
        try:
            info = call(f"reading the token in slot {slot}", partial(lib.getTokenInfo, slot))
        except TokenError:
            continue  # a faulty key (or one pulled out half-way) does not hide the blank ones
        found = str(info.serialNumber).rstrip(" \x00")
        if not info.flags & PyKCS11.CKF_TOKEN_INITIALIZED and serial in (None, found):
            out.append((int(slot), found))
    return out


def initialize(module: Module, slot: int, *, so_pin: str, user_pin: str, label: str) -> TokenInfo:
    """Initialise the key in ``slot`` with ``so_pin`` and ``label``, then set the holder's ``user_pin``.
    Erases whatever the key held: callers offer this only for blank keys."""
    lib = module.lib
    call(f"initialising the token in slot {slot}", partial(lib.initToken, slot, so_pin, label))
    token = module.find(label=label)
    _as_so(module, token, so_pin, "setting the holder's PIN", lambda s: s.initPin(user_pin))
    return token


def unlock(module: Module, token: TokenInfo, *, so_pin: str, new_user_pin: str) -> None:
    """Unblock (or reset) the holder's PIN as the SO: C_InitPIN. The key pair and certificate stay."""
    _as_so(
        module,
        token,
        so_pin,
        f"setting a new user PIN on token {token.label!r}",
        lambda s: s.initPin(new_user_pin),
    )


@dataclass(frozen=True)
class Unblocked:
    """What :func:`unblock` did beyond the holder's new PIN, which it always set."""

    so_pin_changed: bool  # the key's SO PIN is now the new one
    so_pin_error: TokenError | None  # why not, when the key refused the change


def unblock(
    module: Module, token: TokenInfo, *, so_pins: Sequence[str], new_user_pin: str, new_so_pin: str
) -> Unblocked:
    """An unlock deal on the key, in one SO session: log in with the first of ``so_pins`` the key takes,
    set the holder's ``new_user_pin`` (C_InitPIN), then the SO PIN to ``new_so_pin`` (C_SetPIN; nothing to
    do when the key has it already, from an attempt that stopped before the center heard of it). The key
    pair and certificate stay. A refused SO PIN change is reported, not raised: the holder's PIN is set, and
    the center keeps both SO PINs until it hears that the key took the new one."""
    with module.session(token, None) as s:
        used = _so_login(s, token, so_pins)
        failed: TokenError | None = None
        try:
            call(f"setting a new user PIN on token {token.label!r}", lambda: s.initPin(new_user_pin))
            if used != new_so_pin:
                try:
                    call(f"changing the SO PIN of token {token.label!r}", lambda: s.setPin(used, new_so_pin))
                except TokenError as e:
                    failed = e
        finally:
            call("logging out", s.logout)
    return Unblocked(failed is None, failed)


def change_so_pin(module: Module, token: TokenInfo, *, old: str, new: str) -> None:
    """Replace the SO PIN (C_SetPIN logged in as SO)."""
    _as_so(module, token, old, f"changing the SO PIN of token {token.label!r}", lambda s: s.setPin(old, new))


def check_so_pin(module: Module, token: TokenInfo, so_pin: str) -> None:
    """Log in as SO and out again: TokenError when the key refuses ``so_pin``."""
    _as_so(module, token, so_pin, "checking the SO PIN", lambda s: None)


def user_pin_locked(module: Module, token: TokenInfo) -> bool:
    """Whether the key reports its user PIN locked (CKF_USER_PIN_LOCKED)."""
    lib = module.lib
    info = call("reading token info", partial(lib.getTokenInfo, token.slot))
    return bool(info.flags & PyKCS11.CKF_USER_PIN_LOCKED)


def reinitialize(
    module: Module, token: TokenInfo, *, so_pins: Sequence[str], user_pin: str, label: str
) -> tuple[TokenInfo, str]:
    """Initialise an initialised key again (C_InitToken erases it) with the first of ``so_pins`` it takes,
    keeping that SO PIN, then set the holder's ``user_pin``: the key as found afterwards, and the SO PIN."""
    lib = module.lib
    doing = f"initialising token {token.label!r} again"
    for so_pin in so_pins:
        try:
            call(doing, partial(lib.initToken, token.slot, so_pin, label))
        except TokenError as e:
            if e.ckr != "CKR_PIN_INCORRECT":
                raise
            continue
        again = module.find(label=label)
        _as_so(module, again, so_pin, "setting the holder's PIN", lambda s: s.initPin(user_pin))
        return again, so_pin
    raise TokenError(
        f"token {token.label!r} refused its SO PIN on record: it was changed outside pkictl",
        message_zh="USB Key的管理员PIN与登记的不符",
        ckr="CKR_PIN_INCORRECT",
    )


def _so_login(s: Any, token: TokenInfo, so_pins: Sequence[str]) -> str:
    """Log the session in as SO with the first of ``so_pins`` the key takes; that PIN."""
    for so_pin in so_pins:
        try:
            call(f"logging in to token {token.label!r} as SO", partial(s.login, so_pin, PyKCS11.CKU_SO))
        except TokenError as e:
            if e.ckr != "CKR_PIN_INCORRECT":
                raise
            continue
        return so_pin
    raise TokenError(
        f"token {token.label!r} refused its SO PIN on record: it was changed outside pkictl",
        message_zh="USB Key的管理员PIN与登记的不符",
        ckr="CKR_PIN_INCORRECT",
    )


def _as_so(module: Module, token: TokenInfo, so_pin: str, doing: str, action: object) -> None:
    with module.session(token, None) as s:
        _so_login(s, token, [so_pin])
        try:
            call(doing, lambda: action(s))  # type: ignore[operator]
        finally:
            call("logging out", s.logout)
