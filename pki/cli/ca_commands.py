"""`pkictl ca|issue|cert|revoke|crl|renew|serve`: the certificate authority."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from pki.cli.app import (
    as_option,
    cli,
    desk,
    json_option,
    local_time,
    login,
    print_json,
    reader_option,
    service,
)
from pki.enums import REVOKE_REASONS, AccessType

CSR_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@cli.group()
def ca() -> None:
    """The CA hierarchy."""


@ca.command("show")
@json_option
def ca_show(as_json: bool) -> None:
    """Print the hierarchy: root, issuing CAs and their OCSP signers."""
    cas = desk().call("ca.show")
    if as_json:
        print_json(cas)
        return
    if not cas:
        click.echo("no CA yet: run 'pkictl init'")
    depth = {c["id"]: 0 for c in cas}
    for c in cas:
        if c["parent_id"] is not None:
            depth[c["id"]] = depth[c["parent_id"]] + 1
        indent = "  " * depth[c["id"]]
        click.echo(f"{indent}{c['slug']:<12} {c['role']:<8} {c['key_algorithm']:<9} serial {c['serial']}")
        click.echo(f"{indent}  {c['subject']}")
        click.echo(
            f"{indent}  valid {local_time(c['not_valid_before'])} .. {local_time(c['not_valid_after'])}"
        )


def _echo_cert(cert: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        print_json(cert)
    else:
        click.echo(
            f"certificate {cert['serial']} {verb}: {cert['kind']}, {cert['status']}, "
            f"until {local_time(cert['not_valid_after'])}"
        )


@cli.command()
@click.argument("request_id", type=int, required=False)
@click.option("--csr", "csr_path", type=CSR_FILE, help="PKCS#10 request, PEM or DER (key made elsewhere).")
@click.option(
    "--module",
    "module_path",
    metavar="PATH",
    help="PKCS#11 module of the USB key (default: from tokens.toml by the request's USBKEY 品牌及型号).",
)
@click.option("--token-label", metavar="LABEL", help="The USB key by its token label.")
@click.option("--token-serial", metavar="SERIAL", help="The USB key by its token serial number.")
@click.option(
    "--key-type",
    type=click.Choice(["ec-p256", "rsa-2048"]),
    help="Key pair to generate on the USB key (default: the model's, from tokens.toml).",
)
@click.option(
    "--resume", is_flag=True, help="Finish writing a certificate issued but not yet on its USB key."
)
@click.option(
    "--all-approved",
    is_flag=True,
    help="Issue the approved queue onto every blank USB key present, one each.",
)
@as_option
@json_option
def issue(
    request_id: int | None,
    csr_path: Path | None,
    module_path: str | None,
    token_label: str | None,
    token_serial: str | None,
    key_type: str | None,
    resume: bool,
    all_approved: bool,
    as_user: str,
    as_json: bool,
) -> None:
    """Issue the certificate of an approved request: onto a USB key (the key pair generated on the key, user
    PIN from PKI_TOKEN_PIN or a prompt), or from a CSR (the subject always comes from the request).

    \b
      pkictl issue 7 --as dist --token-label KEY01 [--module PATH] [--key-type ec-p256]
      pkictl issue 7 --as dist --token-serial 1A2B --resume
      pkictl issue --all-approved --as dist --module PATH
      pkictl issue 7 --as dist --csr unit.csr
    """
    from pki.cli import token_commands as tc

    if all_approved:
        if request_id is not None or csr_path or resume or token_label or token_serial:
            raise click.UsageError(
                "--all-approved takes no ID, --csr, --resume or --token-label/--token-serial"
            )
        tc.issue_all_approved(as_user, module_path, key_type, as_json)
        return
    if request_id is None:
        raise click.UsageError("give a request ID (or --all-approved)")
    if csr_path is not None:
        if module_path or token_label or token_serial or key_type or resume:
            raise click.UsageError("--csr cannot be combined with USB key options")
        cert = desk(as_user).call("issue.csr", request_id=request_id, csr=csr_path.read_bytes())
        _echo_cert(cert, as_json, "issued")
        return
    if (token_label is None) == (token_serial is None):
        raise click.UsageError("give --token-label or --token-serial (or --csr)")
    tc.issue_onto_token(
        request_id, as_user, module_path, token_label, token_serial, key_type, resume, as_json
    )


@cli.group()
def cert() -> None:
    """Issued certificates."""


@cert.command("list")
@click.option("--status", type=click.Choice(["valid", "revoked", "expired"]))
@click.option(
    "--expiring-within",
    "days",
    type=click.IntRange(0, 3650),
    metavar="DAYS",
    help="Valid certificates ending within DAYS, soonest first: the renewal worklist.",
)
@click.option("--kind", type=click.Choice([k.value for k in AccessType]))
@click.option("--request", "request_id", type=int)
@click.option("--after-id", type=int)
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@reader_option
@json_option
def cert_list(
    status: str | None,
    days: int | None,
    kind: str | None,
    request_id: int | None,
    after_id: int | None,
    limit: int,
    as_user: str | None,
    as_json: bool,
) -> None:
    """List certificates."""
    rows = desk(as_user).call(
        "cert.list",
        status=status,
        expiring_within=days,
        kind=kind,
        request_id=request_id,
        after_id=after_id,
        limit=limit,
    )
    if as_json:
        print_json(rows)
        return
    for c in rows:
        click.echo(
            f"{c['serial']:<40} {c['status']:<8} {c['kind']:<6} "
            f"{local_time(c['not_valid_after'])}  {c['credential_number']}  {c['unit_name']}"
        )


@cert.command("show")
@click.argument("serial")
@reader_option
@json_option
def cert_show(serial: str, as_user: str | None, as_json: bool) -> None:
    """Show one certificate (serial in hex, colons and case as you like)."""
    data = desk(as_user).call("cert.show", serial=serial)
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        if key == "token":
            continue
        click.echo(f"{key}: {value if value not in (None, '') else '-'}")
    placement = data["token"]
    if placement is None:
        click.echo("token: -")
    else:
        written = "" if placement["delivered"] else ", not yet written"
        click.echo(
            f"token: {placement['token_label'] or placement['label']} (serial {placement['token_serial']}, "
            f"model {placement['model'] or '-'}, key {placement['key_type']}, key id {placement['key_id']}"
            f"{written})"
        )


@cert.command("export")
@click.argument("serial")
@click.option("--format", "fmt", type=click.Choice(["pem", "der", "chain"]), default="pem", show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="File to write (default stdout)."
)
@reader_option
def cert_export(serial: str, fmt: str, out: Path | None, as_user: str | None) -> None:
    """Export a certificate as PEM, DER, or PEM with its issuing CA and root (chain)."""
    import base64

    data = base64.b64decode(desk(as_user).call("cert.export", serial=serial, format=fmt)["data"])
    if out is not None:
        from pki.files import write_atomic

        write_atomic(out, data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


@cli.command()
@click.argument("serial", required=False)
@click.option(
    "--from-file",
    "from_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Revoke every serial listed (one per line, # comments), all or nothing.",
)
@click.option(
    "--reason",
    metavar="REASON",
    help=f"RFC 5280: {', '.join(r.value for r in REVOKE_REASONS)} (key-compromise etc. also accepted); "
    "required unless the certificate has an approved revoke deal, whose reason it then must match.",
)
@click.option("--comment", default="")
@as_option
@json_option
def revoke(
    serial: str | None, from_file: Path | None, reason: str | None, comment: str, as_user: str, as_json: bool
) -> None:
    """Revoke one certificate, or a list of them from a file (carrying out approved revoke deals)."""
    if (serial is None) == (from_file is None):
        raise click.UsageError("give either SERIAL or --from-file FILE")
    serials = (
        [serial]
        if serial is not None
        else [
            line.split("#", 1)[0].strip()
            for line in from_file.read_text(encoding="utf-8-sig").splitlines()  # type: ignore[union-attr]
            if line.split("#", 1)[0].strip()
        ]
    )
    done = desk(as_user).call("revoke", serials=serials, reason=reason, comment=comment)
    if as_json:
        print_json(done)
        return
    for c in done:
        click.echo(f"certificate {c['serial']} revoked ({c['revocation_reason'] or '-'})")


@cli.command()
@click.argument("serial")
@click.option("--comment", default="")
@as_option
@json_option
def hold(serial: str, comment: str, as_user: str, as_json: bool) -> None:
    """Hold a certificate (冻结): certificateHold in the next CRL and the very next OCSP answer, until
    `pkictl release`, a revocation, or ca.toml [hold] max_days."""
    _suspension("hold", "held", serial, comment, as_user, as_json)


@cli.command()
@click.argument("serial")
@click.option("--comment", default="")
@as_option
@json_option
def release(serial: str, comment: str, as_user: str, as_json: bool) -> None:
    """Release a held certificate (解冻): valid again, and gone from the next CRL."""
    _suspension("release", "released", serial, comment, as_user, as_json)


def _suspension(op: str, done_word: str, serial: str, comment: str, as_user: str, as_json: bool) -> None:
    done = desk(as_user).call(op, serial=serial, comment=comment)
    if as_json:
        print_json(done)
        return
    click.echo(f"certificate {done['serial']} {done_word}")


@cli.group()
def crl() -> None:
    """Certificate revocation lists."""


@crl.command("publish")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write CA.crl and CA.crl.pem for every CA (root included) and crls.pem (all of them) here.",
)
@click.option("--as", "as_user", metavar="USER", help="Operator (omit for a scheduled run).")
@json_option
def crl_publish(out: Path | None, as_user: str | None, as_json: bool) -> None:
    """Publish a new CRL for every CA, the root's ARL included (served by `pkictl serve` at the CRL
    distribution points)."""
    from pki.services.crl_publisher import write_files

    if out is not None:
        out.mkdir(parents=True, exist_ok=True)  # before publishing: a bad --out must not use up CRL numbers
    svc = service()
    published = svc.crl.publish(actor=login(svc, as_user) if as_user else None)
    if out is not None:
        write_files(out, published)
    if as_json:
        print_json(
            [
                {
                    "ca": p.ca,
                    "number": p.record.number,
                    "entries": p.record.entries,
                    "this_update": p.record.this_update.isoformat(),
                    "next_update": p.record.next_update.isoformat(),
                }
                for p in published
            ]
        )
        return
    for p in published:
        click.echo(
            f"CRL {p.ca} #{p.record.number}: {p.record.entries} entries, next update "
            f"{local_time(p.record.next_update)}"
        )


@cli.command()
@click.argument("serial")
@click.option("--months", type=int, help="Validity of the new certificate (default: the request's).")
@click.option("--rekey", is_flag=True, help="Certify a new key (needs --csr) instead of the old one.")
@click.option("--csr", "csr_path", type=CSR_FILE)
@click.option(
    "--token-label", metavar="LABEL", help="The USB key holding the certificate's key pair, by its label."
)
@click.option(
    "--token-serial", metavar="SERIAL", help="The USB key holding the certificate's key pair, by its serial."
)
@click.option(
    "--module",
    "module_path",
    metavar="PATH",
    help="PKCS#11 module of the USB key (default: from tokens.toml by the model the key was recorded as).",
)
@click.option("--resume", is_flag=True, help="Finish writing a renewal issued but not yet on its USB key.")
@as_option
@json_option
def renew(
    serial: str,
    months: int | None,
    rekey: bool,
    csr_path: Path | None,
    token_label: str | None,
    token_serial: str | None,
    module_path: str | None,
    resume: bool,
    as_user: str,
    as_json: bool,
) -> None:
    """Renew a certificate inside its renewal window: same unit, same kind, linked to the old one. A
    certificate on a USB key is renewed onto that key, beside the same key pair (user PIN from PKI_TOKEN_PIN
    or a prompt): the new certificate object replaces the old one.

    \b
      pkictl renew SERIAL --as ops [--months N]
      pkictl renew SERIAL --as dist --token-serial 1A2B [--module PATH]
      pkictl renew SERIAL --as dist --token-serial 1A2B --resume
      pkictl renew SERIAL --as ops --rekey --csr unit.csr
    """
    from pki.cli import token_commands as tc

    if rekey != (csr_path is not None):
        raise click.UsageError("--rekey needs --csr FILE, and --csr is only for --rekey")
    on_key = token_label is not None or token_serial is not None
    if token_label is not None and token_serial is not None:
        raise click.UsageError("give --token-label or --token-serial, not both")
    if (module_path or resume) and not on_key:
        raise click.UsageError("--module and --resume go with --token-label or --token-serial")
    if on_key and rekey:
        raise click.UsageError(
            "--rekey certifies a key made elsewhere: a new key pair on the USB key is a rekey deal, issued "
            "with 'pkictl issue ID --token-label L'"
        )
    if resume and months is not None:
        raise click.UsageError("--months was chosen when the renewal was issued: --resume takes none")
    if on_key:
        tc.renew_onto_token(serial, as_user, module_path, token_label, token_serial, months, resume, as_json)
        return
    new = desk(as_user).call(
        "renew", serial=serial, months=months, csr=csr_path.read_bytes() if csr_path else None
    )
    _echo_cert(new, as_json, "issued as renewal")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option(
    "--secure-cookies/--plain-http-cookies",
    default=None,
    help="Mark the session cookie Secure (HTTPS only). Default: on, except when serving on a loopback address.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve TLS: certificate chain (PEM).",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve TLS: its private key (PEM).",
)
@click.option(
    "--trusted-proxy",
    metavar="ADDR",
    help="The TLS-terminating reverse proxy whose X-Forwarded-For/-Proto to believe.",
)
def serve(
    host: str,
    port: int,
    threads: int,
    secure_cookies: bool | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    trusted_proxy: str | None,
) -> None:
    """Run the web app: the clerks' UI (受理点) behind a log-in, the desks' API (/api/v1, bearer tokens), and
    the public CRL, CA certificate and OCSP endpoints without one.

    Plain HTTP on waitress (on a loopback address, or behind a reverse proxy that terminates TLS: give its
    address as --trusted-proxy), or TLS itself with --tls-cert and --tls-key (cheroot)."""
    import ipaddress

    from pki.config import Settings
    from web import create_app
    from web.serving import serve_plain, serve_tls

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    svc = service()
    svc.audit.unlock()  # every desk write needs the audit key: prompt (or refuse) now, not mid-request
    svc.ocsp.warm()  # unlock the OCSP signer keys now, not on the first request
    if secure_cookies is None:
        try:
            secure_cookies = tls_cert is not None or not ipaddress.ip_address(host).is_loopback
        except ValueError:
            secure_cookies = host != "localhost"
    # The session key is made once in the home (owner-only) and reused, so restarts keep people signed in.
    app = create_app(
        svc,
        {
            "PKI_HOME": str(Settings.from_env().home),
            "SESSION_COOKIE_SECURE": secure_cookies,
            "PKI_BEHIND_PROXY": bool(trusted_proxy),
        },
    )
    if tls_cert is not None and tls_key is not None:
        click.echo(f"serving on https://{host}:{port}/ (Ctrl-C to stop)")
        serve_tls(app, host=host, port=port, threads=threads, cert=tls_cert, key=tls_key)
        return
    click.echo(f"serving on http://{host}:{port}/ (Ctrl-C to stop)")
    serve_plain(app, host=host, port=port, threads=threads, trusted_proxy=trusted_proxy)


@cli.group("ocsp")
def ocsp_group() -> None:
    """The OCSP responder on its own."""


@ocsp_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Processes; more than one needs the key secret in PKI_CA_PASSPHRASE (or PKI_HSM_PIN).",
)
def ocsp_serve(host: str, port: int, workers: int) -> None:
    """Serve only OCSP (POST and GET /ocsp[/CA]) on uvicorn: the high-traffic endpoint without a framework.

    `pkictl serve` answers OCSP too; this is for a responder host of its own. Point ca.toml's ocsp_base here.
    """
    import uvicorn

    from web.ocsp_asgi import ocsp_app

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        "access_log": False,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
    }
    click.echo(f"OCSP responder on http://{host}:{port}/ocsp ({workers} process(es); Ctrl-C to stop)")
    if workers == 1:
        svc = service()
        svc.ocsp.warm()  # unlock the signer keys now (a prompt happens here, not on the first request)
        uvicorn.run(ocsp_app(svc), **options)
        return
    if not (os.environ.get("PKI_CA_PASSPHRASE") or os.environ.get("PKI_HSM_PIN")):
        raise click.UsageError(
            "--workers above 1 needs PKI_CA_PASSPHRASE (or PKI_HSM_PIN) in the environment"
        )
    uvicorn.run("web.ocsp_asgi:from_env", factory=True, workers=workers, **options)
