"""Building our certificates: root, issuing CAs, delegated OCSP signers and end-entity certificates.

Each function takes everything it needs (no policy lookups, no clock): fixed inputs give fixed outputs.
Extensions follow RFC 5280 §4.2; the organization-code extension follows GM/T 0015-2012.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from pki.ca.keys import PrivateKey, PublicKey, signature_hash

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


def _base(
    subject: x509.Name, issuer: x509.Name, public_key: PublicKey, serial: int, validity: Validity
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(validity.not_before)
        .not_valid_after(validity.not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


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


def build_root(key: PrivateKey, name: x509.Name, serial: int, validity: Validity) -> x509.Certificate:
    """The self-signed root. It carries no certificatePolicies, not even anyPolicy: it is the trust anchor,
    and RFC 5280 §6.1 path processing starts below the anchor (its extensions are not processed), so a policy
    there would constrain nothing; the issuing CAs assert the policies of what they issue. A root that
    claims no policy also outlives any change of the kinds or their OIDs (only issuing CAs are re-certified).
    """
    builder = (
        _base(name, name, key.public_key(), serial, validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(certifies=True), critical=True)
    )
    return builder.sign(key, signature_hash(key))


def build_issuing(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
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
    builder = (
        _base(name, issuer.subject, public_key, serial, validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(certifies=True), critical=True)
        .add_extension(_aki(issuer), critical=False)
        .add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(x509.ObjectIdentifier(oid), None) for oid in policy_oids]
            ),
            critical=False,
        )
        .add_extension(_crl_distribution_point(publication.crl_url), critical=False)
        .add_extension(_authority_info_access(publication), critical=False)
    )
    return builder.sign(issuer_key, signature_hash(issuer_key))


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
    issuer_key: PrivateKey,
    public_key: PublicKey,
    name: x509.Name,
    serial: int,
    validity: Validity,
) -> x509.Certificate:
    """A delegated responder (RFC 6960 §4.2.2.2): EKU id-kp-OCSPSigning and id-pkix-ocsp-nocheck."""
    builder = (
        _base(name, issuer.subject, public_key, serial, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(signs=True),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(_aki(issuer), critical=False)
    )
    return builder.sign(issuer_key, signature_hash(issuer_key))


def printable_string_der(value: str) -> bytes:
    """DER PrintableString (tag 19); the USCC charset is a subset of PrintableString's."""
    raw = value.encode("ascii")
    if len(raw) > 127:
        raise ValueError("value too long for a short-form PrintableString")
    return bytes([0x13, len(raw)]) + raw


def build_end_entity(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
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
    """An organization client-authentication certificate (RFC 5280 §4.2, GM/T 0015 organization code)."""
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    builder = (
        _base(subject, issuer.subject, public_key, serial, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(signs=True, enciphers_keys=is_rsa),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(_aki(issuer), critical=False)
        .add_extension(_crl_distribution_point(publication.crl_url), critical=False)
        .add_extension(_authority_info_access(publication), critical=False)
        .add_extension(
            x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(policy_oid), None)]),
            critical=False,
        )
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier(organization_code_oid), printable_string_der(organization_code)
            ),
            critical=False,
        )
    )
    return builder.sign(issuer_key, signature_hash(issuer_key))
