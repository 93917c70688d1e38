"""`pkictl login|logout|whoami`: a desk's session with the center's server."""

from __future__ import annotations

import os

import click

from pki.cli.app import cli, desk, json_option, local_time, password, print_json, remote_session


@cli.command()
@click.option(
    "--server", envvar="PKI_SERVER", required=True, metavar="URL", help="The center's server (PKI_SERVER)."
)
@click.option("--as", "as_user", required=True, metavar="USER", help="Operator user name.")
@json_option
def login(server: str, as_user: str, as_json: bool) -> None:
    """Log in to the center's server: from then on this desk's commands run there.

    The password comes from PKI_PASSWORD or a hidden prompt. The session token is kept owner-only in
    PKI_SESSION_FILE (default ~/.config/pkictl/session.json); PKI_SERVER_CA names a CA bundle for the
    server's TLS certificate. Only https:// URLs, or http:// to this host.
    """
    from urllib.parse import urlsplit

    from pki.desk import credentials
    from pki.desk.remote import open_session

    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.UsageError(f"--server must be an http(s) URL, not {server!r}")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise click.UsageError("a password and a session token go only over https:// (or to this host)")
    opened = open_session(
        server, as_user, password(f"Password for {as_user}"), verify=os.environ.get("PKI_SERVER_CA") or True
    )
    saved = credentials.SavedSession(
        server.rstrip("/"), opened["username"], opened["token"], opened["expires_at"]
    )
    path = credentials.save(saved)
    if as_json:
        print_json(
            {k: v for k, v in opened.items() if k != "token"} | {"server": saved.server, "file": str(path)}
        )
        return
    click.echo(
        f"logged in to {saved.server} as {saved.username} ({', '.join(opened['roles'])}) "
        f"until {local_time(opened['expires_at'])}"
    )


@cli.command()
def logout() -> None:
    """End this desk's session on the server and forget it here."""
    from pki.desk import credentials
    from pki.errors import PkiError

    remote = remote_session()
    if remote is None:
        click.echo("not logged in to a server")
        return
    try:
        desk().call("session.close")
    except PkiError as e:  # expired or unreachable: forgetting it here is what matters
        click.echo(f"pkictl: warning: {e.message}", err=True)
    credentials.forget()
    click.echo(f"logged out of {remote[0]}")


@cli.command()
@json_option
def whoami(as_json: bool) -> None:
    """The operator and roles of this desk's session on the server."""
    remote = remote_session()
    if remote is None:
        raise click.UsageError("not logged in to a server (pkictl login --server URL --as USER)")
    me = desk().call("session.show")
    if as_json:
        print_json(me | {"server": remote[0]})
        return
    click.echo(f"{me['username']} ({', '.join(me['roles'])}) at {remote[0]}")
