"""`pkictl init` and `pkictl demo`: creating a home."""

from __future__ import annotations

import click

from pki.cli.app import audit_passphrase, ca_passphrase, cli


@cli.command()
def init() -> None:
    """Create the home, its database and the CA hierarchy, or migrate an existing home (safe to repeat).

    The CA keys are encrypted with PKI_CA_PASSPHRASE (or a prompted passphrase) and kept in the home's ca/;
    the audit key with PKI_AUDIT_PASSPHRASE in its audit/ (made on the first init of this version: records
    from then on carry its MAC, older ones are sealed by a checkpoint).
    """
    from pki.bootstrap import initialize
    from pki.config import Settings

    settings = Settings.from_env()
    svc = initialize(settings, ca_passphrase, audit_passphrase=audit_passphrase)
    click.get_current_context().call_on_close(svc.ctx.engine.dispose)
    click.echo(f"home: {settings.home}")
    click.echo(f"database: {svc.ctx.engine.url.render_as_string(hide_password=True)}")
    seal = svc.ctx.seal()
    click.echo(f"audit key: {seal.key_path}; checkpoints (ship them elsewhere): {seal.checkpoints.path}")
    for ca in svc.authority.all():
        click.echo(f"CA {ca.slug:<12} {ca.subject}  (until {ca.not_valid_after.date().isoformat()})")


@cli.command()
def demo() -> None:
    """Create a DEMO home: one user per role (passwords printed once) and sample applications.

    Never use a demo home for real certificates; `pkictl init` alone creates no users and no data.
    """
    from pki import demo as demo_data
    from pki.config import Settings

    settings = Settings.from_env()
    service = demo_data.open_demo_home(settings)
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
