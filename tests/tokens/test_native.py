"""tokens/native.py: the slow PKCS#11 calls through ctypes, on PyKCS11's module and sessions, without the GIL."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import PyKCS11
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from pki.errors import TokenError
from tests.support import softhsm
from tokens import native
from tokens.keys import generate_on_token, read_public_key
from tokens.session import Module


@pytest.fixture
def session(token: softhsm.Token) -> Iterator[Any]:
    module = Module(token.module)
    with module.session(module.find(label=token.label), token.pin) as s:
        yield s


def test_the_function_table_is_read_in_the_order_of_the_standard(token: softhsm.Token) -> None:
    """SoftHSM2 also exports every C_* symbol: each entry of its CK_FUNCTION_LIST must point at the same
    function, which checks the 68-entry layout (an entry out of place would call the wrong function)."""
    module = Module(token.module)
    s = module._lib.openSession(module.find(label=token.label).slot)
    table = native.for_session(s)
    exported = ctypes.CDLL(token.module)
    for name in native._FUNCTIONS:
        assert table.address(name) == ctypes.cast(getattr(exported, name), ctypes.c_void_p).value, name
    s.closeSession()


def test_a_wrong_pin_through_the_native_login_is_the_usual_token_error(token: softhsm.Token) -> None:
    module = Module(token.module)
    with pytest.raises(TokenError) as refused, module.session(module.find(label=token.label), "000000"):
        pass
    assert refused.value.ckr == "CKR_PIN_INCORRECT"


def test_objects_made_natively_are_what_pykcs11_reads_back(session: Any) -> None:
    key_id = generate_on_token(session, "ec-p256", "native", os.urandom(8))
    handle = native.for_session(session).create_object(
        session,
        [
            (PyKCS11.CKA_CLASS, PyKCS11.CKO_DATA),
            (PyKCS11.CKA_TOKEN, False),
            (PyKCS11.CKA_LABEL, "标签"),
            (PyKCS11.CKA_VALUE, b"\x00\x01payload"),
        ],
    )
    value, label = session.getAttributeValue(handle, [PyKCS11.CKA_VALUE, PyKCS11.CKA_LABEL])
    assert bytes(value) == b"\x00\x01payload" and label == "标签"
    private = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_ID, key_id)])[0]
    flags = session.getAttributeValue(
        private, [PyKCS11.CKA_SENSITIVE, PyKCS11.CKA_EXTRACTABLE, PyKCS11.CKA_DECRYPT, PyKCS11.CKA_SIGN]
    )
    assert [bool(f) for f in flags] == [
        True,
        False,
        False,
        True,
    ]  # the template's booleans arrived as CK_BBOOL
    digest = bytes(32)
    signature = native.for_session(session).sign(session, private, PyKCS11.CKM_ECDSA, digest)
    assert len(signature) == 64  # r || s for P-256
    public = read_public_key(session, key_id)
    half = len(signature) // 2
    der = utils.encode_dss_signature(int.from_bytes(signature[:half]), int.from_bytes(signature[half:]))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))  # raises if it does not verify


def test_other_threads_run_while_the_token_generates_a_key(session: Any) -> None:
    """The point of the module: during C_GenerateKeyPair (RSA-2048 takes SoftHSM2 a few hundred ms) a Python
    thread keeps running at much its own pace. Through PyKCS11 it stops for the whole call (it gets a few
    milliseconds at most, when the interpreter switches threads before the call)."""
    counted = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal counted
        while not stop.is_set():
            counted += 1

    def rate(seconds: float) -> float:
        """The spinner's iterations per second over ``seconds`` with nothing else running."""
        before, start = counted, time.perf_counter()
        time.sleep(seconds)
        return (counted - before) / (time.perf_counter() - start)

    spinner = threading.Thread(target=count)
    spinner.start()
    during: list[float] = []
    original = native.NativeModule.generate_key_pair

    def watched(self: native.NativeModule, *args: Any) -> tuple[Any, Any]:
        before, start = counted, time.perf_counter()
        try:
            return original(self, *args)
        finally:
            during.append((counted - before) / (time.perf_counter() - start))

    try:
        alone = rate(0.1)
        native.NativeModule.generate_key_pair = watched  # type: ignore[method-assign]
        generate_on_token(session, "rsa-2048", "gil", os.urandom(8))
    finally:
        native.NativeModule.generate_key_pair = original  # type: ignore[method-assign]
        stop.set()
        spinner.join()
    assert during, "the key pair was not generated through tokens/native.py"
    assert during[0] > 0.3 * alone, (during[0], alone)
