"""The API's transport: TLS served by pkictl itself, and plain HTTP behind a trusted reverse proxy."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.server import PASSWORD, DeskProcess, center_env, prepare_home, serving
from tests.support.tls import server_certificate


def test_a_desk_works_over_tls_served_by_pkictl(db_url: str, tmp_path: Path) -> None:
    prepare_home(tmp_path / "home", db_url)
    cert, key = server_certificate(tmp_path)
    args = ("--tls-cert", str(cert), "--tls-key", str(key))
    with serving(center_env(tmp_path / "home", db_url), args=args) as base:
        assert base.startswith("https://")
        desk = DeskProcess(base, tmp_path / "desk", {"PKI_SERVER_CA": str(cert)})
        login = desk("login", "--server", base, "--as", "u-entry")
        assert login.code == 0, login.err
        assert desk("request", "list", "--json", check=True).json() == []
        # A desk that does not trust the server's certificate is told which server failed.
        untrusting = DeskProcess(base, tmp_path / "untrusting")
        refused = untrusting("login", "--server", base, "--as", "u-entry")
        assert refused.code == 1 and f"server {base} unreachable" in refused.err
        # Plain HTTP to the TLS port gets nowhere.
        plain = base.replace("https://", "http://")
        try:
            answer = httpx.post(
                f"{plain}/api/v1/sessions", json={"username": "u-entry", "password": PASSWORD}
            )
            assert answer.status_code >= 400
        except httpx.TransportError:
            pass


def test_behind_a_trusted_proxy_the_client_address_and_scheme_count(db_url: str, tmp_path: Path) -> None:
    prepare_home(tmp_path / "home", db_url)
    with serving(center_env(tmp_path / "home", db_url), args=("--trusted-proxy", "127.0.0.1")) as base:
        credentials = {"username": "u-entry", "password": PASSWORD}
        forwarded = {"X-Forwarded-For": "192.0.2.10"}
        over_http = httpx.post(
            f"{base}/api/v1/sessions", json=credentials, headers=forwarded | {"X-Forwarded-Proto": "http"}
        )
        assert over_http.status_code == 403 and over_http.json()["code"] == "insecure_transport"
        over_tls = httpx.post(
            f"{base}/api/v1/sessions", json=credentials, headers=forwarded | {"X-Forwarded-Proto": "https"}
        )
        assert over_tls.status_code == 201
        # Failed log-ins are counted against the client behind the proxy, not against the proxy.
        for _ in range(20):
            httpx.post(
                f"{base}/api/v1/sessions",
                json={"username": "nobody", "password": "wrong-password"},
                headers={"X-Forwarded-For": "192.0.2.66", "X-Forwarded-Proto": "https"},
            )
        still = httpx.post(
            f"{base}/api/v1/sessions", json=credentials, headers=forwarded | {"X-Forwarded-Proto": "https"}
        )
        assert still.status_code == 201


def test_a_proxy_relaying_plain_http_is_refused(db_url: str, tmp_path: Path) -> None:
    prepare_home(tmp_path / "home", db_url)
    credentials = {"username": "u-entry", "password": PASSWORD}
    env = center_env(tmp_path / "home", db_url)
    with serving(env) as base:  # no --trusted-proxy: the forwarding headers still say it was relayed
        for headers in (
            {"X-Forwarded-Proto": "http"},
            {"X-Forwarded-For": "192.0.2.1"},
            {"Forwarded": "for=x"},
        ):
            answer = httpx.post(f"{base}/api/v1/sessions", json=credentials, headers=headers)
            assert answer.status_code == 403, headers
    with serving(env, args=("--trusted-proxy", "127.0.0.1")) as base:
        answer = httpx.post(
            f"{base}/api/v1/sessions", json=credentials, headers={"X-Forwarded-Proto": "http"}
        )
        assert answer.status_code == 403


def test_path_values_cannot_reach_other_routes(db_url: str, tmp_path: Path) -> None:
    prepare_home(tmp_path / "home", db_url)
    with serving(center_env(tmp_path / "home", db_url)) as base:
        desk = DeskProcess(base, tmp_path / "desk")
        desk("login", "--server", base, "--as", "u-entry", check=True)
        for serial in ("0A/export", "0A?format=der", "../../cas"):
            shown = desk("cert", "show", serial)
            assert shown.code == 1 and shown.err.startswith("pkictl: error: "), (serial, shown)
            assert "-----BEGIN" not in shown.out and "root" not in shown.out
