"""Keys, CSRs and approved requests for CA tests. Keys are made once per test session and reused by index
(RSA-4096 takes a while); each test that needs a fresh key asks for a new index."""

from __future__ import annotations

import itertools
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from pki.ca.keys import PrivateKey, generate_private_key
from pki.enums import Action
from pki.services import Actor, Service
from tests.support.data import application, attach_required_scans, make_uscc

_unit_numbers = itertools.count(70000000)


@cache
def key(algorithm: str = "ec-p256", index: int = 0) -> PrivateKey:
    return generate_private_key(algorithm)


def csr_for(private_key: PrivateKey, common_name: str = "ignored by the CA") -> bytes:
    """A PEM CSR signed by ``private_key``; its subject is deliberately not what the CA will issue."""
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(private_key, hashes.SHA256())
    )
    return request.public_bytes(Encoding.PEM)


def approved(
    service: Service,
    people: dict[str, Actor],
    *,
    usbkey_model: str = "飞天诚信 ePass3003",
    point: str | None = None,
    **overrides: object,
) -> int:
    """A request walked to 'approved' by clerk, acceptor, head and reviewer; each for its own unit (at
    ``point``, or the default point: the people are center users)."""
    overrides.setdefault("credential_number", make_uscc("110101", str(next(_unit_numbers))))
    req = service.requests.create(application(**overrides), actor=people["clerk"], point=point)
    assert req.id is not None
    attach_required_scans(service, req.id, people["clerk"])
    service.requests.accept(req.id, actor=people["acceptor"], agree=True, usbkey_model=usbkey_model)
    service.requests.countersign(req.id, actor=people["head"])
    service.requests.review(req.id, actor=people["reviewer"], decision=Action.APPROVE)
    return req.id


class _UndoError(Exception):
    pass


def on_record(service: Service, token_serial: str, actor: Actor) -> tuple[str, ...]:
    """The SO PINs the center would hand out for the key ``token_serial`` now (asked in a transaction that
    is rolled back, so nothing is handed out)."""
    found: tuple[str, ...] = ()
    try:
        with service.ctx.write() as s:
            found = service.token_secrets.for_unblock(s, token_serial, actor=actor).current
            raise _UndoError
    except _UndoError:
        return found
