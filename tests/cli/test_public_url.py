"""`pkictl init --public-url` and `pkictl demo --public-url`: set once for a home, changeable for new
certificates; `init` re-certifies issuing CAs made before they carried policies. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from pki.ca.keystore import FileKeyStore
from pki.db import make_engine
from pki.services import Service
from tests.cli.runner import CA_PASSPHRASE, Cli
from tests.cli.test_ca_cli import OPERATOR, assert_refused, cas, issued
from tests.integration.test_chain_and_urls import _legacy_issuing, policies, urls


def test_a_bad_public_url_creates_nothing(cli: Cli) -> None:
    assert_refused(cli("init", "--public-url", "ftp://pki.example"), "public_url")
    assert not cli.home.exists()


def test_the_public_url_is_kept_and_changes_only_new_certificates(staffed: Cli, tmp_path: Path) -> None:
    cli = staffed
    cli.add_user(OPERATOR, "ops", "distributor")
    assert "public URL: - (ca.toml [urls])" in cli.ok("init").out
    assert "public URL: http://127.0.0.1:9001" in cli.ok("init", "--public-url", "http://127.0.0.1:9001/").out
    assert "public URL: http://127.0.0.1:9001" in cli.ok("init").out  # kept
    first = issued(cli, tmp_path, 80)
    assert (
        "public URL: https://pki.example.gov.cn"
        in cli.ok("init", "--public-url", "https://pki.example.gov.cn").out
    )
    second = issued(cli, tmp_path, 81)
    pem = {c["serial"]: cli.ok("cert", "export", c["serial"]).out.encode() for c in (first, second)}
    assert urls(x509.load_pem_x509_certificate(pem[first["serial"]]))["ocsp"] == [
        "http://127.0.0.1:9001/ocsp/test"
    ]
    assert urls(x509.load_pem_x509_certificate(pem[second["serial"]]))["crl"] == [
        "https://pki.example.gov.cn/crl/test.crl"
    ]


def test_init_recertifies_issuing_cas_without_policies(home: Cli) -> None:
    engine = make_engine(home.db_url)
    try:
        service = Service(engine, keys=FileKeyStore(home.home / "ca", lambda: CA_PASSPHRASE))
        for slug in ("test", "formal"):
            _legacy_issuing(service, slug)
            assert policies(service.authority.get(slug).certificate) == set()
    finally:
        engine.dispose()
    before = cas(home)
    out = home.ok("init").out
    assert "CA test re-certified" in out and "CA formal re-certified" in out
    after = cas(home)
    assert after["test"]["serial"] != before["test"]["serial"] and after["root"] == before["root"]
    assert "re-certified" not in home.ok("init").out  # once


def test_demo_certificates_point_at_the_url_the_demo_serves_on(tmp_path: Path) -> None:
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PKI_HOME": str(tmp_path / "demo-home"),
        "SOFTHSM2_CONF": os.environ.get("SOFTHSM2_CONF", ""),
    }
    argv = [sys.executable, "-c", "import pki.cli; pki.cli.main()"]
    done = subprocess.run([*argv, "demo", "--public-url", "http://127.0.0.1:8123"], env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    env["PKI_CA_PASSPHRASE"] = (tmp_path / "demo-home" / "DEMO-CA-PASSPHRASE").read_text().strip()
    listing = subprocess.run(
        [*argv, "cert", "list", "--json"], env=env, capture_output=True, text=True, check=True
    )
    [serial] = [c["serial"] for c in json.loads(listing.stdout)]
    pem = subprocess.run([*argv, "cert", "export", serial], env=env, capture_output=True, check=True).stdout
    assert urls(x509.load_pem_x509_certificate(pem))["ocsp"] == ["http://127.0.0.1:8123/ocsp/test"]
