"""Loading a PKCS#11 module, finding a token by label or serial, logging in; CKR_* codes -> TokenError."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import PyKCS11

from pki.errors import TokenError
from tokens import native

T = TypeVar("T")

_MESSAGES: dict[str, tuple[str, str]] = {
    "CKR_PIN_INCORRECT": ("wrong PIN", "PIN码错误"),
    "CKR_PIN_LOCKED": ("the PIN is locked: the token needs its SO to unblock it", "PIN已锁定"),
    "CKR_PIN_LEN_RANGE": ("PIN length not accepted by the token", "PIN长度不符合要求"),
    "CKR_TOKEN_NOT_PRESENT": ("the token is not present", "USB Key未插入"),
    "CKR_DEVICE_REMOVED": ("the token was removed", "USB Key已拔出"),
    "CKR_SESSION_HANDLE_INVALID": ("the token was removed or the session closed", "USB Key会话已失效"),
    "CKR_MECHANISM_INVALID": ("the token does not support this mechanism", "USB Key不支持该算法"),
    "CKR_DEVICE_MEMORY": ("the token is full", "USB Key存储空间已满"),
    "CKR_USER_NOT_LOGGED_IN": ("not logged in to the token", "未登录USB Key"),
    # What a key pulled out in the middle of an operation often reports instead of CKR_DEVICE_REMOVED.
    "CKR_GENERAL_ERROR": (
        "the token failed: check that it is still plugged in, then try again",
        "USB Key出错，请检查是否已拔出后重试",
    ),
    "CKR_DEVICE_ERROR": (
        "the token reported a device error: plug it in again and retry",
        "USB Key设备错误，请重新插入后重试",
    ),
    "CKR_FUNCTION_FAILED": ("the token could not carry out the operation", "USB Key无法完成该操作"),
    "CKR_OBJECT_HANDLE_INVALID": (
        "an object on the token has gone (removed by another tool, or the key was pulled out)",
        "USB Key上的对象已不存在",
    ),
}


def token_error(e: PyKCS11.PyKCS11Error, doing: str) -> TokenError:
    name = PyKCS11.CKR.get(e.value, f"CKR_0x{e.value:08X}")
    text, zh = _MESSAGES.get(name, (name, f"USB Key错误（{name}）"))
    return TokenError(f"{doing}: {text} ({name})", message_zh=zh, ckr=name)


def call(doing: str, fn: Callable[[], T]) -> T:
    """Run a PyKCS11 call (one at a time: native.PKCS11_CALLS), turning its errors into TokenError naming what
    we were doing."""
    try:
        with native.PKCS11_CALLS:
            return fn()
    except PyKCS11.PyKCS11Error as e:
        raise token_error(e, doing) from e


@dataclass(frozen=True)
class TokenInfo:
    slot: int
    label: str
    serial: str
    model: str
    manufacturer: str


@dataclass(frozen=True)
class SlotScan:
    tokens: list[TokenInfo]
    faults: list[TokenError]


class Module:
    """One loaded PKCS#11 library. PyKCS11 keeps it initialized for the life of this object."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._mechanisms: dict[tuple[int, str], frozenset[int]] = {}
        self._lib = PyKCS11.PyKCS11Lib()
        try:
            with native.PKCS11_CALLS:
                self._lib.load(path)
        except PyKCS11.PyKCS11Error as e:
            raise TokenError(
                f"cannot load PKCS#11 module {path}: {e}", message_zh="无法加载USB Key驱动"
            ) from e

    @property
    def lib(self) -> Any:
        """The loaded PyKCS11 library, for the calls this class does not wrap (tokens/admin.py)."""
        return self._lib

    def tokens(self) -> list[TokenInfo]:
        """The initialized, readable tokens present, in slot order (see scan for the unreadable ones)."""
        return self.scan().tokens

    def scan(self) -> SlotScan:
        """Every slot with a token in it: the initialized tokens, and the slots whose token could not be read
        (a faulty key, one pulled out half-way). One bad key does not hide the others."""
        found: list[TokenInfo] = []
        faults: list[TokenError] = []
        for slot in call("listing slots", lambda: self._lib.getSlotList(tokenPresent=True)):
            try:
                info = call(f"reading the token in slot {slot}", partial(self._lib.getTokenInfo, slot))
            except TokenError as e:
                faults.append(e)
                continue
            if not info.flags & PyKCS11.CKF_TOKEN_INITIALIZED:
                continue  # a blank slot (SoftHSM's free slot, a factory-fresh card): not a usable token
            found.append(
                TokenInfo(
                    int(slot),
                    _text(info.label),
                    _text(info.serialNumber),
                    _text(info.model),
                    _text(info.manufacturerID),
                )
            )
        return SlotScan(found, faults)

    def find(self, *, label: str | None = None, serial: str | None = None) -> TokenInfo:
        """The present token with this label or serial; TokenError when none (or several) match."""
        if (label is None) == (serial is None):
            raise ValueError("give a label or a serial")
        scan = self.scan()
        hits = [
            t
            for t in scan.tokens
            if (label is not None and t.label == label) or (serial is not None and t.serial == serial)
        ]
        wanted = f"label {label!r}" if label is not None else f"serial {serial!r}"
        if not hits:
            unread = "".join(f"; {f.message}" for f in scan.faults)
            raise TokenError(
                f"no token with {wanted} is present (searched PKCS#11 module {self.path}){unread}",
                message_zh="未找到指定的USB Key",
                ckr="CKR_TOKEN_NOT_PRESENT",
            )
        if len(hits) > 1:
            raise TokenError(f"{len(hits)} tokens have {wanted}: use --token-serial")
        return hits[0]

    def mechanisms(self, token: TokenInfo) -> frozenset[int]:
        """The mechanisms ``token`` offers (asked once per token serial and slot for this module)."""
        key = (token.slot, token.serial)
        if key not in self._mechanisms:
            names = call("listing mechanisms", lambda: self._lib.getMechanismList(token.slot))
            self._mechanisms[key] = frozenset(PyKCS11.CKM[n] if isinstance(n, str) else int(n) for n in names)
        return self._mechanisms[key]

    def pin_tries_left_hint(self, slot: int) -> str:
        """What the token says about remaining PIN tries (flags only; PKCS#11 has no counter)."""
        flags = call("reading token info", lambda: self._lib.getTokenInfo(slot)).flags
        if flags & PyKCS11.CKF_USER_PIN_FINAL_TRY:
            return "one try left before the PIN locks"
        if flags & PyKCS11.CKF_USER_PIN_COUNT_LOW:
            return "few tries left before the PIN locks"
        return ""

    def user_pin_status(self, token: TokenInfo) -> str:
        """Before the holder's PIN is asked for or tried: TokenError (CKR_PIN_LOCKED, the code a log-in
        would fail with) when the token reports the PIN locked (CKF_USER_PIN_LOCKED); else a warning when it
        reports the last try or few tries left, or ''."""
        flags = call("reading token info", lambda: self._lib.getTokenInfo(token.slot)).flags
        if flags & PyKCS11.CKF_USER_PIN_LOCKED:
            raise TokenError(
                f"token {token.serial}'s user PIN is locked (CKF_USER_PIN_LOCKED): the token needs its SO "
                "to unblock it",
                message_zh="USB Key的用户PIN已锁定",
                ckr="CKR_PIN_LOCKED",
            )
        if flags & PyKCS11.CKF_USER_PIN_FINAL_TRY:
            return "last try: one more wrong PIN locks the key"
        if flags & PyKCS11.CKF_USER_PIN_COUNT_LOW:
            return "few tries left before the PIN locks"
        return ""

    @contextmanager
    def session(self, token: TokenInfo, pin: str | None) -> Iterator[Any]:
        """A read-write session, logged in as user when ``pin`` is given; closed on exit."""
        s = call(
            "opening a session",
            lambda: self._lib.openSession(token.slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION),
        )
        try:
            if pin is not None:
                try:
                    native.for_session(s).login(s, pin)
                except PyKCS11.PyKCS11Error as e:
                    err = token_error(e, f"logging in to token {token.label!r}")
                    hint = self.pin_tries_left_hint(token.slot) if err.ckr == "CKR_PIN_INCORRECT" else ""
                    if hint:
                        err = TokenError(f"{err.message}; {hint}", message_zh=err.message_zh, ckr=err.ckr)
                    raise err from e
            yield s
        finally:
            # A token pulled out can be neither logged out of nor closed: what failed before says more.
            with contextlib.suppress(TokenError):
                if pin is not None:
                    call("logging out", s.logout)
            with contextlib.suppress(TokenError):
                call("closing the session", s.closeSession)


class SharedSession:
    """One logged-in session kept open for a long-lived process (a CA or OCSP responder), used under a lock:
    PKCS#11 sessions are not for concurrent operations."""

    def __init__(self, module: Module, token: TokenInfo, pin: str) -> None:
        self.module = module
        self.token = token
        self._context = module.session(token, pin)
        self.raw = self._context.__enter__()
        self.lock = threading.Lock()

    def close(self) -> None:
        self._context.__exit__(None, None, None)


def _text(value: str) -> str:
    """PKCS#11 fixed-width fields are blank-padded (some tokens pad with NULs)."""
    return value.rstrip(" \x00")
