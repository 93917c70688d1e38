"""pkilint judges every certificate, CRL and OCSP response we emit: no finding at WARNING or above.

pkilint exits with the number of findings at or above the threshold and prints one block per finding, so a
clean document means exit 0 and no output at all.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from pki.ca.keystore import FileKeyStore
from pki.clock import FixedClock
from pki.enums import RevocationReason
from pki.services import Actor, Service
from policies import load_policies
from tests.conftest import CA_PASSPHRASE, fixed_seal
from tests.judges.tools import (
    Arg,
    assert_clean,
    ca_certs,
    crl_signed_by,
    issue,
    ocsp_request,
    ocsp_request_for_serial,
    run_all,
    serial_hex,
    tool,
    write_der,
    write_pem,
)

EE_ALGORITHMS = ["rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384"]
KINDS = ["test", "formal"]
CA_SLUGS = {"root", "test", "formal", "ocsp-test", "ocsp-formal", "ocsp-root"}
NEVER_ISSUED = 0x1234_5678_9ABC_DEF0_1122_3344_5566_7788


def lint_cert(path: Path) -> list[Arg]:
    return [tool("lint_pkix_cert"), "lint", "-s", "WARNING", path]


def lint_chain(issuer: Path, subject: Path) -> list[Arg]:
    return [tool("lint_pkix_signer_signee_cert_chain"), "lint", "-s", "WARNING", issuer, subject]


def lint_crl(path: Path) -> list[Arg]:
    return [tool("lint_crl"), "lint", "-s", "WARNING", "-t", "CRL", "-p", "PKIX", path]


def lint_ocsp(path: Path) -> list[Arg]:
    return [tool("lint_ocsp_response"), "lint", "-s", "WARNING", path]


def test_the_judges_are_not_blind(tmp_path: Path, ca_service: Service) -> None:
    """Wrong input must draw findings: proof the linters run and report, so the silent passes below mean
    something."""
    cas = ca_certs(ca_service)
    # root -> formal OCSP signer is not an issuer/subject pair: names and key identifiers do not chain.
    root = write_pem(tmp_path / "root.pem", cas["root"])
    signer = write_pem(tmp_path / "signer.pem", cas["ocsp-formal"])
    garbage = write_der(tmp_path / "garbage.der", b"\x30\x03\x02\x01\x01")
    chain, crl = run_all([lint_chain(root, signer), lint_crl(garbage)])
    assert chain.returncode != 0 and chain.stdout.strip(), chain.explain()
    assert crl.returncode != 0, crl.explain()


# -- certificates -----------------------------------------------------------------------------------------


def test_ca_certificates_and_their_chains_pass(tmp_path: Path, ca_service: Service) -> None:
    """Root, both issuing CAs, the three OCSP signers; root -> each issuing CA -> its OCSP signer, and
    root -> its own OCSP signer."""
    cas = ca_certs(ca_service)
    assert set(cas) == CA_SLUGS
    paths = {slug: write_pem(tmp_path / f"{slug}.pem", cert) for slug, cert in cas.items()}
    pairs = [
        ("root", "test"),
        ("root", "formal"),
        ("test", "ocsp-test"),
        ("formal", "ocsp-formal"),
        ("root", "ocsp-root"),
    ]
    commands = [lint_cert(p) for p in paths.values()]
    commands += [lint_chain(paths[issuer], paths[subject]) for issuer, subject in pairs]
    assert_clean(run_all(commands))


@pytest.mark.parametrize("alg", EE_ALGORITHMS)
def test_end_entity_certificates_pass(
    tmp_path: Path, ca_service: Service, people: dict[str, Actor], alg: str
) -> None:
    """One certificate per kind (test and formal: different issuing CA and policy) for each key type."""
    cas = ca_certs(ca_service)
    commands = []
    for index, kind in enumerate(KINDS):
        cert = issue(ca_service, people, alg=alg, index=index, kind=kind)
        assert cert.issuer == cas[kind].subject
        commands.append(lint_cert(write_pem(tmp_path / f"{kind}.pem", cert)))
    assert_clean(run_all(commands))


def test_issuing_ca_to_end_entity_chains_pass(
    tmp_path: Path, ca_service: Service, people: dict[str, Actor]
) -> None:
    """The chain linter looks at the issuer/subject pair (names, key identifiers, validity, signature
    algorithm), which the subject's own key type does not change: one end entity per issuing CA."""
    cas = ca_certs(ca_service)
    commands = []
    for kind, alg in zip(KINDS, ["rsa-2048", "ec-p384"], strict=True):
        ee = write_pem(tmp_path / f"ee-{kind}.pem", issue(ca_service, people, alg=alg, kind=kind))
        commands.append(lint_chain(write_pem(tmp_path / f"{kind}.pem", cas[kind]), ee))
    assert_clean(run_all(commands))


def test_end_entity_certificate_with_the_packaged_policy_oid_passes(
    tmp_path: Path, ca_service: Service, people: dict[str, Actor]
) -> None:
    cert = issue(ca_service, people, kind="test")
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    oid = ca_service.ctx.policies.profiles.kinds["test"].policy_oid
    assert [p.policy_identifier.dotted_string for p in policies] == [oid]
    assert_clean(run_all([lint_cert(write_pem(tmp_path / "ee.pem", cert))]))


# -- CRLs ---------------------------------------------------------------------------------------------------


def test_empty_crls_pass(tmp_path: Path, ca_service: Service) -> None:
    published = ca_service.crl.publish()
    assert {p.ca for p in published} == {"root", *KINDS}  # the root's ARL too
    paths = []
    for p in published:
        parsed = x509.load_der_x509_crl(p.record.der)
        assert len(parsed) == 0
        paths.append(write_der(tmp_path / f"{p.ca}.crl", p.record.der))
    assert_clean(run_all([lint_crl(path) for path in paths]))


def test_crl_with_every_revocation_reason_passes(
    tmp_path: Path, ca_service: Service, people: dict[str, Actor]
) -> None:
    revoked: dict[int, RevocationReason] = {}
    for i, reason in enumerate(RevocationReason):
        cert = issue(ca_service, people, index=100 + i)
        if reason is RevocationReason.CERTIFICATE_HOLD:  # a hold has its own operation
            ca_service.revocation.hold(serial_hex(cert), actor=people["ops"])
        else:
            ca_service.revocation.revoke(serial_hex(cert), reason, actor=people["ops"])
        revoked[cert.serial_number] = reason
    issue(ca_service, people, index=99)  # a valid one stays off the list
    record = next(p.record for p in ca_service.crl.publish() if p.ca == "test")

    parsed = x509.load_der_x509_crl(record.der)
    assert crl_signed_by(record.der, ca_certs(ca_service)["test"])
    assert {e.serial_number for e in parsed} == set(revoked)
    for entry in parsed:
        reason = revoked[entry.serial_number]
        try:
            flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            flag = None
        # RFC 5280 §5.3.1: unspecified is left out rather than written.
        expected = None if reason is RevocationReason.UNSPECIFIED else x509.ReasonFlags[_snake(reason.value)]
        assert flag == expected, reason
    assert_clean(run_all([lint_crl(write_der(tmp_path / "test.crl", record.der))]))


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


# -- OCSP ---------------------------------------------------------------------------------------------------


def test_ocsp_responses_pass(tmp_path: Path, ca_service: Service, people: dict[str, Actor]) -> None:
    """good, revoked (with a reason, and unspecified) and unknown, each with its nonce echoed."""
    issuer = ca_certs(ca_service)["test"]
    good = issue(ca_service, people, index=0)
    requests = {"good": ocsp_request(good, issuer)}
    for i, reason in enumerate([RevocationReason.KEY_COMPROMISE, RevocationReason.UNSPECIFIED]):
        cert = issue(ca_service, people, index=100 + i)
        ca_service.revocation.revoke(serial_hex(cert), reason, actor=people["ops"])
        requests[f"revoked-{reason.value}"] = ocsp_request(cert, issuer)
    requests["unknown"] = ocsp_request_for_serial(NEVER_ISSUED, issuer)
    expected = {"good": ocsp.OCSPCertStatus.GOOD, "unknown": ocsp.OCSPCertStatus.UNKNOWN}

    paths = []
    for name, der in requests.items():
        response = ca_service.ocsp.respond(der)
        parsed = ocsp.load_der_ocsp_response(response)
        assert parsed.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL, name
        assert parsed.certificate_status is expected.get(name, ocsp.OCSPCertStatus.REVOKED), name
        sent = ocsp.load_der_ocsp_request(der).extensions.get_extension_for_class(x509.OCSPNonce).value
        assert parsed.extensions.get_extension_for_class(x509.OCSPNonce).value == sent, name
        paths.append(write_der(tmp_path / f"{name}.der", response))
    assert_clean(run_all([lint_ocsp(p) for p in paths]))


# -- every CA key algorithm -------------------------------------------------------------------------------


@pytest.mark.parametrize("ca_alg", ["rsa-2048", "ec-p384"])
def test_hierarchy_with_other_ca_key_algorithms_passes(
    tmp_path: Path, service: Service, people: dict[str, Actor], clock: FixedClock, ca_alg: str
) -> None:
    """The default policy signs with P-256; RSA (PKCS#1 v1.5, NULL parameters) and P-384 (SHA-384) CAs
    take other paths through the certificate, CRL and OCSP signers."""
    policies = load_policies()
    policies = dataclasses.replace(policies, ca=dataclasses.replace(policies.ca, key_algorithm=ca_alg))
    svc = Service(
        service.ctx.engine,
        policies=policies,
        clock=clock,
        keys=FileKeyStore(tmp_path / f"ca-{ca_alg}", lambda: CA_PASSPHRASE),
        audit_seal=fixed_seal(tmp_path),
    )
    svc.authority.ensure_hierarchy()
    cas = ca_certs(svc)
    ee = issue(svc, people, alg="ec-p256", index=0)
    svc.revocation.revoke(serial_hex(ee), RevocationReason.KEY_COMPROMISE, actor=people["ops"])
    crl = next(p.record for p in svc.crl.publish() if p.ca == "test")
    response = svc.ocsp.respond(ocsp_request(ee, cas["test"]))
    assert ocsp.load_der_ocsp_response(response).certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert crl_signed_by(crl.der, cas["test"])

    paths = {slug: write_pem(tmp_path / f"{slug}.pem", cas[slug]) for slug in ("root", "test")}
    paths["ee"] = write_pem(tmp_path / "ee.pem", ee)
    commands = [lint_cert(p) for p in paths.values()]
    commands += [
        lint_chain(paths["test"], paths["ee"]),
        lint_crl(write_der(tmp_path / "test.crl", crl.der)),
        lint_ocsp(write_der(tmp_path / "revoked.der", response)),
    ]
    assert_clean(run_all(commands))
