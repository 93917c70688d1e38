"""The SM2 pieces on their own: the asn1crypto certificate writer yields cryptography's TBSCertificate for
RSA and ECDSA (so the SM2 path shares the profile and cannot drift from it), the signature algorithm
identifiers, and ca.toml's per-CA key algorithm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pki.ca import certs, der, signing, x509_der
from pki.ca.keys import PrivateKey, SigningKey, algorithm_of, generate_private_key
from pki.ca.sm2 import SM3_WITH_SM2_OID, Sm2PrivateKey
from pki.errors import ConfigurationError
from policies._load import PACKAGED
from policies.ca import load_ca
from tests.support.pki import key

NOW = datetime(2020, 10, 20, 2, 0, tzinfo=UTC)
VALIDITY = certs.Validity(NOW, NOW + timedelta(days=3650))
PUBLICATION = certs.Publication(
    "http://pki.example/crl/t.crl", "http://pki.example/ocsp/t", "http://pki.example/ca/t.cer"
)


def _hierarchy(issuer_key: SigningKey, subject_key: SigningKey) -> list[x509.Certificate]:
    root = certs.build_root(issuer_key, certs.ca_name("CN", "中心", "根CA"), 1, VALIDITY)
    issuing = certs.build_issuing(
        root, issuer_key, subject_key.public_key(), certs.ca_name("CN", "中心", "正式CA"), 2, VALIDITY,
        policy_oids=["1.3.6.1.4.1.32473.1.2"], publication=PUBLICATION,
    )  # fmt: skip
    signer = certs.build_ocsp_signer(
        root, issuer_key, subject_key.public_key(), certs.ca_name("CN", "中心", "OCSP"), 3, VALIDITY
    )
    ee = certs.build_end_entity(
        root, issuer_key, subject_key.public_key(),
        certs.end_entity_name(unit_name="单位", province="北京", locality="", organization_identifier="11110000000012343B"),
        4, certs.Validity(NOW, datetime(2051, 1, 1, tzinfo=UTC)),
        policy_oid="1.3.6.1.4.1.32473.1.2", publication=PUBLICATION,
        organization_code_oid="1.2.156.10260.4.1.4", organization_code="11110000000012343B",
    )  # fmt: skip
    return [root, issuing, signer, ee]


@pytest.mark.parametrize("algorithm", ["rsa-2048", "ec-p256", "ec-p384"])
def test_the_der_writer_lays_out_what_cryptography_builds(algorithm: str) -> None:
    ca_key: PrivateKey = key(algorithm)  # type: ignore[assignment]
    for cert in _hierarchy(ca_key, key(algorithm, 1)):
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        tbs = x509_der.tbs_certificate(
            issuer_key=ca_key,
            serial=cert.serial_number,
            issuer_der=cert.issuer.public_bytes(),
            subject_der=cert.subject.public_bytes(),
            spki_der=spki,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            extensions=[(e.oid.dotted_string, e.critical, e.value.public_bytes()) for e in cert.extensions],
        )
        assert tbs.dump() == cert.tbs_certificate_bytes


def test_sm2_certificates_carry_the_gmt_0015_algorithms() -> None:
    ca_key = generate_private_key("sm2")
    assert isinstance(ca_key, Sm2PrivateKey)
    for cert in _hierarchy(ca_key, generate_private_key("sm2")):
        assert cert.signature_algorithm_oid.dotted_string == SM3_WITH_SM2_OID
        assert algorithm_of(certs.public_key_of(cert)) == "sm2"
        assert ca_key.public_key().verifies(cert.signature, cert.tbs_certificate_bytes)
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        assert len(ski) == 20
    # SM3withSM2 has no parameters (GM/T 0015), not even NULL; RSA's carry NULL (RFC 4055)
    assert signing.algorithm_identifier(ca_key) == der.sequence(der.oid(SM3_WITH_SM2_OID))
    assert signing.algorithm_identifier(key("rsa-2048")).endswith(der.null())


def test_an_sm2_key_signs_with_the_standard_signer_id_only() -> None:
    signer = Sm2PrivateKey.generate()
    signature = signer.sign(b"tbs")
    assert signer.public_key().verifies(signature, b"tbs")
    assert not signer.public_key().verifies(signature, b"tbs!")
    assert not Sm2PrivateKey.generate().public_key().verifies(signature, b"tbs")


def _ca_toml(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = (PACKAGED / "ca.toml").read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "ca.toml").write_text(text, encoding="utf-8")
    return tmp_path


def test_the_algorithm_is_chosen_per_ca() -> None:
    policy = load_ca(PACKAGED)
    assert {policy.algorithm_for(s) for s in ("root", "test", "formal", "ocsp-test", "ocsp-root")} == {
        "ec-p256"
    }


def test_one_kind_sm2_beside_the_others(tmp_path: Path) -> None:
    policy = load_ca(_ca_toml(tmp_path, ("[issuing.formal]\n", '[issuing.formal]\nkey_algorithm = "sm2"\n')))
    assert policy.algorithm_for("formal") == policy.algorithm_for("ocsp-formal") == "sm2"
    assert policy.algorithm_for("root") == policy.algorithm_for("test") == "ec-p256"


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        (
            (('key_algorithm = "ec-p256"', 'key_algorithm = "sm9"'),),
            r"\[hierarchy\]: key_algorithm must be one of",
        ),
        ((("[root]\n", '[root]\nkey_algorithm = "sm3"\n'),), r"\[root\]: key_algorithm must be one of .*sm2"),
        (
            (('key_algorithm = "ec-p256"', 'key_algorithm = "sm2"'), ('store = "file"', 'store = "pkcs11"')),
            r"SM2 CA keys are kept in files",
        ),
    ],
    ids=["unknown", "unknown-per-ca", "sm2-on-pkcs11"],
)
def test_bad_algorithms_are_refused_at_load(
    tmp_path: Path, edits: tuple[tuple[str, str], ...], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_ca(_ca_toml(tmp_path, *edits))
