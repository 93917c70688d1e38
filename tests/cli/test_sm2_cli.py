"""A 国密 home through `pkictl`: ca.toml in the home's policies/ makes `init` build an SM2 hierarchy, `ca
show` says so, an OpenSSL 3 SM2 CSR is issued with `issue --csr`, an RSA CSR is refused for the SM2 kind,
and `crl publish` writes SM3withSM2 CRLs listing the revoked certificate. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from pki.ca.sm2 import SM3_WITH_SM2_OID
from tests.cli.conftest import STAFF
from tests.cli.runner import Cli
from tests.cli.test_ca_cli import OPERATOR, approved, assert_refused, write_csr
from tests.support import sm2 as gm
from tests.support.pki import key


@pytest.fixture
def sm2_home(cli: Cli) -> Cli:
    """A home whose policies/ca.toml says key_algorithm = "sm2", initialized and staffed."""
    gm.policy_dir(cli.home / "policies")
    cli.ok("init")
    cli.add_user("admin", "admin", admin=None)
    for name, roles in STAFF.items():
        cli.add_user(name, *roles)
    cli.add_user(OPERATOR, "ops", "distributor")
    return cli


def test_init_makes_an_sm2_hierarchy_and_ca_show_says_so(sm2_home: Cli) -> None:
    shown = sm2_home.json("ca", "show")
    assert {c["slug"]: c["key_algorithm"] for c in shown} == dict.fromkeys(
        ("root", "test", "ocsp-test", "formal", "ocsp-formal", "ocsp-root"), "sm2"
    )
    text = sm2_home.ok("ca", "show").out
    assert text.count(" sm2 ") == 6, text


def test_issue_revoke_and_publish_in_an_sm2_home(sm2_home: Cli, tmp_path: Path) -> None:
    csr = tmp_path / "unit.csr"
    csr.write_bytes(gm.openssl_csr(tmp_path))
    rid = approved(sm2_home, tmp_path, access_type="formal")
    cert = sm2_home.json("issue", str(rid), "--csr", str(csr), "--as", OPERATOR)
    pem = sm2_home.ok("cert", "export", cert["serial"], "--format", "pem").out.encode()
    assert x509.load_pem_x509_certificate(pem).signature_algorithm_oid.dotted_string == SM3_WITH_SM2_OID

    refused_rid = approved(sm2_home, tmp_path, access_type="test")
    rsa_csr = write_csr(tmp_path, key("rsa-2048"))
    refused = sm2_home("issue", str(refused_rid), "--csr", str(rsa_csr), "--as", OPERATOR)
    assert_refused(refused, "csr", "rsa-2048 key cannot be certified for kind 'test'", "takes SM2 keys")

    sm2_home.ok("revoke", cert["serial"], "--reason", "keyCompromise", "--as", OPERATOR)
    out = tmp_path / "crls"
    sm2_home.ok("crl", "publish", "--out", str(out), "--as", OPERATOR)
    crl = x509.load_der_x509_crl((out / "formal.crl").read_bytes())
    assert crl.signature_algorithm_oid.dotted_string == SM3_WITH_SM2_OID
    assert crl.get_revoked_certificate_by_serial_number(int(cert["serial"], 16)) is not None
