"""A USB key's own administration through PKCS#11: initialising a blank key (C_InitToken with its SO PIN,
then C_InitPIN for the holder), unblocking a user PIN as the SO (C_InitPIN), changing the SO PIN
(C_SetPIN as SO), and reading whether the user PIN is locked. The key pair and certificate on a key are
never touched here."""

from __future__ import annotations

from functools import partial

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


def _as_so(module: Module, token: TokenInfo, so_pin: str, doing: str, action: object) -> None:
    with module.session(token, None) as s:
        try:
            call(f"logging in to token {token.label!r} as SO", lambda: s.login(so_pin, PyKCS11.CKU_SO))
        except TokenError as e:
            if e.ckr == "CKR_PIN_INCORRECT":
                raise TokenError(
                    f"token {token.label!r} refused its SO PIN on record: it was changed outside pkictl",
                    message_zh="USB Key的管理员PIN与登记的不符",
                    ckr=e.ckr,
                ) from e
            raise
        try:
            call(doing, lambda: action(s))  # type: ignore[operator]
        finally:
            call("logging out", s.logout)
