"""Relying parties as judges: nginx verifying client certificates with our CA bundle and our CRL bundle
(ssl_crl, the root's ARL included) or our OCSP responder at the certificate's own OCSP URL (ssl_ocsp), and
curl presenting a certificate whose private key never leaves its SoftHSM2 token (libp11's pkcs11 engine).

The home is made through `pkictl` with `init --public-url` set to a real `pkictl serve` on a free loopback
port, so the OCSP URL nginx follows is the one pkictl wrote into the certificate. The certificate is issued
onto the token by `pkictl issue --token-label` (key pair generated on the token) and revoked with `pkictl
revoke`. Real time throughout: nginx checks validity against the clock.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.cli.runner import AUDIT_PASSPHRASE, CA_PASSPHRASE, Cli
from tests.cli.test_ca_cli import OPERATOR, issue
from tests.cli.test_ca_cli import approved as approved_via_csr
from tests.cli.test_token_cli import Tokens, make_tokens, pkictl
from tests.cli.test_token_cli import approved as approved_for_token
from tests.judges.relying import NGINX, Nginx, engine_config, free_port, pkictl_serve
from tests.judges.tools import run
from tests.support.pki import key
from tests.support.softhsm import USER_PIN

STAFF = {"clerk": ("entry",), "acceptor": ("acceptor",), "head": ("head",), "reviewer": ("reviewer",)}
TEST_POLICY, FORMAL_POLICY = "1.3.6.1.4.1.32473.1.1", "1.3.6.1.4.1.32473.1.2"


@dataclass(frozen=True)
class Home:
    cli: Cli
    port: int  # where `pkictl serve` will listen: the home's public URL
    tmp: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, tokens: Tokens | None = None) -> dict[str, str]:
        return {
            **(tokens.env() if tokens else {}),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "PKI_HOME": str(self.cli.home),
            "PKI_DATABASE_URL": self.cli.db_url,
            "PKI_CA_PASSPHRASE": CA_PASSPHRASE,
            "PKI_AUDIT_PASSPHRASE": AUDIT_PASSPHRASE,
        }


@pytest.fixture
def home(cli: Cli, tmp_path: Path) -> Home:
    """A home whose public URL is a free loopback port, with the workflow's staff and an operator."""
    port = free_port()
    cli.ok("init", "--public-url", f"http://127.0.0.1:{port}")
    cli.add_user("admin", "admin", admin=None)
    for name, roles in STAFF.items():
        cli.add_user(name, *roles)
    cli.add_user(OPERATOR, "ops", "distributor")
    return Home(cli, port, tmp_path)


def curl(port: int, conf: Path, tokens: Tokens, label: str | None) -> tuple[int, str]:
    """GET / over TLS presenting the token's certificate and key (``label``: the objects' CKA_LABEL), or no
    certificate; returns (HTTP status, body). The server certificate is not checked (-k): nginx is the judge
    of the client here."""
    argv = ["curl", "-sS", "-k", "--max-time", "30", "-w", "\n%{http_code}"]
    if label is not None:
        uri = f"pkcs11:token={tokens.labels[0]};object={label};pin-value={USER_PIN}"
        argv += ["--engine", "pkcs11", "--key-type", "ENG", "--key", f"{uri};type=private"]
        argv += ["--cert-type", "ENG", "--cert", f"{uri};type=cert"]
    done = subprocess.run(
        [*argv, f"https://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**tokens.env(), "OPENSSL_CONF": str(conf)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def fetch_pem(base: str, slug: str, out: Path) -> bytes:
    """A CA certificate as a relying party gets it: over HTTP from the caIssuers location."""
    import urllib.request

    with urllib.request.urlopen(f"{base}/ca/{slug}.cer", timeout=30) as r:  # noqa: S310 (our own http URL)
        return x509.load_der_x509_certificate(r.read()).public_bytes(Encoding.PEM)


def test_nginx_accepts_a_token_certificate_until_it_is_revoked_by_crl_and_by_ocsp(home: Home) -> None:
    assert Path(NGINX).exists(), "nginx missing: scripts/_system.sh installs it"
    tmp = home.tmp
    tokens = make_tokens(tmp / "hsm", 1)
    rid = approved_for_token(home.cli, tmp)
    issued = pkictl(
        home.cli, tokens, "issue", str(rid), "--as", OPERATOR, "--token-label", "USBKEY-0", "--json"
    )
    assert issued.code == 0, issued
    serial, label = issued.json()["serial"], issued.json()["label"]
    leaf = x509.load_pem_x509_certificate(home.cli.ok("cert", "export", serial).out.encode())
    ocsp_urls = [
        d.access_location.value
        for d in leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP
    ]
    assert ocsp_urls == [f"{home.url}/ocsp/test"]  # the public URL, where pkictl serve listens
    conf = engine_config(tmp)
    crls = tmp / "crl"
    nginx_dir = tmp / "nginx"
    nginx_dir.mkdir()
    nginx = Nginx(nginx_dir, free_port(), free_port())
    with pkictl_serve(home.env(), home.port, tmp / "serve.log") as base:
        bundle = tmp / "ca-bundle.pem"
        bundle.write_bytes(b"".join(fetch_pem(base, slug, tmp) for slug in ("root", "test", "formal")))
        home.cli.ok("crl", "publish", "--out", str(crls), "--as", OPERATOR)
        with nginx.serving(bundle, crls / "crls.pem"):
            by_crl = curl(nginx.crl_port, conf, tokens, label)
            by_ocsp = curl(nginx.ocsp_port, conf, tokens, label)
            without = curl(nginx.crl_port, conf, tokens, None)
        for status, body in (by_crl, by_ocsp):  # nginx answers with the serial it verified
            assert status == 200 and int(body, 16) == int(serial, 16), (status, body, nginx.error_log())
        assert without[0] == 400  # no certificate presented: nginx refuses

        home.cli.ok("revoke", serial, "--reason", "keyCompromise", "--as", OPERATOR)
        home.cli.ok("crl", "publish", "--out", str(crls), "--as", OPERATOR)
        with nginx.serving(bundle, crls / "crls.pem"):
            by_crl = curl(nginx.crl_port, conf, tokens, label)
            by_ocsp = curl(nginx.ocsp_port, conf, tokens, label)
        log = nginx.error_log()
        assert by_crl[0] == 400 and by_ocsp[0] == 400, (by_crl, by_ocsp, log)
        assert log.count("certificate revoked") >= 2, log


def test_openssl_requires_the_formal_policy_through_the_chain(home: Home) -> None:
    """`openssl verify -policy FORMAL -explicit_policy`: a formal certificate passes, a test one fails; and
    the other way round. The issuing CA certificates carry their kinds' policies, the root none."""
    cli, tmp = home.cli, home.tmp
    certs = {
        kind: issue(cli, tmp, approved_via_csr(cli, tmp, access_type=kind), key("ec-p256", 40 + i))["serial"]
        for i, kind in enumerate(("test", "formal"))
    }
    chains = {
        kind: cli.ok("cert", "export", s, "--format", "chain").out.encode() for kind, s in certs.items()
    }
    parsed = {kind: x509.load_pem_x509_certificates(pem) for kind, pem in chains.items()}
    root = tmp / "root.pem"
    root.write_bytes(parsed["test"][2].public_bytes(Encoding.PEM))
    with pytest.raises(x509.ExtensionNotFound):
        parsed["test"][2].extensions.get_extension_for_class(x509.CertificatePolicies)
    for kind, (leaf, issuing, _) in parsed.items():
        (tmp / f"{kind}-leaf.pem").write_bytes(leaf.public_bytes(Encoding.PEM))
        (tmp / f"{kind}-ca.pem").write_bytes(issuing.public_bytes(Encoding.PEM))
    for kind in ("test", "formal"):
        for policy, wanted in ((TEST_POLICY, "test"), (FORMAL_POLICY, "formal")):
            outcome = run(
                ["openssl", "verify", "-CAfile", root, "-untrusted", tmp / f"{kind}-ca.pem",
                 "-policy", policy, "-explicit_policy", tmp / f"{kind}-leaf.pem"]
            )  # fmt: skip
            assert (outcome.returncode == 0) == (kind == wanted), outcome.explain()
            if kind != wanted:
                assert "no explicit policy" in outcome.stdout + outcome.stderr, outcome.explain()
