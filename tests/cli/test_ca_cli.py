"""`pkictl` as a certificate authority, end to end through the CLI: the hierarchy `init` builds, `issue`,
`cert list|show|export`, `revoke`, `crl publish` and `renew`'s refusals. Exit codes (0 ok, 1 refused, 2 usage),
output, and what each command leaves behind, seen through other commands and parsed with cryptography.
In-process over SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import io
import itertools
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID, ObjectIdentifier

import pki.cli
import pki.cli.app
from pki.ca.keys import PrivateKey
from tests.cli.runner import CA_PASSPHRASE, Cli, Result
from tests.support.data import SCAN_PDF, application, make_uscc
from tests.support.pki import csr_for, key

USBKEY = "飞天诚信 ePass3003"
ORGANIZATION_IDENTIFIER = ObjectIdentifier("2.5.4.97")
REASONS = (
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
)
# ops revokes, renews and publishes CRLs; distributor issues. One person holding both is the usual
# certificate-center operator.
OPERATOR = "operator"
_unit_numbers = itertools.count(80000000)


# -- fixtures and helpers ---------------------------------------------------------------------------------


@pytest.fixture
def ca_home(staffed: Cli) -> Cli:
    """The staffed home (admin, clerk, acceptor, head, reviewer) plus 'operator' with ops and distributor."""
    staffed.add_user(OPERATOR, "ops", "distributor")
    return staffed


@cache
def rsa_1024() -> PrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key the CA must refuse


def assert_refused(result: Result, *fragments: str) -> None:
    """Exit 1 with exactly one line on stderr, 'pkictl: error: ...', containing every fragment."""
    assert result.code == 1, result
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("pkictl: error: "), line
    for fragment in fragments:
        assert fragment in line, line


def assert_usage_error(result: Result, *fragments: str) -> None:
    assert result.code == 2, result
    for fragment in fragments:
        assert fragment in result.err, result.err


def enter(cli: Cli, tmp_path: Path, **overrides: Any) -> int:
    """Enter an application for a unit of its own (a fresh USCC and name) and return its id."""
    n = next(_unit_numbers)
    overrides.setdefault("credential_number", make_uscc("110101", str(n)))
    overrides.setdefault("unit_name", f"北京市某能源监测中心{n}")
    path = tmp_path / f"application-{n}.json"
    path.write_text(json.dumps(application(**overrides), ensure_ascii=False), encoding="utf-8")
    return int(cli.json("request", "new", "--file", str(path), "--as", "clerk")["id"])


def accepted(cli: Cli, tmp_path: Path, rid: int, *, access_type: str = "test") -> None:
    """Accept ``rid``, first keeping the stamped form's scan when its access type needs one (workflow.toml
    [acceptance]: formal)."""
    if access_type == "formal":
        scan = tmp_path / "signed-form.pdf"
        scan.write_bytes(SCAN_PDF)
        cli.ok("request", "attach", str(rid), "--kind", "signed_form", "--file", str(scan), "--as", "clerk")
    cli.ok("request", "accept", str(rid), "--opinion", "agree", "--usbkey", USBKEY, "--as", "acceptor")


def approved(cli: Cli, tmp_path: Path, *, reviewer: str = "reviewer", **overrides: Any) -> int:
    """A request walked to 'approved' through the CLI by clerk, acceptor, head and ``reviewer``."""
    rid = enter(cli, tmp_path, **overrides)
    accepted(cli, tmp_path, rid, access_type=overrides.get("access_type", "test"))
    cli.ok("request", "countersign", str(rid), "--as", "head")
    cli.ok("request", "review", str(rid), "--approve", "--as", reviewer)
    return rid


def request_state(cli: Cli, rid: int) -> str:
    return str(cli.json("request", "show", str(rid))["state"])


def write_csr(tmp_path: Path, private_key: PrivateKey, *, der: bool = False) -> Path:
    pem = csr_for(private_key)
    data = x509.load_pem_x509_csr(pem).public_bytes(Encoding.DER) if der else pem
    path = tmp_path / f"csr-{len(list(tmp_path.glob('csr-*')))}.{'der' if der else 'pem'}"
    path.write_bytes(data)
    return path


def issue(
    cli: Cli, tmp_path: Path, rid: int, private_key: PrivateKey, *, der: bool = False
) -> dict[str, Any]:
    """Issue request ``rid`` for ``private_key`` as the operator; the certificate as `issue --json` prints it."""
    csr = write_csr(tmp_path, private_key, der=der)
    data: dict[str, Any] = cli.json("issue", str(rid), "--csr", str(csr), "--as", OPERATOR)
    return data


def issued(cli: Cli, tmp_path: Path, index: int, **overrides: Any) -> dict[str, Any]:
    """A certificate for a new approved request and the EC key ``index``."""
    return issue(cli, tmp_path, approved(cli, tmp_path, **overrides), key("ec-p256", index))


def serials(cli: Cli, *filters: str) -> list[str]:
    return [c["serial"] for c in cli.json("cert", "list", *filters)]


def cas(cli: Cli) -> dict[str, dict[str, Any]]:
    return {c["slug"]: c for c in cli.json("ca", "show")}


def export_pem(cli: Cli, serial: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cli.ok("cert", "export", serial, "--format", "pem").out.encode())


def colon_lower(serial: str) -> str:
    """'1A2B3' -> '01:a2:b3': how openssl and browsers print a serial."""
    padded = serial.lower().rjust(len(serial) + len(serial) % 2, "0")
    return ":".join(padded[i : i + 2] for i in range(0, len(padded), 2))


@contextmanager
def ca_passphrase(monkeypatch: pytest.MonkeyPatch, value: str | None) -> Iterator[None]:
    """Run the CLI with PKI_CA_PASSPHRASE set to ``value`` (unset for None). The runner sets the right one on
    every call, so the change is made between the runner and pki.cli.main."""
    real = pki.cli.app.main

    def main(argv: list[str] | None = None) -> None:
        if value is None:
            monkeypatch.delenv("PKI_CA_PASSPHRASE", raising=False)
        else:
            monkeypatch.setenv("PKI_CA_PASSPHRASE", value)
        real(argv)

    with monkeypatch.context() as m:
        m.setattr(pki.cli, "main", main)
        yield


@contextmanager
def binary_stdout(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.BytesIO]:
    """The bytes a command writes to standard output (capsys decodes as UTF-8, which DER is not)."""
    raw = io.BytesIO()
    real = pki.cli.app.main

    def main(argv: list[str] | None = None) -> None:
        stream = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
        try:
            with monkeypatch.context() as m:
                m.setattr(sys, "stdout", stream)
                real(argv)
        finally:
            stream.flush()
            stream.detach()  # leave ``raw`` open

    with monkeypatch.context() as m:
        m.setattr(pki.cli, "main", main)
        yield raw


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


def publish(cli: Cli, out: Path) -> dict[str, x509.CertificateRevocationList]:
    cli.ok("crl", "publish", "--out", str(out), "--as", OPERATOR)
    return {ca: x509.load_der_x509_crl((out / f"{ca}.crl").read_bytes()) for ca in ("test", "formal")}


# -- init and the hierarchy -------------------------------------------------------------------------------

HIERARCHY = {
    "root": None,
    "test": "root",
    "formal": "root",
    "ocsp-test": "test",
    "ocsp-formal": "formal",
    "ocsp-root": "root",
}
ROLES = {
    "root": "root",
    "test": "issuing",
    "formal": "issuing",
    "ocsp-test": "ocsp",
    "ocsp-formal": "ocsp",
    "ocsp-root": "ocsp",
}


def test_init_builds_the_hierarchy_once(cli: Cli) -> None:
    first = cli.ok("init")

    for slug in HIERARCHY:
        assert any(line.startswith(f"CA {slug} ") for line in first.out.splitlines()), first.out
    assert "CN=国家电子政务外网数字证书中心 根CA" in first.out
    assert "CN=国家电子政务外网数字证书中心 测试证书CA" in first.out
    assert "CN=国家电子政务外网数字证书中心 正式证书CA" in first.out
    cli.add_user("admin", "admin", admin=None)
    listed = cli.json("ca", "show")
    by_id = {c["id"]: c["slug"] for c in listed}
    assert {c["slug"]: (by_id[c["parent_id"]] if c["parent_id"] else None) for c in listed} == HIERARCHY
    assert {c["slug"]: c["role"] for c in listed} == ROLES
    assert {c["slug"]: c["kind"] for c in listed} == {
        "root": None,
        "test": "test",
        "formal": "formal",
        "ocsp-test": "test",
        "ocsp-formal": "formal",
        "ocsp-root": None,
    }
    for c in listed:
        assert "certificate_der" not in c
        assert "key_ref" not in c
        assert c["key_algorithm"] == "ec-p256"
        assert "O=国家电子政务外网数字证书中心" in c["subject"]
        assert c["subject"].endswith(",C=CN")
    # The keys are encrypted files in the home, readable by the owner only.
    key_files = sorted((cli.home / "ca").iterdir())
    assert len(key_files) == 6
    for path in key_files:
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert path.stat().st_mode & 0o077 == 0

    again = cli.ok("init")

    assert cli.json("ca", "show") == listed
    assert sorted((cli.home / "ca").iterdir()) == key_files
    for c in listed:
        assert f"CA {c['slug']}" in again.out


def test_ca_show_prints_the_tree(home: Cli) -> None:
    listed = {c["slug"]: c for c in home.json("ca", "show")}

    out = home.ok("ca", "show").out.splitlines()

    depth = {"root": 0, "test": 1, "formal": 1, "ocsp-test": 2, "ocsp-formal": 2, "ocsp-root": 1}
    for slug, level in depth.items():
        line = next(x for x in out if x.strip().startswith(f"{slug} "))
        assert line.startswith("  " * level + slug), line
        assert ROLES[slug] in line
        assert f"serial {listed[slug]['serial']}" in line
    assert sum("valid " in x for x in out) == 6


def test_ca_show_before_init_and_before_the_hierarchy(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_refused(cli("ca", "show"), "pkictl init")

    with ca_passphrase(monkeypatch, None):
        no_secret = cli("init")

    # No terminal to prompt on and no PKI_CA_PASSPHRASE: a usage error naming the variable, and no CA.
    assert_usage_error(no_secret, "PKI_CA_PASSPHRASE")
    assert "Traceback" not in no_secret.err
    assert cli.json("ca", "show") == []
    assert "no CA yet" in cli.ok("ca", "show").out
    assert not (cli.home / "ca").exists() or not list((cli.home / "ca").iterdir())

    cli.ok("init")
    assert set(cas(cli)) == set(HIERARCHY)


def test_init_refuses_a_short_passphrase(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with ca_passphrase(monkeypatch, "eleven-char"):
        short = cli("init")

    assert_refused(short, "at least 12 characters")
    assert cli.json("ca", "show") == []
    assert not (cli.home / "ca").exists() or not list((cli.home / "ca").iterdir())


def test_issuing_needs_the_right_passphrase(
    ca_home: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = approved(ca_home, tmp_path)
    csr = str(write_csr(tmp_path, key("ec-p256", 0)))
    argv = ("issue", str(rid), "--csr", csr, "--as", OPERATOR)

    with ca_passphrase(monkeypatch, "not-the-ca-passphrase"):
        wrong = ca_home(*argv)
    with ca_passphrase(monkeypatch, "short"):
        short = ca_home(*argv)
    with ca_passphrase(monkeypatch, None):
        missing = ca_home(*argv)

    assert_refused(wrong, "passphrase is wrong")
    assert_refused(short, "at least 12 characters")
    assert_usage_error(missing, "PKI_CA_PASSPHRASE")
    assert CA_PASSPHRASE not in wrong.err + short.err + missing.err
    assert ca_home.json("cert", "list") == []
    assert request_state(ca_home, rid) == "approved"
    assert ca_home.ok(*argv).code == 0  # nothing was left half done
    assert request_state(ca_home, rid) == "issued"


# -- issue ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("der", [False, True], ids=["pem-csr", "der-csr"])
def test_issue_from_a_csr(ca_home: Cli, tmp_path: Path, der: bool) -> None:
    uscc = make_uscc("110101", str(next(_unit_numbers)))
    rid = approved(ca_home, tmp_path, unit_name="北京市某能源监测中心", credential_number=uscc)
    csr = write_csr(tmp_path, key("ec-p256", 0), der=der)

    done = ca_home.ok("issue", str(rid), "--csr", str(csr), "--as", OPERATOR)

    assert done.out.startswith("certificate ")
    assert " issued: test, valid, until " in done.out
    serial = done.out.split()[1]
    listed = ca_home.json("cert", "list")
    assert len(listed) == 1
    row = listed[0]
    assert row["serial"] == serial
    assert row["status"] == "valid"
    assert row["request_id"] == rid
    assert row["kind"] == "test"
    assert row["unit_name"] == "北京市某能源监测中心"
    assert row["credential_number"] == uscc
    assert row["issued_by"] == OPERATOR
    assert row["key_algorithm"] == "ec-p256"
    assert "der" not in row
    assert request_state(ca_home, rid) == "issued"

    cert = export_pem(ca_home, serial)
    subject = cert.subject
    # The subject is the approved record's, never the CSR's ("ignored by the CA").
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "北京市某能源监测中心"
    ]
    assert [a.value for a in subject.get_attributes_for_oid(ORGANIZATION_IDENTIFIER)] == [uscc]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["北京市某能源监测中心"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)] == ["CN"]
    assert "ignored by the CA" not in subject.rfc4514_string()
    assert f"{cert.serial_number:X}" == serial
    assert cert.public_key() == key("ec-p256", 0).public_key()
    assert cert.issuer.rfc4514_string() == cas(ca_home)["test"]["subject"]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days in range(365, 367)


def test_issue_json_and_a_formal_request_uses_the_formal_ca(ca_home: Cli, tmp_path: Path) -> None:
    rid = approved(ca_home, tmp_path, access_type="formal")

    data = issue(ca_home, tmp_path, rid, key("ec-p384", 0))

    assert data["kind"] == "formal"
    assert data["status"] == "valid"
    assert data["key_algorithm"] == "ec-p384"
    assert data["ca_id"] == cas(ca_home)["formal"]["id"]
    assert export_pem(ca_home, data["serial"]).issuer.rfc4514_string() == cas(ca_home)["formal"]["subject"]
    chain = x509.load_pem_x509_certificates(
        ca_home.ok("cert", "export", data["serial"], "--format", "chain").out.encode()
    )
    assert [f"{c.serial_number:X}" for c in chain[1:]] == [
        cas(ca_home)["formal"]["serial"],
        cas(ca_home)["root"]["serial"],
    ]


def test_issue_twice_or_before_approval_is_refused(ca_home: Cli, tmp_path: Path) -> None:
    rid = approved(ca_home, tmp_path)
    issue(ca_home, tmp_path, rid, key("ec-p256", 0))
    entered = enter(ca_home, tmp_path)

    twice = ca_home("issue", str(rid), "--csr", str(write_csr(tmp_path, key("ec-p256", 1))), "--as", OPERATOR)
    early = ca_home(
        "issue", str(entered), "--csr", str(write_csr(tmp_path, key("ec-p256", 2))), "--as", OPERATOR
    )
    missing = ca_home("issue", "9999", "--csr", str(write_csr(tmp_path, key("ec-p256", 3))), "--as", OPERATOR)

    assert_refused(twice, "cannot issue a request that is issued")
    assert_refused(early, "cannot issue a request that is entered")
    assert_refused(missing, "request 9999 not found")
    assert len(ca_home.json("cert", "list")) == 1
    assert request_state(ca_home, entered) == "entered"


def test_the_reviewer_who_approved_may_not_issue(ca_home: Cli, tmp_path: Path) -> None:
    ca_home.add_user("reviewer2", "reviewer", "distributor")
    rid = approved(ca_home, tmp_path, reviewer="reviewer2")
    csr = str(write_csr(tmp_path, key("ec-p256", 0)))

    refused = ca_home("issue", str(rid), "--csr", csr, "--as", "reviewer2")

    assert_refused(refused, "the reviewer may not issue, distribute or carry out the request")
    assert ca_home.json("cert", "list") == []
    assert request_state(ca_home, rid) == "approved"
    denied = ca_home.json("audit", "show")
    assert any(a["action"] == "security.denied" and a["actor"] == "reviewer2" for a in denied)
    ca_home.ok("issue", str(rid), "--csr", csr, "--as", OPERATOR)


def test_issuing_needs_the_distributor_role(ca_home: Cli, tmp_path: Path) -> None:
    rid = approved(ca_home, tmp_path)
    csr = str(write_csr(tmp_path, key("ec-p256", 0)))

    assert_refused(ca_home("issue", str(rid), "--csr", csr, "--as", "clerk"), "no role that may issue")
    assert ca_home.json("cert", "list") == []


def test_issue_refuses_a_csr_whose_signature_does_not_verify(ca_home: Cli, tmp_path: Path) -> None:
    rid = approved(ca_home, tmp_path)
    good = write_csr(tmp_path, key("ec-p256", 0), der=True).read_bytes()
    tampered = bytearray(good)
    tampered[-1] ^= 0x01  # the last byte of the signature value
    assert not x509.load_der_x509_csr(bytes(tampered)).is_signature_valid  # still a well-formed CSR
    path = tmp_path / "tampered.der"
    path.write_bytes(bytes(tampered))

    assert_refused(ca_home("issue", str(rid), "--csr", str(path), "--as", OPERATOR), "csr", "signature")
    assert ca_home.json("cert", "list") == []
    assert request_state(ca_home, rid) == "approved"


@pytest.mark.parametrize(
    "content",
    [b"", b"not a csr\n", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"],
)
def test_issue_refuses_a_file_that_is_not_a_csr(ca_home: Cli, tmp_path: Path, content: bytes) -> None:
    rid = approved(ca_home, tmp_path)
    path = tmp_path / "junk.csr"
    path.write_bytes(content)

    assert_refused(
        ca_home("issue", str(rid), "--csr", str(path), "--as", OPERATOR), "csr", "not a PKCS#10 request"
    )
    assert ca_home.json("cert", "list") == []


def test_issue_refuses_a_weak_key(ca_home: Cli, tmp_path: Path) -> None:
    rid = approved(ca_home, tmp_path)
    csr = write_csr(tmp_path, rsa_1024())

    refused = ca_home("issue", str(rid), "--csr", str(csr), "--as", OPERATOR)

    assert_refused(refused, "key type not accepted", "rsa-2048")
    assert ca_home.json("cert", "list") == []


def test_one_key_is_certified_for_one_unit_only(ca_home: Cli, tmp_path: Path) -> None:
    first = issued(ca_home, tmp_path, 0)
    other_unit = approved(ca_home, tmp_path)
    csr = write_csr(tmp_path, key("ec-p256", 0))

    refused = ca_home("issue", str(other_unit), "--csr", str(csr), "--as", OPERATOR)

    assert_refused(refused, "already certified", first["serial"])
    assert serials(ca_home) == [first["serial"]]
    assert request_state(ca_home, other_unit) == "approved"
    issue(ca_home, tmp_path, other_unit, key("ec-p256", 1))  # with a key of its own


def test_issue_usage_errors(ca_home: Cli, tmp_path: Path) -> None:
    rid = approved(ca_home, tmp_path)
    csr = str(write_csr(tmp_path, key("ec-p256", 0)))

    assert_usage_error(ca_home("issue", str(rid), "--as", OPERATOR), "--csr")
    assert_usage_error(ca_home("issue", str(rid), "--csr", str(tmp_path / "absent.csr"), "--as", OPERATOR))
    assert_usage_error(ca_home("issue", str(rid), "--csr", csr), "--as")
    assert_usage_error(ca_home("issue", "one", "--csr", csr, "--as", OPERATOR))
    assert ca_home.json("cert", "list") == []


# -- cert show / export -----------------------------------------------------------------------------------


def test_cert_show(ca_home: Cli, tmp_path: Path) -> None:
    data = issued(ca_home, tmp_path, 0)
    serial = data["serial"]

    shown = ca_home.json("cert", "show", colon_lower(serial))
    text = ca_home.ok("cert", "show", serial.lower()).out

    assert shown.pop("token") is None  # issued from a CSR: on no USBKEY of ours
    assert "token: -" in text.splitlines()
    assert shown == ca_home.json("cert", "list")[0]
    assert ca_home.json("cert", "show", f"0x00{serial}") == shown | {"token": None}
    assert ca_home.json("cert", "show", f"00:{colon_lower(serial)}") == shown | {"token": None}
    assert shown["serial"] == serial
    assert f"serial: {serial}" in text.splitlines()
    assert "status: valid" in text.splitlines()
    assert f"unit_name: {data['unit_name']}" in text.splitlines()
    assert_refused(ca_home("cert", "show", "ABCDEF"), "no certificate with serial ABCDEF")
    assert_refused(ca_home("cert", "show", "xyz"), "serial", "hexadecimal")


def test_cert_export_formats(ca_home: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serial = issued(ca_home, tmp_path, 0)["serial"]
    authorities = cas(ca_home)

    pem = ca_home.ok("cert", "export", serial).out
    cert = x509.load_pem_x509_certificate(pem.encode())
    with binary_stdout(monkeypatch) as raw:
        ca_home.ok("cert", "export", serial, "--format", "der")
    chain = x509.load_pem_x509_certificates(
        ca_home.ok("cert", "export", serial, "--format", "chain").out.encode()
    )

    assert pem.startswith("-----BEGIN CERTIFICATE-----\n")
    assert f"{cert.serial_number:X}" == serial
    assert x509.load_der_x509_certificate(raw.getvalue()) == cert
    assert [f"{c.serial_number:X}" for c in chain] == [
        serial,
        authorities["test"]["serial"],
        authorities["root"]["serial"],
    ]
    ee, issuing, root = chain
    ee.verify_directly_issued_by(issuing)
    issuing.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)


def test_cert_export_out_writes_a_file(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 0)["serial"]
    pem_path, der_path, chain_path = tmp_path / "ee.pem", tmp_path / "ee.cer", tmp_path / "chain.pem"

    for fmt, path in (("pem", pem_path), ("der", der_path), ("chain", chain_path)):
        done = ca_home.ok("cert", "export", serial, "--format", fmt, "--out", str(path))
        assert done.out == ""

    cert = x509.load_der_x509_certificate(der_path.read_bytes())
    assert x509.load_pem_x509_certificate(pem_path.read_bytes()) == cert
    assert pem_path.read_text() == ca_home.ok("cert", "export", serial).out
    assert len(x509.load_pem_x509_certificates(chain_path.read_bytes())) == 3


def test_cert_export_refusals(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 0)["serial"]

    assert_usage_error(ca_home("cert", "export", serial, "--format", "p12"), "p12")
    assert_refused(ca_home("cert", "export", "ABC123"), "no certificate with serial ABC123")
    assert_refused(ca_home("cert", "export", "not-hex"), "hexadecimal")


# -- revoke -----------------------------------------------------------------------------------------------


def test_revoke_one_certificate(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 0)["serial"]
    other = issued(ca_home, tmp_path, 1)["serial"]

    done = ca_home.ok(
        "revoke",
        colon_lower(serial),
        "--reason",
        "key-compromise",
        "--comment",
        "USB key lost",
        "--as",
        OPERATOR,
    )

    assert done.out.strip() == f"certificate {serial} revoked (keyCompromise)"
    shown = ca_home.json("cert", "show", serial)
    assert shown["status"] == "revoked"
    assert shown["revocation_reason"] == "keyCompromise"
    assert shown["revocation_comment"] == "USB key lost"
    assert shown["revoked_by"] == OPERATOR
    assert shown["revoked_at"]
    assert serials(ca_home, "--status", "revoked") == [serial]
    assert serials(ca_home, "--status", "valid") == [other]

    again = ca_home("revoke", serial, "--reason", "superseded", "--as", OPERATOR)
    assert_refused(again, "already revoked", "keyCompromise")
    assert ca_home.json("cert", "show", serial)["revocation_reason"] == "keyCompromise"


def test_revoke_refusals(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 0)["serial"]

    assert_refused(ca_home("revoke", "ABCDEF", "--reason", "superseded", "--as", OPERATOR), "no certificate")
    assert_refused(ca_home("revoke", "zz", "--reason", "superseded", "--as", OPERATOR), "hexadecimal")
    bad_reason = ca_home("revoke", serial, "--reason", "because", "--as", OPERATOR)
    assert_refused(bad_reason, "reason", "because", *REASONS)
    assert_refused(
        ca_home("revoke", serial, "--reason", "superseded", "--comment", "x" * 501, "--as", OPERATOR),
        "comment",
    )
    assert_refused(
        ca_home("revoke", serial, "--reason", "superseded", "--as", "clerk"), "no role that may revoke"
    )
    assert_refused(
        ca_home("revoke", serial, "--reason", "superseded", "--as", OPERATOR, password="wrong-password"),
        "authentication failed",
    )
    assert_usage_error(ca_home("revoke", "--reason", "superseded", "--as", OPERATOR), "SERIAL", "--from-file")
    assert_refused(ca_home("revoke", serial, "--as", OPERATOR), "reason", "a revocation reason is required")
    assert_usage_error(ca_home("revoke", serial, "--reason", "superseded"), "--as")
    both = tmp_path / "both.txt"
    both.write_text(serial + "\n")
    assert_usage_error(
        ca_home("revoke", serial, "--from-file", str(both), "--reason", "superseded", "--as", OPERATOR)
    )
    assert serials(ca_home, "--status", "valid") == [serial]
    assert serials(ca_home, "--status", "revoked") == []


def test_revoke_from_a_file(ca_home: Cli, tmp_path: Path) -> None:
    a, b, kept = (issued(ca_home, tmp_path, i)["serial"] for i in range(3))
    listing = tmp_path / "revoke.txt"
    listing.write_text(
        f"# units that closed down\n\n{colon_lower(a)}\n  {b.lower()}   # second unit\n", encoding="utf-8"
    )

    done = ca_home.json(
        "revoke", "--from-file", str(listing), "--reason", "cessationOfOperation", "--as", OPERATOR
    )

    assert [c["serial"] for c in done] == [a, b]
    assert {c["status"] for c in done} == {"revoked"}
    assert {c["revocation_reason"] for c in done} == {"cessationOfOperation"}
    assert sorted(serials(ca_home, "--status", "revoked")) == sorted([a, b])
    assert serials(ca_home, "--status", "valid") == [kept]


@pytest.mark.parametrize("problem", ["unknown", "revoked", "twice"])
def test_revoke_from_a_file_is_all_or_nothing(ca_home: Cli, tmp_path: Path, problem: str) -> None:
    good, other = (issued(ca_home, tmp_path, i)["serial"] for i in range(2))
    if problem == "revoked":
        ca_home.ok("revoke", other, "--reason", "superseded", "--as", OPERATOR)
    bad = {"unknown": "ABCDEF0123", "revoked": other, "twice": colon_lower(good)}[problem]
    listing = tmp_path / "revoke.txt"
    listing.write_text(f"{good}\n{bad}\n", encoding="utf-8")
    valid_before = serials(ca_home, "--status", "valid")

    refused = ca_home("revoke", "--from-file", str(listing), "--reason", "keyCompromise", "--as", OPERATOR)

    fragment = {"unknown": "ABCDEF0123", "revoked": "already revoked", "twice": "listed twice"}[problem]
    assert_refused(refused, fragment)
    assert good in valid_before
    assert serials(ca_home, "--status", "valid") == valid_before
    assert ca_home.json("cert", "show", good)["status"] == "valid"


def test_revoke_from_an_empty_file(ca_home: Cli, tmp_path: Path) -> None:
    issued(ca_home, tmp_path, 0)
    listing = tmp_path / "revoke.txt"
    listing.write_text("# nothing yet\n\n", encoding="utf-8")

    refused = ca_home("revoke", "--from-file", str(listing), "--reason", "superseded", "--as", OPERATOR)

    assert_refused(refused, "no serial numbers given")
    assert ca_home.json("cert", "list", "--status", "revoked") == []


# -- crl publish ------------------------------------------------------------------------------------------


def test_crl_publish_writes_der_and_pem(ca_home: Cli, tmp_path: Path) -> None:
    out = tmp_path / "crl"

    done = ca_home.ok("crl", "publish", "--out", str(out), "--as", OPERATOR)

    assert sorted(p.name for p in out.iterdir()) == [
        "crls.pem",
        "formal.crl",
        "formal.crl.pem",
        "root.crl",
        "root.crl.pem",
        "test.crl",
        "test.crl.pem",
    ]
    lines = done.out.splitlines()
    for ca in ("root", "test", "formal"):
        assert any(line.startswith(f"CRL {ca} #1: 0 entries") for line in lines), done.out
    authorities = cas(ca_home)
    pems = (out / "crls.pem").read_bytes().split(b"-----END X509 CRL-----\n")
    bundle = [x509.load_pem_x509_crl(p + b"-----END X509 CRL-----\n") for p in pems if p.strip()]
    assert [c.issuer.rfc4514_string() for c in bundle] == [
        authorities[ca]["subject"] for ca in ("root", "test", "formal")
    ]
    for ca in ("root", "test", "formal"):
        der = (out / f"{ca}.crl").read_bytes()
        crl = x509.load_der_x509_crl(der)
        assert x509.load_pem_x509_crl((out / f"{ca}.crl.pem").read_bytes()).public_bytes(Encoding.DER) == der
        assert crl.issuer.rfc4514_string() == authorities[ca]["subject"]
        assert crl_number(crl) == 1
        assert len(crl) == 0
        assert crl.next_update_utc is not None
        assert crl.next_update_utc > crl.last_update_utc


def test_crl_numbers_increase_and_the_revoked_certificate_is_listed(ca_home: Cli, tmp_path: Path) -> None:
    revoked = issued(ca_home, tmp_path, 0)["serial"]
    valid = issued(ca_home, tmp_path, 1)["serial"]
    issuing_ca = x509.load_pem_x509_certificates(
        ca_home.ok("cert", "export", revoked, "--format", "chain").out.encode()
    )[1]

    first = publish(ca_home, tmp_path / "one")
    ca_home.ok("revoke", revoked, "--reason", "keyCompromise", "--as", OPERATOR)
    second = publish(ca_home, tmp_path / "two")
    ca_home.ok("crl", "publish")  # the scheduled run: no operator
    third = publish(ca_home, tmp_path / "three")

    for ca in ("test", "formal"):
        assert [crl_number(first[ca]), crl_number(second[ca]), crl_number(third[ca])] == [1, 2, 4]
    assert len(first["test"]) == 0
    for crl in (second["test"], third["test"]):
        assert crl.is_signature_valid(issuing_ca.public_key())  # type: ignore[arg-type]
        entry = crl.get_revoked_certificate_by_serial_number(int(revoked, 16))
        assert entry is not None
        assert (
            entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            == x509.ReasonFlags.key_compromise
        )
        assert crl.get_revoked_certificate_by_serial_number(int(valid, 16)) is None
        assert len(crl) == 1
    assert len(second["formal"]) == 0  # a test certificate is on the test CA's list only


def test_crl_publish_json_and_roles(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 0)["serial"]
    ca_home.ok("revoke", serial, "--reason", "superseded", "--as", OPERATOR)

    published = ca_home.json("crl", "publish", "--as", OPERATOR)

    assert {p["ca"]: (p["number"], p["entries"]) for p in published} == {
        "root": (1, 0),
        "test": (1, 1),
        "formal": (1, 0),
    }
    for p in published:
        assert p["next_update"] > p["this_update"]
    assert_refused(ca_home("crl", "publish", "--as", "clerk"), "no role that may crl publish")
    assert {p["ca"]: p["number"] for p in ca_home.json("crl", "publish")} == {
        "root": 2,
        "test": 2,
        "formal": 2,
    }


def test_crl_pem_lines_are_at_most_64_characters(ca_home: Cli, tmp_path: Path) -> None:
    """RFC 7468 §2: generators MUST wrap the base64 text at 64 characters (cryptography and openssl do)."""
    out = tmp_path / "crl"
    for i in range(3):  # a few entries so that the base64 runs over several lines
        ca_home.ok(
            "revoke", issued(ca_home, tmp_path, i)["serial"], "--reason", "superseded", "--as", OPERATOR
        )
    ca_home.ok("crl", "publish", "--out", str(out))

    lines = (out / "test.crl.pem").read_text().splitlines()

    assert lines[0] == "-----BEGIN X509 CRL-----"
    assert lines[-1] == "-----END X509 CRL-----"
    assert max(len(line) for line in lines[1:-1]) <= 64, [len(line) for line in lines]


# -- cert list --------------------------------------------------------------------------------------------


def test_cert_list_filters(ca_home: Cli, tmp_path: Path) -> None:
    test_rid = approved(ca_home, tmp_path)
    test_cert = issue(ca_home, tmp_path, test_rid, key("ec-p256", 0))["serial"]
    formal_cert = issued(ca_home, tmp_path, 1, access_type="formal")["serial"]

    assert serials(ca_home) == [test_cert, formal_cert]
    assert serials(ca_home, "--kind", "test") == [test_cert]
    assert serials(ca_home, "--kind", "formal") == [formal_cert]
    assert serials(ca_home, "--request", str(test_rid)) == [test_cert]
    assert serials(ca_home, "--request", "9999") == []
    # A 12-month certificate issued now is not yet on the renewal worklist.
    assert serials(ca_home, "--expiring-within", "30") == []
    assert serials(ca_home, "--expiring-within", "400") == [test_cert, formal_cert]
    assert serials(ca_home, "--status", "expired") == []
    assert serials(ca_home, "--status", "valid") == [test_cert, formal_cert]
    assert serials(ca_home, "--limit", "1") == [test_cert]
    first_id = ca_home.json("cert", "list")[0]["id"]
    assert serials(ca_home, "--after-id", str(first_id)) == [formal_cert]

    ca_home.ok("revoke", formal_cert, "--reason", "privilegeWithdrawn", "--as", OPERATOR)

    assert serials(ca_home, "--expiring-within", "400") == [test_cert]
    assert serials(ca_home, "--status", "revoked") == [formal_cert]
    assert serials(ca_home, "--status", "revoked", "--kind", "test") == []
    text = ca_home.ok("cert", "list").out.splitlines()
    assert len(text) == 2
    assert text[0].startswith(test_cert) and " valid " in text[0]
    assert text[1].startswith(formal_cert) and " revoked " in text[1]


def test_cert_list_usage_errors(ca_home: Cli) -> None:
    assert_usage_error(ca_home("cert", "list", "--status", "suspended"))
    assert_usage_error(ca_home("cert", "list", "--expiring-within", "-1"))
    assert_usage_error(ca_home("cert", "list", "--expiring-within", "3651"))
    assert_usage_error(ca_home("cert", "list", "--kind", "demo"))
    assert ca_home.json("cert", "list") == []
    assert ca_home.ok("cert", "list").out == ""


# -- renew ------------------------------------------------------------------------------------------------


def test_renew_before_the_window_is_refused(ca_home: Cli, tmp_path: Path) -> None:
    data = issued(ca_home, tmp_path, 0)
    serial = data["serial"]

    refused = ca_home("renew", serial, "--as", OPERATOR)
    rekey = ca_home(
        "renew", serial, "--rekey", "--csr", str(write_csr(tmp_path, key("ec-p256", 1))), "--as", OPERATOR
    )

    assert_refused(refused, "can be renewed from", "90 days")
    assert_refused(rekey, "can be renewed from")
    assert serials(ca_home) == [serial]
    assert ca_home.json("cert", "show", serial)["status"] == "valid"
    assert_refused(ca_home("renew", serial, "--as", "clerk"), "no role that may renew")
    assert_refused(ca_home("renew", "ABCDEF", "--as", OPERATOR), "no certificate with serial ABCDEF")
    assert_refused(ca_home("renew", serial, "--months", "7", "--as", OPERATOR), "months")
    ca_home.ok("revoke", serial, "--reason", "affiliationChanged", "--as", OPERATOR)
    assert_refused(ca_home("renew", serial, "--as", OPERATOR), "is revoked")
    assert serials(ca_home) == [serial]


def test_renew_usage_errors(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 0)["serial"]
    csr = str(write_csr(tmp_path, key("ec-p256", 1)))

    assert_usage_error(ca_home("renew", serial, "--rekey", "--as", OPERATOR), "--rekey needs --csr")
    assert_usage_error(ca_home("renew", serial, "--csr", csr, "--as", OPERATOR), "--csr is only for --rekey")
    assert_usage_error(ca_home("renew", serial), "--as")
    assert serials(ca_home) == [serial]


# -- JSON everywhere --------------------------------------------------------------------------------------


def test_every_ca_read_command_has_json(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 0)["serial"]
    commands = [
        ("ca", "show"),
        ("cert", "list"),
        ("cert", "list", "--status", "valid"),
        ("cert", "list", "--status", "expired"),
        ("cert", "list", "--expiring-within", "30"),
        ("cert", "list", "--kind", "test", "--request", "1"),
        ("cert", "show", serial),
    ]
    for argv in commands:
        result = ca_home.ok(*argv, "--json")
        assert result.err == ""
        json.loads(result.out)
    issued_json = ca_home.ok(
        "issue",
        str(approved(ca_home, tmp_path)),
        "--csr",
        str(write_csr(tmp_path, key("ec-p256", 1))),
        "--as",
        OPERATOR,
        "--json",
    )
    revoked_json = ca_home.ok("revoke", serial, "--reason", "superseded", "--as", OPERATOR, "--json")
    published_json = ca_home.ok("crl", "publish", "--json")
    for result in (issued_json, revoked_json, published_json):
        assert result.err == ""
        json.loads(result.out)
    assert json.loads(revoked_json.out)[0]["serial"] == serial


# -- the CA passphrase is needed only to sign -------------------------------------------------------------


def test_read_commands_and_revoke_need_no_ca_passphrase(
    ca_home: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = issued(ca_home, tmp_path, 0)["serial"]

    with ca_passphrase(monkeypatch, None):
        assert set(cas(ca_home)) == set(HIERARCHY)
        assert serials(ca_home) == [serial]
        assert ca_home.json("cert", "show", serial)["status"] == "valid"
        assert (
            len(
                x509.load_pem_x509_certificates(
                    ca_home.ok("cert", "export", serial, "--format", "chain").out.encode()
                )
            )
            == 3
        )
        ca_home.ok("revoke", serial, "--reason", "superseded", "--as", OPERATOR)
        ca_home.ok("init")  # the hierarchy exists: re-running init (a migration) signs nothing
        unsigned = ca_home("crl", "publish")

    assert_usage_error(unsigned, "PKI_CA_PASSPHRASE")
    assert serials(ca_home, "--status", "revoked") == [serial]


def test_a_crl_publish_that_cannot_sign_publishes_nothing(
    ca_home: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "crl"
    with ca_passphrase(monkeypatch, "not-the-ca-passphrase"):
        wrong = ca_home("crl", "publish", "--out", str(out), "--as", OPERATOR)

    assert_refused(wrong, "passphrase is wrong")
    assert not out.exists() or not list(out.iterdir())
    assert {p["ca"]: p["number"] for p in ca_home.json("crl", "publish")} == {
        "root": 1,
        "test": 1,
        "formal": 1,
    }


# -- output files that cannot be written ------------------------------------------------------------------


def test_cert_export_out_to_a_directory_is_a_usage_error(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 0)["serial"]

    assert_usage_error(ca_home("cert", "export", serial, "--out", str(tmp_path)), "directory")


def test_cert_export_out_into_a_missing_directory_is_one_line(ca_home: Cli, tmp_path: Path) -> None:
    serial = issued(ca_home, tmp_path, 0)["serial"]

    result = ca_home("cert", "export", serial, "--out", str(tmp_path / "missing" / "ee.pem"))

    assert_refused(result, "missing")


def test_crl_publish_out_that_cannot_be_created_is_one_line(ca_home: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")

    result = ca_home("crl", "publish", "--out", str(blocker / "crl"), "--as", OPERATOR)

    assert_refused(result, "a-file")
