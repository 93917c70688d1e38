"""`pkictl init` and `pkictl demo`: creating a home."""

from __future__ import annotations

import click

from pki.cli.app import audit_passphrase, ca_passphrase, center_only, cli

PUBLIC_URL_HELP = (
    "Base URL where relying parties reach `pkictl serve` (CRLs, OCSP, CA certificates), e.g. "
    "http://pki.example.gov.cn; stored in the home, used by certificates issued from now on."
)


@cli.command()
@click.option("--public-url", metavar="URL", help=PUBLIC_URL_HELP)
def init(public_url: str | None) -> None:
    """Create the home, its database and the CA hierarchy, or migrate an existing home (safe to repeat).

    The CA keys are encrypted with PKI_CA_PASSPHRASE (or a prompted passphrase) and kept in the home's ca/;
    the audit key with PKI_AUDIT_PASSPHRASE in its audit/ (made on the first init of this version: records
    from then on carry its MAC, older ones are sealed by a checkpoint). Issuing CA certificates made before
    they carried certificate policies are re-certified under their keys.
    """
    from pki.bootstrap import initialize
    from pki.config import Settings

    center_only()
    settings = Settings.from_env()
    svc = initialize(settings, ca_passphrase, audit_passphrase=audit_passphrase, public_url=public_url)
    click.get_current_context().call_on_close(svc.ctx.engine.dispose)
    click.echo(f"home: {settings.home}")
    click.echo(f"database: {svc.ctx.engine.url.render_as_string(hide_password=True)}")
    click.echo(f"public URL: {svc.settings.public_url() or '- (ca.toml [urls])'}")
    seal = svc.ctx.seal()
    click.echo(f"audit key: {seal.key_path}; checkpoints (ship them elsewhere): {seal.checkpoints.path}")
    for slug in svc.authority.recertify_issuing(actor="init"):
        click.echo(f"CA {slug} re-certified with its certificate policies and the root CRL (same key)")
    for ca in svc.authority.all():
        click.echo(f"CA {ca.slug:<12} {ca.subject}  (until {ca.not_valid_after.date().isoformat()})")


@cli.command()
@click.option(
    "--public-url",
    metavar="URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Where the demo will be served (`pkictl serve --port`): its certificates point there.",
)
def demo(public_url: str) -> None:
    """Create a DEMO home: one user per role (passwords printed once) and sample applications.

    Never use a demo home for real certificates; `pkictl init` alone creates no users and no data.
    """
    from pki import demo as demo_data
    from pki.config import Settings

    center_only()
    settings = Settings.from_env()
    service = demo_data.open_demo_home(settings, public_url)
    click.get_current_context().call_on_close(service.ctx.engine.dispose)
    users = demo_data.seed(service, settings.home)
    click.echo(f"DEMO home at {settings.home} (marked by {demo_data.MARKER}); not for real certificates.")
    click.echo("Demo users (passwords are shown only now):")
    for u in users:
        click.echo(f"  {u.username:<18} {u.role.value:<12} {u.password}")
    click.echo(f"{len(demo_data.DEMO_UNITS)} sample applications entered; see `pkictl request list`.")
    from pki.cli.token_commands import demo_token
    from pki.enums import RequestState
    from pki.services import RequestFilter

    approved = [r.id for r in service.requests.find(RequestFilter(state=RequestState.APPROVED)) if r.id]
    demo_token(settings.home, approved, "demo-distributor")
