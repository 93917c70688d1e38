"""Building our certificates: root, issuing CAs, delegated OCSP signers and end-entity certificates.

Each function takes everything it needs (no policy lookups, no clock): fixed inputs give fixed outputs.
Extensions follow RFC 5280 §4.2; the organization-code extension follows GM/T 0015-2012. Every builder
states its profile once and hands it to :func:`_certify`, which signs it: with cryptography's builder for
RSA and ECDSA, through pki/ca/x509_der.py (asn1crypto) when an SM2 key is the subject's or the issuer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from pki.ca import x509_der
from pki.ca.keys import PublicKey, SigningKey, signature_hash, spki_der
from pki.ca.sm2 import Sm2PrivateKey, Sm2PublicKey

_ORGANIZATION_IDENTIFIER = NameOID.ORGANIZATION_IDENTIFIER


@dataclass(frozen=True)
class Validity:
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class Publication:
    """Where a relying party finds revocation data and the issuer certificate (CDP and AIA)."""

    crl_url: str
    ocsp_url: str
    ca_issuers_url: str


def ca_name(country: str, organization: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def end_entity_name(
    *, unit_name: str, province: str, locality: str, organization_identifier: str | None
) -> x509.Name:
    """C=CN, ST, [L], O=单位名称, [organizationIdentifier=USCC], CN=单位名称; UTF8String throughout."""
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, province),
    ]
    if locality:
        attrs.append(x509.NameAttribute(NameOID.LOCALITY_NAME, locality))
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, unit_name))
    if organization_identifier:
        attrs.append(x509.NameAttribute(_ORGANIZATION_IDENTIFIER, organization_identifier))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, unit_name))
    return x509.Name(attrs)


Extensions = list[tuple[x509.ExtensionType, bool]]  # (value, critical), in certificate order


def _subject_key_identifier(public_key: PublicKey) -> x509.SubjectKeyIdentifier:
    if isinstance(public_key, Sm2PublicKey):
        return x509.SubjectKeyIdentifier(public_key.key_id)
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def _certify(
    issuer_key: SigningKey,
    issuer: x509.Name,
    subject: x509.Name,
    public_key: PublicKey,
    serial: int,
    validity: Validity,
    extensions: Extensions,
) -> x509.Certificate:
    """Sign the profile: subject key identifier first, then ``extensions`` in their order."""
    extensions = [(_subject_key_identifier(public_key), False), *extensions]
    if isinstance(issuer_key, Sm2PrivateKey) or isinstance(public_key, Sm2PublicKey):
        tbs = x509_der.tbs_certificate(
            issuer_key=issuer_key,
            serial=serial,
            issuer_der=issuer.public_bytes(),
            subject_der=subject.public_bytes(),
            spki_der=spki_der(public_key),
            not_before=validity.not_before,
            not_after=validity.not_after,
            extensions=[
                (ext.oid.dotted_string, critical, ext.public_bytes()) for ext, critical in extensions
            ],
        )
        return x509.load_der_x509_certificate(x509_der.signed_certificate(tbs, issuer_key))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(validity.not_before)
        .not_valid_after(validity.not_after)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(issuer_key, signature_hash(issuer_key))


def public_key_of(cert: x509.Certificate) -> PublicKey:
    """A certificate's subject public key, SM2 included (which cryptography cannot load). Raises ValueError
    for a key type we do not handle."""
    try:
        key = cert.public_key()
    except UnsupportedAlgorithm:
        return Sm2PublicKey.from_spki(subject_public_key_info(cert))
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError(f"unsupported public key type {type(key).__name__}")
    return key


def subject_public_key_info(cert: x509.Certificate) -> bytes:
    """The DER SubjectPublicKeyInfo of ``cert``, whatever its algorithm."""
    parsed = a_x509.Certificate.load(cert.public_bytes(Encoding.DER))
    return bytes(parsed["tbs_certificate"]["subject_public_key_info"].dump())


def subject_public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents (RFC 6960's issuerKeyHash covers them), any algorithm."""
    parsed = a_x509.Certificate.load(cert.public_bytes(Encoding.DER))
    return bytes(parsed["tbs_certificate"]["subject_public_key_info"]["public_key"].contents[1:])


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _key_usage(
    *, signs: bool = False, enciphers_keys: bool = False, certifies: bool = False
) -> x509.KeyUsage:
    """KeyUsage with only the named bits: digitalSignature, keyEncipherment, keyCertSign + cRLSign."""
    return x509.KeyUsage(
        digital_signature=signs,
        content_commitment=False,
        key_encipherment=enciphers_keys,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=certifies,
        crl_sign=certifies,
        encipher_only=False,
        decipher_only=False,
    )


def build_root(key: SigningKey, name: x509.Name, serial: int, validity: Validity) -> x509.Certificate:
    """The self-signed root. It carries no certificatePolicies, not even anyPolicy: it is the trust anchor,
    and RFC 5280 §6.1 path processing starts below the anchor (its extensions are not processed), so a policy
    there would constrain nothing; the issuing CAs assert the policies of what they issue. A root that
    claims no policy also outlives any change of the kinds or their OIDs (only issuing CAs are re-certified).
    """
    extensions: Extensions = [
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (_key_usage(certifies=True), True),
    ]
    return _certify(key, name, name, key.public_key(), serial, validity, extensions)


def build_issuing(
    issuer: x509.Certificate,
    issuer_key: SigningKey,
    public_key: PublicKey,
    name: x509.Name,
    serial: int,
    validity: Validity,
    *,
    policy_oids: Sequence[str],
    publication: Publication,
) -> x509.Certificate:
    """An issuing CA certified by the root.

    ``policy_oids`` are the certificate policies of the kinds this CA issues: under RFC 5280 §6.1 a policy
    survives a path only if every CA certificate below the trust anchor asserts it (or anyPolicy), so without
    them a relying party cannot require the formal policy (`openssl verify -policy OID -explicit_policy`).
    Only these OIDs, not anyPolicy, so that the test CA can never carry a formal certificate through such a
    check. The CRL distribution point is the root's CRL (ARL), OCSP the root's delegated responder and
    caIssuers the root certificate: relying parties that check every certificate of the chain (nginx's
    ssl_crl, or ssl_ocsp on) find what they need for this one too.
    """
    extensions: Extensions = [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (_key_usage(certifies=True), True),
        (_aki(issuer), False),
        (
            x509.CertificatePolicies(
                [x509.PolicyInformation(x509.ObjectIdentifier(oid), None) for oid in policy_oids]
            ),
            False,
        ),
        (_crl_distribution_point(publication.crl_url), False),
        (_authority_info_access(publication), False),
    ]
    return _certify(issuer_key, issuer.subject, name, public_key, serial, validity, extensions)


def ocsp_urls_of(cert: x509.Certificate) -> tuple[str, ...]:
    """The OCSP URIs of a certificate's authority information access (empty without the extension)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        str(d.access_location.value) for d in ext if d.access_method == AuthorityInformationAccessOID.OCSP
    )


def policy_oids_of(cert: x509.Certificate) -> frozenset[str]:
    """The certificate-policy OIDs a certificate asserts (empty without the extension)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(p.policy_identifier.dotted_string for p in ext)


def crl_urls_of(cert: x509.Certificate) -> tuple[str, ...]:
    """The URIs of a certificate's CRL distribution points (empty without the extension)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(
        n.value for dp in ext for n in dp.full_name or () if isinstance(n, x509.UniformResourceIdentifier)
    )


def _authority_info_access(publication: Publication) -> x509.AuthorityInformationAccess:
    return x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(publication.ocsp_url)
            ),
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS,
                x509.UniformResourceIdentifier(publication.ca_issuers_url),
            ),
        ]
    )


def _crl_distribution_point(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)]
    )


def build_ocsp_signer(
    issuer: x509.Certificate,
    issuer_key: SigningKey,
    public_key: PublicKey,
    name: x509.Name,
    serial: int,
    validity: Validity,
) -> x509.Certificate:
    """A delegated responder (RFC 6960 §4.2.2.2): EKU id-kp-OCSPSigning and id-pkix-ocsp-nocheck."""
    extensions: Extensions = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(signs=True), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False),
        (x509.OCSPNoCheck(), False),
        (_aki(issuer), False),
    ]
    return _certify(issuer_key, issuer.subject, name, public_key, serial, validity, extensions)


def printable_string_der(value: str) -> bytes:
    """DER PrintableString (tag 19); the USCC charset is a subset of PrintableString's."""
    raw = value.encode("ascii")
    if len(raw) > 127:
        raise ValueError("value too long for a short-form PrintableString")
    return bytes([0x13, len(raw)]) + raw


def build_end_entity(
    issuer: x509.Certificate,
    issuer_key: SigningKey,
    public_key: PublicKey,
    subject: x509.Name,
    serial: int,
    validity: Validity,
    *,
    policy_oid: str,
    publication: Publication,
    organization_code_oid: str,
    organization_code: str,
) -> x509.Certificate:
    """An organization client-authentication certificate (RFC 5280 §4.2, GM/T 0015 organization code).

    The same profile for every key type; under GM/T 0015-2012 an SM2 key gets SM3withSM2 from an SM2 CA.
    """
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    extensions: Extensions = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (_key_usage(signs=True, enciphers_keys=is_rsa), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        (_aki(issuer), False),
        (_crl_distribution_point(publication.crl_url), False),
        (_authority_info_access(publication), False),
        (x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(policy_oid), None)]), False),
        (
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier(organization_code_oid), printable_string_der(organization_code)
            ),
            False,
        ),
    ]
    return _certify(issuer_key, issuer.subject, subject, public_key, serial, validity, extensions)
