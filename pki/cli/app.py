"""`pkictl`: the command group, shared plumbing and the one place that maps errors to exit codes.

Commands parse arguments, call one service method and print. Errors are mapped to messages and exit codes in
one place, :func:`main`: 0 success, 1 refused or invalid operation (one line on stderr), 2 usage error.
Heavy modules are imported inside commands so that ``pkictl --help`` starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from pki.errors import ImportRowsError, PkiError, database_unavailable

if TYPE_CHECKING:
    from pki.desk.local import LocalDesk
    from pki.desk.remote import RemoteDesk
    from pki.services import Actor, Service

F = TypeVar("F", bound=Callable[..., Any])


# -- plumbing ---------------------------------------------------------------------------------------------


def remote_session() -> tuple[str, str, str] | None:
    """(server, username, token) when this desk works through a server: PKI_SERVER is set, or a session
    saved by `pkictl login` exists (and PKI_SERVER does not say ``local``). None: the local home."""
    from pki.desk import credentials

    server = os.environ.get("PKI_SERVER", "").strip()
    if server.lower() == "local":
        return None
    saved = credentials.load()
    if not server:
        return None if saved is None else (saved.server, saved.username, saved.token)
    if saved is None or saved.server.rstrip("/") != server.rstrip("/"):
        raise click.UsageError(f"not logged in to {server}: run 'pkictl login --server {server} --as USER'")
    return saved.server, saved.username, saved.token


def desk(as_user: str | None = None) -> LocalDesk | RemoteDesk:
    """Where the command's operations go: the server this desk is logged in to, or the local home."""
    remote = remote_session()
    if remote is None:
        from pki.desk.local import LocalDesk

        return LocalDesk(service(), as_user, password)
    from pki.desk.remote import RemoteDesk

    server, username, token = remote
    if as_user is not None and as_user != username:
        raise click.UsageError(
            f"logged in to {server} as {username!r}, not {as_user!r}: run 'pkictl login --as {as_user}'"
        )
    client = RemoteDesk(server, token, username, verify=os.environ.get("PKI_SERVER_CA") or True)
    click.get_current_context().call_on_close(client.close)
    return client


def center_only() -> None:
    """Refuse a command that needs the center's home (its database, its CA keys) on a desk logged in to a
    server: say where it runs instead."""
    remote = remote_session()
    if remote is not None:
        command = click.get_current_context().command_path
        raise click.UsageError(
            f"'{command}' runs on the center's host, not through {remote[0]}: "
            "run it there (or 'pkictl logout', or PKI_SERVER=local, to use a local home)"
        )


def service() -> Service:
    """The service over the configured home; CA keys open with PKI_CA_PASSPHRASE or a prompt, and the audit
    key (which every write needs) with PKI_AUDIT_PASSPHRASE or a prompt, each on first use.

    Only on the center's host: a desk logged in to a server has no home (its commands use :func:`desk`).
    """
    from pki.bootstrap import open_service
    from pki.config import Settings

    center_only()

    svc = open_service(Settings.from_env(), passphrase=ca_passphrase, audit_passphrase=audit_passphrase)
    # Close the pool when the command ends: leaving it to the garbage collector drops PostgreSQL connections
    # without a goodbye and leaks them when the CLI runs in-process (tests, scripts).
    click.get_current_context().call_on_close(svc.ctx.engine.dispose)
    return svc


def password(prompt: str) -> str:
    secret = os.environ.get("PKI_PASSWORD")
    if secret is not None:
        return secret
    if not sys.stdin.isatty():
        raise click.UsageError("no password: set PKI_PASSWORD or run in a terminal to be prompted")
    return str(click.prompt(prompt, hide_input=True))


def ca_passphrase() -> str:
    secret = os.environ.get("PKI_CA_PASSPHRASE")
    if secret is not None:
        return secret
    if not sys.stdin.isatty():
        raise click.UsageError(
            "no CA key passphrase: set PKI_CA_PASSPHRASE or run in a terminal to be prompted"
        )
    return str(click.prompt("CA key passphrase", hide_input=True))


def audit_passphrase() -> str:
    secret = os.environ.get("PKI_AUDIT_PASSPHRASE")
    if secret is not None:
        return secret
    if not sys.stdin.isatty():
        raise click.UsageError(
            "no audit key passphrase: set PKI_AUDIT_PASSPHRASE or run in a terminal to be prompted"
        )
    return str(click.prompt("Audit key passphrase", hide_input=True))


def login(svc: Service, username: str) -> Actor:
    return svc.users.authenticate(username, password(f"Password for {username}"))


def as_option(f: F) -> F:
    return click.option("--as", "as_user", required=True, metavar="USER", help="Operator user name.")(f)


def reader_option(f: F) -> F:
    """``--as USER`` on a read: see what USER sees (their acceptance points' records), as the API shows them
    to a desk logged in as USER. Without it the center's host reads everything."""
    return click.option(
        "--as", "as_user", metavar="USER", help="Read as USER: only their acceptance points' records."
    )(f)


def point_option(f: F) -> F:
    return click.option(
        "--point",
        metavar="POINT",
        help="The acceptance point (受理点) it is for; default your own (a center user's: 默认受理点).",
    )(f)


def access_mode_option(f: F) -> F:
    from pki.enums import AccessMode

    return click.option(
        "--access-mode",
        type=click.Choice([m.value for m in AccessMode]),
        default="batch",
        show_default=True,
        help="分批接入 (batch) or 全部接入 (all).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def read_json_file(path: Path) -> dict[str, Any]:
    from pki.errors import FieldError, ValidationError
    from pki.json_input import read_object_file

    try:
        return read_object_file(path)  # size and depth limits: pki.json_input
    except OSError as e:
        raise ValidationError(
            [FieldError("file", f"{path}: not readable ({e.strerror or e})", "文件无法读取")]
        ) from e


def local_time(value: Any) -> str:
    """An instant (a datetime, or ISO 8601 text from a document) in China Standard Time, to the minute."""
    from datetime import datetime

    from pki.clock import CHINA_TZ

    if isinstance(value, str) and value:
        value = datetime.fromisoformat(value)
    return value.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M") if value else "-"


# -- commands ---------------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="pkictl")
def cli() -> None:
    """Certificate lifecycle manager for the e-government extranet certificate center.

    The home is PKI_HOME (default ./pki-home); the database is SQLite inside it unless PKI_DATABASE_URL is set.
    Operators identify with --as USER; the password comes from PKI_PASSWORD or a prompt.
    """


# -- error mapping: the one place -------------------------------------------------------------------------


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"pkictl: error: {message}", err=True)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    try:
        # Without standalone mode click returns, rather than raises, the code of an Exit (--help, --version).
        code = cli.main(args=argv, prog_name="pkictl", standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool) and code != 0:
            raise SystemExit(code)
    except click.ClickException as e:
        e.show()
        raise SystemExit(2 if isinstance(e, click.UsageError) else e.exit_code) from None
    except click.exceptions.Abort:
        fail("aborted", 130)
    except ImportRowsError as e:
        for row in e.rows:  # the per-row report on stdout; the one-line refusal on stderr
            click.echo(str(row))
        fail(e.message)
    except PkiError as e:
        # Notes say what to do next (resume, clean a key): on the same line, which stays the only one.
        fail("; ".join([e.message, *getattr(e, "__notes__", ())]))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except OSError as e:  # a file we were told to read or write
        fail(f"{e.filename or 'file'}: {e.strerror or e}")
    except Exception as e:
        reason = database_unavailable(e)
        if reason is None:
            raise  # a bug: keep the traceback
        fail(f"database unavailable: {reason}")


# Register the command modules (after `cli` exists; they import it from here).
from pki.cli import (  # noqa: E402
    audit_commands,
    ca_commands,
    home_commands,
    point_commands,
    request_commands,
    session_commands,
    user_commands,
)

# isort: split
from pki.cli import token_commands  # noqa: E402

# isort: split
from pki.cli import stock_commands  # noqa: E402  (adds to the `token` group)

__all__ = [
    "audit_commands",
    "ca_commands",
    "cli",
    "cutover_commands",
    "home_commands",
    "main",
    "notify_commands",
    "point_commands",
    "request_commands",
    "session_commands",
    "stock_commands",
    "token_admin_commands",
    "token_commands",
    "user_commands",
]

# Connected parties, evidence, the cutover and access checks (issue 6); expiry reminders by mail (issue 16).
from pki.cli import cutover_commands, notify_commands, token_admin_commands  # noqa: E402
