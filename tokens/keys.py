"""Key pairs generated on a token, and private-key classes whose sign() runs on the token.

cryptography's builders call ``sign()`` on any subclass of its private-key types, so a certificate, CSR,
CRL or OCSP response is signed by the token without the signing code knowing. Only signing is offered:
the private key never leaves the token.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, NoReturn

import PyKCS11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding

from pki.ca.keys import CURVES, RSA_BITS, PrivateKey, PublicKey
from pki.errors import TokenError
from tokens import native
from tokens.session import call

EC_PARAMS = {  # DER OIDs of the named curves (CKA_EC_PARAMS)
    "ec-p256": bytes.fromhex("06082a8648ce3d030107"),
    "ec-p384": bytes.fromhex("06052b81040022"),
}
# DER DigestInfo prefixes (RFC 8017 §9.2 note 1) for CKM_RSA_PKCS with the hash computed on the host.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def generate_on_token(session: Any, algorithm: str, label: str, key_id: bytes | None = None) -> bytes:
    """Generate a key pair on the token: the private half sensitive, never extractable, sign only.

    Returns the CKA_ID shared by both halves (and, later, the certificate object).
    """
    key_id = key_id or os.urandom(16)
    common = [(PyKCS11.CKA_TOKEN, True), (PyKCS11.CKA_LABEL, label), (PyKCS11.CKA_ID, key_id)]
    private = [
        *common,
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
        (PyKCS11.CKA_PRIVATE, True),
        (PyKCS11.CKA_SENSITIVE, True),
        (PyKCS11.CKA_EXTRACTABLE, False),
        (PyKCS11.CKA_SIGN, True),
        # SoftHSM and others switch these on unless told otherwise.
        (PyKCS11.CKA_DECRYPT, False),
        (PyKCS11.CKA_UNWRAP, False),
        (PyKCS11.CKA_DERIVE, False),
    ]
    public = [
        *common,
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY),
        (PyKCS11.CKA_VERIFY, True),
        (PyKCS11.CKA_ENCRYPT, False),
        (PyKCS11.CKA_WRAP, False),
    ]
    if algorithm in EC_PARAMS:
        public.append((PyKCS11.CKA_EC_PARAMS, EC_PARAMS[algorithm]))
        mechanism = PyKCS11.CKM_EC_KEY_PAIR_GEN
        private.append((PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC))
    elif algorithm in RSA_BITS:
        public += [
            (PyKCS11.CKA_MODULUS_BITS, RSA_BITS[algorithm]),
            (PyKCS11.CKA_PUBLIC_EXPONENT, b"\x01\x00\x01"),
        ]
        mechanism = PyKCS11.CKM_RSA_PKCS_KEY_PAIR_GEN
        private.append((PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_RSA))
    else:
        raise TokenError(f"key type {algorithm} cannot be generated on a token")
    pub_handle, priv_handle = call(  # native: other threads run while the token works (tokens/native.py)
        f"generating a {algorithm} key pair on the token",
        lambda: native.for_session(session).generate_key_pair(session, mechanism, public, private),
    )
    _prove_generated_on_token(session, pub_handle, priv_handle)
    return key_id


_PROOF = (
    PyKCS11.CKA_LOCAL,
    PyKCS11.CKA_ALWAYS_SENSITIVE,
    PyKCS11.CKA_NEVER_EXTRACTABLE,
    PyKCS11.CKA_SENSITIVE,
)


def _prove_generated_on_token(session: Any, pub_handle: Any, priv_handle: Any) -> None:
    """Read back what the token says of the new private key; a token that did not honour the template (key not
    local, extractable at some point) gets the pair destroyed and a TokenError."""
    values = call("reading back the new key", lambda: session.getAttributeValue(priv_handle, list(_PROOF)))
    if not all(bool(v) for v in values):
        call("removing a key the token made badly", lambda: session.destroyObject(priv_handle))
        call("removing a key the token made badly", lambda: session.destroyObject(pub_handle))
        raise TokenError("the token did not keep the new key local, sensitive and never extractable")


def find_key(session: Any, key_class: int, key_id: bytes) -> Any:
    found = call(
        "looking up a key",
        lambda: session.findObjects([(PyKCS11.CKA_CLASS, key_class), (PyKCS11.CKA_ID, tuple(key_id))]),
    )
    if not found:
        kind = "private" if key_class == PyKCS11.CKO_PRIVATE_KEY else "public"
        raise TokenError(
            f"no {kind} key with id {key_id.hex()} on the token", ckr="CKR_OBJECT_HANDLE_INVALID"
        )
    return found[0]


def read_public_key(session: Any, key_id: bytes) -> PublicKey:
    """The public half, rebuilt from CKA_EC_PARAMS/CKA_EC_POINT or CKA_MODULUS/CKA_PUBLIC_EXPONENT."""
    handle = find_key(session, PyKCS11.CKO_PUBLIC_KEY, key_id)
    key_type = call("reading a key", lambda: session.getAttributeValue(handle, [PyKCS11.CKA_KEY_TYPE]))[0]
    if key_type == PyKCS11.CKK_EC:
        params, point = call(
            "reading an EC key",
            lambda: session.getAttributeValue(handle, [PyKCS11.CKA_EC_PARAMS, PyKCS11.CKA_EC_POINT]),
        )
        name = next((n for n, der in EC_PARAMS.items() if bytes(params) == der), None)
        if name is None:
            raise TokenError("the token's EC key is on a curve we do not use")
        raw = bytes(point)
        size = 2 * ((CURVES[name]().key_size + 7) // 8) + 1  # an uncompressed point: 04 || X || Y
        if len(raw) == size + 2 and raw[0] == 0x04 and raw[1] == size:  # DER OCTET STRING around it (usual)
            raw = raw[2:]
        return ec.EllipticCurvePublicKey.from_encoded_point(CURVES[name](), raw)
    modulus, exponent = call(
        "reading an RSA key",
        lambda: session.getAttributeValue(handle, [PyKCS11.CKA_MODULUS, PyKCS11.CKA_PUBLIC_EXPONENT]),
    )
    return rsa.RSAPublicNumbers(
        int.from_bytes(bytes(exponent), "big"), int.from_bytes(bytes(modulus), "big")
    ).public_key()


class _TokenKey:
    """What both token key classes share: the session, the key handle and a lock."""

    def __init__(self, shared: Any, key_id: bytes, public: PublicKey) -> None:
        self._shared = shared  # tokens.session.SharedSession or any object with .raw and .lock
        self._public = public
        self._handle = find_key(shared.raw, PyKCS11.CKO_PRIVATE_KEY, key_id)

    def _sign_raw(self, mechanism: int, data: bytes) -> bytes:
        with self._shared.lock:
            raw = self._shared.raw
            return call(
                "signing on the token",
                lambda: native.for_session(raw).sign(raw, self._handle, mechanism, data),
            )

    @staticmethod
    def _refuse(*_: object, **__: object) -> NoReturn:
        raise TokenError("the private key stays on the token: only signing is possible")


def _digest(data: bytes, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> tuple[bytes, str]:
    if isinstance(algorithm, utils.Prehashed):
        return data, algorithm._algorithm.name
    return hashlib.new(algorithm.name, data).digest(), algorithm.name


class TokenECPrivateKey(_TokenKey, ec.EllipticCurvePrivateKey):
    """ECDSA on the token with CKM_ECDSA over a hash computed on the host (many tokens lack CKM_ECDSA_SHA256)."""

    def sign(
        self, data: bytes | bytearray | memoryview, signature_algorithm: ec.EllipticCurveSignatureAlgorithm
    ) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise TypeError("only ECDSA is supported")
        digest, _ = _digest(bytes(data), signature_algorithm.algorithm)
        raw = self._sign_raw(PyKCS11.CKM_ECDSA, digest)
        half = len(raw) // 2  # PKCS#11 returns r || s
        return utils.encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )

    def public_key(self) -> ec.EllipticCurvePublicKey:
        assert isinstance(self._public, ec.EllipticCurvePublicKey)
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self.public_key().curve

    @property
    def key_size(self) -> int:
        return self.curve.key_size

    exchange = _TokenKey._refuse
    private_numbers = _TokenKey._refuse
    private_bytes = _TokenKey._refuse

    def __copy__(self) -> TokenECPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> TokenECPrivateKey:
        return self


class TokenRSAPrivateKey(_TokenKey, rsa.RSAPrivateKey):
    """RSA PKCS#1 v1.5 on the token: CKM_RSA_PKCS over a DigestInfo built on the host."""

    def sign(
        self,
        data: bytes | bytearray | memoryview,
        padding: asym_padding.AsymmetricPadding,
        algorithm: utils.Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        if not isinstance(padding, asym_padding.PKCS1v15):
            raise TypeError("only PKCS#1 v1.5 signatures are supported")
        if isinstance(algorithm, utils.NoDigestInfo):
            raise TypeError("a hash algorithm is required")
        digest, name = _digest(bytes(data), algorithm)
        if name not in _DIGEST_INFO:
            raise TypeError(f"hash {name} not supported for RSA on the token")
        return self._sign_raw(PyKCS11.CKM_RSA_PKCS, _DIGEST_INFO[name] + digest)

    def public_key(self) -> rsa.RSAPublicKey:
        assert isinstance(self._public, rsa.RSAPublicKey)
        return self._public

    @property
    def key_size(self) -> int:
        return self.public_key().key_size

    decrypt = _TokenKey._refuse
    private_numbers = _TokenKey._refuse
    private_bytes = _TokenKey._refuse

    def __copy__(self) -> TokenRSAPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> TokenRSAPrivateKey:
        return self


def token_private_key(shared: Any, key_id: bytes) -> PrivateKey:
    """The signing-only private key class for the key pair ``key_id`` on the shared session's token."""
    with shared.lock:  # the session is shared with other threads' signing
        public = read_public_key(shared.raw, key_id)
        if isinstance(public, ec.EllipticCurvePublicKey):
            return TokenECPrivateKey(shared, key_id, public)
        return TokenRSAPrivateKey(shared, key_id, public)
