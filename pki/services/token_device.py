"""The token's side of issuing onto a USB key: what a logged-in key offers (TokenDevice), the thread it works
in (TOKEN_WORKER), the key pair it is making (NewKey), and the certificate written back and checked
(put_on_token). The phases and their transactions are in services/token_issuance.py."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pki.ca.keys import PrivateKey, PublicKey
from pki.errors import ConflictError, TokenError
from pki.services.issuance import csr_public_key

if TYPE_CHECKING:
    from pki.services.issuance import IssuanceService

# The thread the token generates key pairs and writes certificates in while the transactions beside them
# read and check (one per process: PKCS#11 calls take turns anyway, tokens.native.PKCS11_CALLS; started at
# the first use).
TOKEN_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pkictl-token")


class TokenIdentity(Protocol):
    """What a token is recorded by: a TokenDevice, or the token a remote desk reports."""

    @property
    def serial(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def model(self) -> str: ...


class TokenDevice(TokenIdentity, Protocol):
    """A logged-in USB key (tokens.usbkey.UsbKey). Every method raises TokenError on a token failure."""

    def objects_labelled(self, label: str) -> list[str]: ...

    def generate(self, key_type: str, label: str) -> tuple[bytes, PrivateKey]: ...

    def public_key(self, key_id: bytes) -> PublicKey | None: ...

    def remove(self, key_id: bytes) -> None: ...

    def write_certificate(self, der: bytes, key_id: bytes, label: str) -> None: ...

    def read_certificate(self, key_id: bytes) -> bytes | None: ...

    def has_private_key(self, key_id: bytes) -> bool: ...


class KeyPairOnToken(Protocol):
    """A key pair on a token with its public key proven (NewKey here, token_handshake.ProvenKey remotely)."""

    @property
    def key_id(self) -> bytes: ...

    @property
    def label(self) -> str: ...

    def public_key(self) -> PublicKey: ...


class CertificateToWrite(Protocol):
    """What phase 3 writes: a Certificate row, or the certificate a remote desk was sent."""

    @property
    def serial(self) -> str: ...

    @property
    def der(self) -> bytes: ...

    @property
    def request_id(self) -> int | None: ...


def refuse_labelled(device: TokenDevice, label: str, request_id: int) -> None:
    """Nothing on a token is ever overwritten: objects already labelled for the request stop an issuance."""
    present = device.objects_labelled(label)
    if present:
        raise ConflictError(
            f"token {device.serial} already holds {', '.join(sorted(set(present)))} labelled {label!r} for "
            f"request {request_id} that no delivered certificate records: nothing was overwritten; "
            "use --resume if an issuance was interrupted after recording its certificate, or "
            f"'pkictl token clean --token-serial {device.serial} --remove' for a key pair left before that",
            message_zh="该USB Key已有此申请的密钥或证书，未覆盖",
        )


def token_csr(private_key: PrivateKey, label: str) -> x509.CertificateSigningRequest:
    """The CSR the token signs with its new key: the proof of possession (its subject is never used)."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)]))
        .sign(private_key, hashes.SHA256())
    )


class NewKey:
    """The key pair the token is generating (in the token worker thread), and once it is there, its public
    key proven by a CSR the token signed."""

    def __init__(
        self, generating: Future[tuple[bytes, PrivateKey]], label: str, issuance: IssuanceService
    ) -> None:
        self._generating = generating
        self.label = label
        self._issuance = issuance
        self._public: PublicKey | None = None

    @property
    def key_id(self) -> bytes:
        return self._generating.result()[0]

    def public_key(self) -> PublicKey:
        """Waits for the key pair; the CSR is made once (a transaction run again reuses it)."""
        if self._public is None:
            csr = token_csr(self._generating.result()[1], self.label)
            self._public = self._issuance.checked_key(csr_public_key(csr.public_bytes(Encoding.DER)))
        return self._public

    def settled(self) -> tuple[bytes | None, BaseException | None]:
        """After a failure: wait for the token to finish (a key pair half-way cannot be stopped); the id of
        the key pair it made, or the error it failed with. A Ctrl-C while waiting is not swallowed: it goes
        up with a note that the key pair may stay on the token."""
        try:
            failed = self._generating.exception()
        except BaseException as interrupted:
            interrupted.add_note(
                f"the key pair {self.label!r} the token was generating may stay on it: "
                "'pkictl token clean' removes what no certificate records"
            )
            raise
        return (None, failed) if failed is not None else (self._generating.result()[0], None)


def put_on_token(
    cert: CertificateToWrite, device: TokenDevice, key_id: bytes, label: str, *, resumed: bool
) -> None:
    """Phase 3: write the certificate (unless a resumed issuance finds it there), read it back and compare,
    and check that its private key is still beside it."""
    try:
        on_token = device.read_certificate(key_id) if resumed else None
        if on_token is None:
            device.write_certificate(cert.der, key_id, label)
            on_token = device.read_certificate(key_id)
        key_kept = device.has_private_key(key_id)
    except TokenError as e:
        raise TokenError(
            f"{e.message}. Certificate {cert.serial} is issued but not on the token: "
            f"run 'pkictl issue {cert.request_id} --resume' with token {device.serial}",
            message_zh=e.message_zh,
            ckr=e.ckr,
        ) from e
    if on_token != cert.der:
        raise TokenError(
            f"the certificate object read back from token {device.serial} differs from certificate "
            f"{cert.serial}: remove it from the token and run 'pkictl issue {cert.request_id} --resume'",
            message_zh="写入USB Key的证书与签发记录不一致",
        )
    if not key_kept:  # removed behind our back (another tool): a certificate without its key is no use
        raise TokenError(
            f"token {device.serial} no longer holds the private key of certificate {cert.serial} "
            f"(id {key_id.hex()}): revoke it and issue anew",
            message_zh="USB Key上已无该证书对应的私钥",
        )


class HoldingDevice(TokenIdentity, Protocol):
    """A logged-in USB key that already holds a key pair of ours, as a renewal onto it needs it
    (tokens.usbkey.UsbKey; services/token_renewal.py). Every method raises TokenError on a token failure."""

    def public_key(self, key_id: bytes) -> PublicKey | None: ...

    def has_private_key(self, key_id: bytes) -> bool: ...

    def signing_key(self, key_id: bytes) -> PrivateKey | None: ...

    def certificates(self, key_id: bytes) -> list[bytes]: ...

    def write_certificate(self, der: bytes, key_id: bytes, label: str) -> None: ...

    def remove_certificate(self, key_id: bytes, der: bytes) -> None: ...


def not_this_token(serial: str, holder: str, presented: str) -> TokenError:
    """Certificate ``serial``'s key pair is on token ``holder``; ``presented`` is another key."""
    return TokenError(
        f"certificate {serial}'s key pair is on token {holder}, not on {presented}: insert that key "
        "(nothing was written)",
        message_zh="该证书的密钥不在此USB Key中，请插入原USB Key",
        ckr="CKR_TOKEN_NOT_PRESENT",
    )


def replace_on_token(
    cert: CertificateToWrite, device: HoldingDevice, key_id: bytes, label: str, replaces: bytes, resume: str
) -> None:
    """A renewal's phase 3 on the key that holds its key pair: the new certificate object written beside it
    (same CKA_ID and CKA_LABEL) unless a resumed renewal finds it there, read back, and only then the old
    certificate's object (DER ``replaces``) removed, so that the key always holds a certificate for its key
    pair and, once done, only the new one (software that looks a key pair's certificate up by CKA_ID finds
    one). The key pair is not touched, nor any other object. ``resume``: the command that finishes it."""
    try:
        held = device.certificates(key_id)
        if cert.der not in held:
            device.write_certificate(cert.der, key_id, label)
            held = device.certificates(key_id)
        if cert.der in held and replaces in held:
            device.remove_certificate(key_id, replaces)
            held = device.certificates(key_id)
        key_kept = device.has_private_key(key_id)
    except TokenError as e:
        raise TokenError(
            f"{e.message}. Certificate {cert.serial} is issued but not (or not only) on the token: "
            f"run '{resume}' with token {device.serial}",
            message_zh=e.message_zh,
            ckr=e.ckr,
        ) from e
    if cert.der not in held:
        raise TokenError(
            f"no certificate object read back from token {device.serial} with id {key_id.hex()} equals "
            f"certificate {cert.serial}: remove what was written and run '{resume}'",
            message_zh="写入USB Key的证书与签发记录不一致",
        )
    if replaces in held:
        raise TokenError(
            f"token {device.serial} kept the certificate object the renewal {cert.serial} replaces: run "
            f"'{resume}'",
            message_zh="USB Key中的原证书未能删除",
        )
    if not key_kept:  # removed behind our back (another tool): a certificate without its key is no use
        raise TokenError(
            f"token {device.serial} no longer holds the private key of certificate {cert.serial} "
            f"(id {key_id.hex()}): revoke it and issue anew",
            message_zh="USB Key上已无该证书对应的私钥",
        )


def reported(failure: BaseException, on_token: BaseException | None, also: str) -> BaseException:
    """The error to report when the token failed (``on_token``) while a transaction beside it failed too
    (``failure``): the token's, as doing them in turn would have met it first, the other named in a note
    (``also``). An interrupt (Ctrl-C) is reported as itself."""
    if on_token is None or on_token is failure or not isinstance(failure, Exception):
        return failure
    on_token.add_note(f"{also}: {failure}")
    return on_token
