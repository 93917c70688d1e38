"""The slow PKCS#11 calls made through ctypes, which lets other threads run while the token works.

PyKCS11's extension holds Python's global lock through every call into the module, so while a token
generates a key pair or writes an object nothing else in the process moves. ctypes releases it around a
foreign call. The calls that take a token real time (log in, generate a key pair, sign, create an object) go
through here, on the same loaded module and the same session handles as PyKCS11; everything else stays in
PyKCS11. Failures raise ``PyKCS11.PyKCS11Error`` with the CKR code, exactly as PyKCS11 would, so the one
CKR -> TokenError mapping in tokens.session applies unchanged.

One thread at a time still calls the module: PyKCS11 initializes it with C_Initialize(NULL), which lets
the module assume no two threads call it at once. Releasing the GIL changes what *other* threads may do (run
Python, talk to the database), not who calls the token: issuing onto a USB key hands the token from the
CLI's thread to the token thread and back (pki/services/token_device.py), never to both at once, and a
long-lived process signs under its SharedSession's lock; and every call, through here or through PyKCS11
(tokens.session.call), holds :data:`PKCS11_CALLS`.

Layout (PKCS#11 v2.40 §3, pkcs11t.h/pkcs11f.h): CK_ULONG is the platform's ``unsigned long``; structures are
packed to 1 byte on Windows only; CK_FUNCTION_LIST is a CK_VERSION followed by the 68 function pointers in
the order of pkcs11f.h.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Sequence
from typing import Any

import PyKCS11
import PyKCS11.LowLevel

CK_ULONG = ctypes.c_ulong
CK_RV = CK_ULONG
_PACK = 1 if sys.platform == "win32" else 0  # 0: the platform's own alignment

# pkcs11f.h, in order: the index of a function is its position in CK_FUNCTION_LIST after the version.
_FUNCTIONS = (
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_InitToken",
    "C_InitPIN",
    "C_SetPIN",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
    "C_Logout",
    "C_CreateObject",
    "C_CopyObject",
    "C_DestroyObject",
    "C_GetObjectSize",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
    "C_FindObjectsInit",
    "C_FindObjects",
    "C_FindObjectsFinal",
    "C_EncryptInit",
    "C_Encrypt",
    "C_EncryptUpdate",
    "C_EncryptFinal",
    "C_DecryptInit",
    "C_Decrypt",
    "C_DecryptUpdate",
    "C_DecryptFinal",
    "C_DigestInit",
    "C_Digest",
    "C_DigestUpdate",
    "C_DigestKey",
    "C_DigestFinal",
    "C_SignInit",
    "C_Sign",
    "C_SignUpdate",
    "C_SignFinal",
    "C_SignRecoverInit",
    "C_SignRecover",
    "C_VerifyInit",
    "C_Verify",
    "C_VerifyUpdate",
    "C_VerifyFinal",
    "C_VerifyRecoverInit",
    "C_VerifyRecover",
    "C_DigestEncryptUpdate",
    "C_DecryptDigestUpdate",
    "C_SignEncryptUpdate",
    "C_DecryptVerifyUpdate",
    "C_GenerateKey",
    "C_GenerateKeyPair",
    "C_WrapKey",
    "C_UnwrapKey",
    "C_DeriveKey",
    "C_SeedRandom",
    "C_GenerateRandom",
    "C_GetFunctionStatus",
    "C_CancelFunction",
    "C_WaitForSlotEvent",
)


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


class _FunctionList(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = (("version", _Version), *((name, ctypes.c_void_p) for name in _FUNCTIONS))


class _Attribute(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = (("type", CK_ULONG), ("pValue", ctypes.c_void_p), ("ulValueLen", CK_ULONG))


class _Mechanism(ctypes.Structure):
    _pack_ = _PACK
    _fields_ = (("mechanism", CK_ULONG), ("pParameter", ctypes.c_void_p), ("ulParameterLen", CK_ULONG))


# One call into PKCS#11 at a time in this process: PyKCS11 initializes modules with C_Initialize(NULL), and a
# module may then assume it is never entered by two threads at once (SoftHSM2 drops its own locking).
PKCS11_CALLS = threading.RLock()

_P_ULONG = ctypes.POINTER(CK_ULONG)
_P_ATTR = ctypes.POINTER(_Attribute)
_P_MECH = ctypes.POINTER(_Mechanism)
_PROTOTYPES: dict[str, tuple[Any, ...]] = {
    "C_Login": (CK_ULONG, CK_ULONG, ctypes.c_char_p, CK_ULONG),
    "C_CreateObject": (CK_ULONG, _P_ATTR, CK_ULONG, _P_ULONG),
    "C_GenerateKeyPair": (CK_ULONG, _P_MECH, _P_ATTR, CK_ULONG, _P_ATTR, CK_ULONG, _P_ULONG, _P_ULONG),
    "C_SignInit": (CK_ULONG, _P_MECH, CK_ULONG),
    "C_Sign": (CK_ULONG, ctypes.c_char_p, CK_ULONG, ctypes.c_char_p, _P_ULONG),
}

Template = Sequence[tuple[int, Any]]


class _Template:
    """A PyKCS11-style template ([(CKA_*, value)]: bool, int, str or bytes-like) as a CK_ATTRIBUTE array.

    The value buffers live as long as this object: keep it alive across the call."""

    def __init__(self, template: Template) -> None:
        self._buffers: list[Any] = []
        self.array = (_Attribute * len(template))()
        for slot, (kind, value) in zip(self.array, template, strict=True):
            buffer = self._encode(value)
            self._buffers.append(buffer)
            slot.type = kind
            slot.pValue = ctypes.addressof(buffer)
            slot.ulValueLen = ctypes.sizeof(buffer)

    def __len__(self) -> int:
        return len(self.array)

    @staticmethod
    def _encode(value: Any) -> Any:
        if isinstance(value, bool):  # before int: bool is an int in Python, CK_BBOOL is one byte in PKCS#11
            return ctypes.c_ubyte(1 if value else 0)
        if isinstance(value, int):
            return CK_ULONG(value)
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return (ctypes.c_ubyte * len(data)).from_buffer_copy(data) if data else (ctypes.c_ubyte * 0)()


class NativeModule:
    """The function list of one PKCS#11 module already loaded (and initialized) by PyKCS11."""

    def __init__(self, path: str) -> None:
        self._lib = ctypes.CDLL(path)  # the same file: dlopen hands back the module PyKCS11 initialized
        get_list = self._lib.C_GetFunctionList
        get_list.restype = CK_RV
        get_list.argtypes = (ctypes.POINTER(ctypes.POINTER(_FunctionList)),)
        table = ctypes.POINTER(_FunctionList)()
        _check(get_list(ctypes.byref(table)))
        self._table = table.contents
        self._fn = {
            name: ctypes.CFUNCTYPE(CK_RV, *args)(getattr(self._table, name))
            for name, args in _PROTOTYPES.items()
        }

    def address(self, name: str) -> int:
        """Where the module's function list points for ``name`` (for checking the table layout)."""
        return int(getattr(self._table, name) or 0)

    def login(self, session: Any, pin: str, user_type: int = PyKCS11.CKU_USER) -> None:
        data = pin.encode("utf-8")
        with PKCS11_CALLS:
            _check(self._fn["C_Login"](_handle(session), user_type, data, len(data)))

    def generate_key_pair(
        self, session: Any, mechanism: int, public: Template, private: Template
    ) -> tuple[Any, Any]:
        """C_GenerateKeyPair; the two handles as PyKCS11 object handles (public, private)."""
        mech = _Mechanism(mechanism, None, 0)
        pub, priv = _Template(public), _Template(private)
        h_pub, h_priv = CK_ULONG(), CK_ULONG()
        with PKCS11_CALLS:
            _check(
                self._fn["C_GenerateKeyPair"](
                    _handle(session),
                    ctypes.byref(mech),
                    pub.array,
                    len(pub),
                    priv.array,
                    len(priv),
                    ctypes.byref(h_pub),
                    ctypes.byref(h_priv),
                )
            )
        return object_handle(session, h_pub.value), object_handle(session, h_priv.value)

    def create_object(self, session: Any, template: Template) -> Any:
        attrs = _Template(template)
        handle = CK_ULONG()
        with PKCS11_CALLS:
            _check(
                self._fn["C_CreateObject"](_handle(session), attrs.array, len(attrs), ctypes.byref(handle))
            )
        return object_handle(session, handle.value)

    def sign(self, session: Any, key: Any, mechanism: int, data: bytes) -> bytes:
        """C_SignInit + C_Sign, the signature's length asked first (PKCS#11 §5.2 buffer convention)."""
        mech = _Mechanism(mechanism, None, 0)
        h = _handle(session)
        size = CK_ULONG(0)
        with PKCS11_CALLS:
            _check(self._fn["C_SignInit"](h, ctypes.byref(mech), int(key.value())))
            _check(self._fn["C_Sign"](h, data, len(data), None, ctypes.byref(size)))  # the length only
            out = ctypes.create_string_buffer(size.value)
            _check(self._fn["C_Sign"](h, data, len(data), out, ctypes.byref(size)))
        return out.raw[: size.value]


_modules: dict[str, NativeModule] = {}
_modules_lock = threading.Lock()


def for_session(session: Any) -> NativeModule:
    """The native calls of the module a PyKCS11 session belongs to (one table per module file)."""
    path = session.pykcs11.pkcs11dll_filename
    with _modules_lock:
        module = _modules.get(path)
        if module is None:
            module = _modules[path] = NativeModule(path)
    return module


def _handle(session: Any) -> int:
    return int(session.session.value())


def object_handle(session: Any, value: int) -> Any:
    """A PyKCS11 object handle for ``value`` on ``session`` (what PyKCS11's own calls return)."""
    handle = PyKCS11.CK_OBJECT_HANDLE(session)
    handle.assign(value)
    return handle


def _check(rv: int) -> None:
    if rv != PyKCS11.CKR_OK:
        raise PyKCS11.PyKCS11Error(rv)
