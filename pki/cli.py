"""`pkictl`: the command-line adapter. The only module that imports click.

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

from pki.enums import AccessMode, AccessType, RequestState, Role
from pki.errors import ImportRowsError, PkiError

if TYPE_CHECKING:
    from pki.services import Actor, Service

F = TypeVar("F", bound=Callable[..., Any])

WORKFLOW_STATES = tuple(s.value for s in RequestState)


# -- plumbing ---------------------------------------------------------------------------------------------


def _service() -> Service:
    from pki.bootstrap import open_service
    from pki.config import Settings

    svc = open_service(Settings.from_env())
    # Close the pool when the command ends: leaving it to the garbage collector drops PostgreSQL connections
    # without a goodbye and leaks them when the CLI runs in-process (tests, scripts).
    click.get_current_context().call_on_close(svc.ctx.engine.dispose)
    return svc


def _password(prompt: str) -> str:
    secret = os.environ.get("PKI_PASSWORD")
    if secret is not None:
        return secret
    if not sys.stdin.isatty():
        raise click.UsageError("no password: set PKI_PASSWORD or run in a terminal to be prompted")
    return str(click.prompt(prompt, hide_input=True))


def _login(service: Service, username: str) -> Actor:
    return service.users.authenticate(username, _password(f"Password for {username}"))


def as_option(f: F) -> F:
    return click.option("--as", "as_user", required=True, metavar="USER", help="Operator user name.")(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _read_json_file(path: Path) -> dict[str, Any]:
    from pki.errors import FieldError, ValidationError

    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValidationError(
            [FieldError("file", f"{path}: not readable JSON ({e})", "文件不是有效的JSON")]
        ) from e
    if not isinstance(data, dict):
        raise ValidationError([FieldError("file", f"{path}: expected a JSON object", "文件应为JSON对象")])
    return data


def _local(value: Any) -> str:
    from pki.clock import CHINA_TZ

    return value.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M") if value else "-"


# -- commands ---------------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="pkictl")
def cli() -> None:
    """Certificate lifecycle manager for the e-government extranet certificate center.

    The home is PKI_HOME (default ./pki-home); the database is SQLite inside it unless PKI_DATABASE_URL is set.
    Operators identify with --as USER; the password comes from PKI_PASSWORD or a prompt.
    """


@cli.command()
def init() -> None:
    """Create the home and its database, or migrate an existing one (safe to repeat)."""
    from pki.bootstrap import init_home
    from pki.config import Settings

    settings = Settings.from_env()
    engine = init_home(settings)
    engine.dispose()
    click.echo(f"home: {settings.home}")
    click.echo(f"database: {engine.url.render_as_string(hide_password=True)}")


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


# user -------------------------------------------------------------------------------------------------


@cli.group()
def user() -> None:
    """Operators and their roles."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    metavar="ROLE",
    type=click.Choice([r.value for r in Role]),
    help="Role; repeat for several.",
)
@click.option("--display-name", default="", help="Name shown in the UI.")
@click.option(
    "--as", "as_user", metavar="ADMIN", help="Admin adding the user (not needed for the first user)."
)
def user_add(name: str, roles: tuple[str, ...], display_name: str, as_user: str | None) -> None:
    """Add user NAME; the password is read from standard input (first line)."""
    svc = _service()
    actor = _login(svc, as_user) if as_user else None
    if sys.stdin.isatty():
        password = str(click.prompt("New password", hide_input=True, confirmation_prompt=True))
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    created = svc.users.add(name, password, roles, actor=actor, display_name=display_name)
    click.echo(f"user {created.username} added with roles {created.roles}")


@user.command("list")
@json_option
def user_list(as_json: bool) -> None:
    """List users and their roles."""
    from pki.serialize import user_to_dict

    users = [user_to_dict(u) for u in _service().users.list()]
    if as_json:
        _print_json(users)
        return
    for u in users:
        click.echo(
            f"{u['username']:<20} {','.join(u['roles']):<40} {'active' if u['active'] else 'inactive'}"
        )


# request ----------------------------------------------------------------------------------------------


@cli.group()
def request() -> None:
    """Certificate applications (附件7) through acceptance and review."""


def _echo_request(req: Any, as_json: bool, verb: str) -> None:
    from pki.serialize import request_to_dict

    if as_json:
        _print_json(request_to_dict(req))
    else:
        click.echo(f"request {req.id} {verb}: {req.state.value}")


@request.command("new")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Application as JSON (keys documented in docs/application-json.md).",
)
@as_option
@json_option
def request_new(path: Path, as_user: str, as_json: bool) -> None:
    """Enter one application."""
    raw = _read_json_file(path)
    svc = _service()
    _echo_request(svc.requests.create(raw, actor=_login(svc, as_user)), as_json, "entered")


@request.command("edit")
@click.argument("request_id", type=int)
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@as_option
@json_option
def request_edit(request_id: int, path: Path, as_user: str, as_json: bool) -> None:
    """Replace an application's fields (voids an earlier acceptance)."""
    raw = _read_json_file(path)
    svc = _service()
    _echo_request(svc.requests.edit(request_id, raw, actor=_login(svc, as_user)), as_json, "edited")


@request.command("import")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--defaults",
    "defaults_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="JSON with the fields every unit of the batch shares.",
)
@click.option("--label", required=True, help="Batch name, e.g. '西藏 第一批'.")
@click.option(
    "--access-mode",
    type=click.Choice([m.value for m in AccessMode]),
    default="batch",
    show_default=True,
    help="分批接入 (batch) or 全部接入 (all).",
)
@click.option("--skip-invalid", is_flag=True, help="Import the good rows and report the bad ones.")
@as_option
@json_option
def request_import(
    csv_path: Path,
    defaults_path: Path,
    label: str,
    access_mode: str,
    skip_invalid: bool,
    as_user: str,
    as_json: bool,
) -> None:
    """Import a 附件4–6 unit list (CSV): one request per unit; by default nothing if any row is bad."""
    defaults = _read_json_file(defaults_path)
    svc = _service()
    actor = _login(svc, as_user)
    try:
        result = svc.bulk.import_units(
            csv_path.read_bytes(),
            actor=actor,
            defaults=defaults,
            label=label,
            access_mode=AccessMode(access_mode),
            source_name=csv_path.name,
            skip_invalid=skip_invalid,
        )
    except ImportRowsError as e:
        if not as_json:
            raise  # main() prints the rows and the one-line refusal
        _print_json({"batch_id": None, "total": e.total, "imported": [], "rejected": _rows_json(e.rows)})
        raise PkiError(e.message) from e
    rejected = _rows_json(result.rejected)
    if as_json:
        _print_json(
            {
                "batch_id": result.batch_id,
                "total": result.total,
                "imported": result.request_ids,
                "rejected": rejected,
            }
        )
        return
    click.echo(f"batch {result.batch_id}: imported {len(result.request_ids)} of {result.total} rows")
    for r in result.rejected:
        click.echo(f"  skipped {r}")


def _rows_json(rows: Any) -> list[dict[str, Any]]:
    return [
        {"line": r.row, "errors": [{"field": e.field, "message": e.message} for e in r.errors]} for r in rows
    ]


@request.command("list")
@click.option("--status", type=click.Choice(WORKFLOW_STATES))
@click.option("--province")
@click.option("--access-type", type=click.Choice([t.value for t in AccessType]))
@click.option("--search", help="Unit name fragment or exact credit code.")
@click.option("--after-id", type=int, help="Page on: only requests with a larger id.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@json_option
def request_list(
    status: str | None,
    province: str | None,
    access_type: str | None,
    search: str | None,
    after_id: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """List requests, oldest first."""
    from pki.serialize import request_to_dict
    from pki.services import RequestFilter

    flt = RequestFilter(
        state=RequestState(status) if status else None,
        province=province,
        access_type=AccessType(access_type) if access_type else None,
        search=search,
        after_id=after_id,
        limit=limit,
    )
    rows = _service().requests.find(flt)
    if as_json:
        _print_json([request_to_dict(r) for r in rows])
        return
    for r in rows:
        click.echo(
            f"{r.id:>7}  {r.state.value:<13} {r.access_type.value:<6} {r.province:<6} "
            f"{r.credential_number:<18}  {r.unit_name}"
        )


@request.command("show")
@click.argument("request_id", type=int)
@json_option
def request_show(request_id: int, as_json: bool) -> None:
    """Show one request and its history."""
    from pki.application import FIELD_LABELS
    from pki.serialize import audit_to_dict, request_to_dict

    svc = _service()
    data = request_to_dict(svc.requests.get(request_id))
    history = [audit_to_dict(a) for a in svc.requests.history(request_id)]
    if as_json:
        _print_json({**data, "history": history})
        return
    req = svc.requests.get(request_id)
    for key, value in data.items():
        raw = getattr(req, key)
        shown = _local(raw) if hasattr(raw, "astimezone") and hasattr(raw, "hour") else value
        click.echo(f"{FIELD_LABELS.get(key, key)} ({key}): {shown if shown not in (None, '') else '-'}")
    click.echo("history (China Standard Time):")
    for a in svc.requests.history(request_id):
        click.echo(f"  #{a.seq} {_local(a.at)} {a.actor} {a.action} {a.details}")


@request.command("accept")
@click.argument("request_id", type=int)
@click.option(
    "--opinion", type=click.Choice(["agree", "disagree"]), required=True, help="受理意见 同意/不同意."
)
@click.option("--usbkey", default="", help="USBKEY 品牌及型号 (required to agree).")
@click.option("--comment", default="", help="Remark; required to disagree.")
@as_option
@json_option
def request_accept(
    request_id: int, opinion: str, usbkey: str, comment: str, as_user: str, as_json: bool
) -> None:
    """Record the acceptor's opinion (受理意见)."""
    svc = _service()
    req = svc.requests.accept(
        request_id, actor=_login(svc, as_user), agree=opinion == "agree", usbkey_model=usbkey, comment=comment
    )
    _echo_request(req, as_json, "accepted" if opinion == "agree" else "not accepted")


@request.command("countersign")
@click.argument("request_id", type=int)
@as_option
@json_option
def request_countersign(request_id: int, as_user: str, as_json: bool) -> None:
    """Countersign an accepted request as head of the acceptance point (负责人)."""
    svc = _service()
    _echo_request(svc.requests.countersign(request_id, actor=_login(svc, as_user)), as_json, "countersigned")


@request.command("review")
@click.argument("request_id", type=int)
@click.option("--approve", is_flag=True)
@click.option("--return", "return_reason", metavar="REASON", help="Return for correction.")
@click.option("--reject", "reject_reason", metavar="REASON")
@as_option
@json_option
def request_review(
    request_id: int,
    approve: bool,
    return_reason: str | None,
    reject_reason: str | None,
    as_user: str,
    as_json: bool,
) -> None:
    """Approve, return or reject a countersigned request (exactly one of the three)."""
    from pki.enums import Action

    chosen = [(Action.APPROVE, "")] if approve else []
    chosen += [(Action.RETURN, return_reason)] if return_reason is not None else []
    chosen += [(Action.REJECT, reject_reason)] if reject_reason is not None else []
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --approve, --return REASON, --reject REASON")
    decision, reason = chosen[0]
    svc = _service()
    req = svc.requests.review(request_id, actor=_login(svc, as_user), decision=decision, reason=reason or "")
    _echo_request(req, as_json, "reviewed")


@request.command("cancel")
@click.argument("request_id", type=int)
@click.option("--reason", required=True)
@as_option
@json_option
def request_cancel(request_id: int, reason: str, as_user: str, as_json: bool) -> None:
    """Withdraw a request that has not been issued."""
    svc = _service()
    _echo_request(
        svc.requests.cancel(request_id, actor=_login(svc, as_user), reason=reason), as_json, "cancelled"
    )


# audit ------------------------------------------------------------------------------------------------


@cli.group()
def audit() -> None:
    """The hash-chained audit trail."""


@audit.command("verify")
@click.option(
    "--expect",
    "anchor",
    metavar="SEQ:HASH",
    help="An anchor noted earlier (from a previous verify): record SEQ must still have HASH.",
)
@json_option
def audit_verify(anchor: str | None, as_json: bool) -> None:
    """Recompute the chain; exit 1 if any record was edited, deleted or reordered.

    The chain proves order and integrity inside the database; noting the printed head elsewhere (a log
    book, another system) and passing it back with --expect also catches a rewrite of the whole chain.
    """
    expect = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter(
                "use SEQ:HASH as printed by 'pkictl audit verify'", param_hint="--expect"
            )
        expect = (int(seq), digest.lower())
    result = _service().audit.verify(expect=expect)
    if as_json:
        _print_json(
            {
                "ok": result.ok,
                "records": result.records,
                "head_seq": result.head_seq,
                "head_hash": result.head_hash,
                "problems": result.problems,
            }
        )
    elif result.ok:
        click.echo(f"audit chain OK: {result.records} records, head {result.head_seq}:{result.head_hash}")
    else:
        for p in result.problems:  # the report goes to stdout; the one-line refusal to stderr below
            click.echo(p)
    if not result.ok:
        _fail(f"audit chain broken: {len(result.problems)} problem(s) found")


@audit.command("show")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--request", "request_id", type=int, help="Only this request's records.")
@json_option
def audit_show(limit: int, request_id: int | None, as_json: bool) -> None:
    """Show the newest audit records, oldest of them first."""
    from pki.serialize import audit_to_dict

    svc = _service()
    recs = (
        svc.audit.for_request(request_id, limit=limit)
        if request_id is not None
        else svc.audit.recent(limit=limit)
    )
    if as_json:
        _print_json([audit_to_dict(r) for r in recs])
        return
    for r in recs:
        subject = f"{r.subject_type}:{r.subject_id}" if r.subject_type else "-"
        click.echo(f"#{r.seq:<6} {_local(r.at)} {r.actor:<16} {r.action:<22} {subject:<16} {r.details}")


# -- error mapping: the one place -------------------------------------------------------------------------


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"pkictl: error: {message}", err=True)
    raise SystemExit(code)


def _database_unavailable(e: Exception) -> str | None:
    """The first line of the driver's message if ``e`` is SQLAlchemy's OperationalError (server unreachable,
    database locked), else None. Looked up lazily so that ``pkictl --help`` never imports SQLAlchemy."""
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is None or not isinstance(e, exc.OperationalError):
        return None
    lines = str(e.orig if e.orig is not None else e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


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
        _fail("aborted", 130)
    except ImportRowsError as e:
        for row in e.rows:  # the per-row report on stdout; the one-line refusal on stderr
            click.echo(str(row))
        _fail(e.message)
    except PkiError as e:
        _fail(e.message)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as e:
        reason = _database_unavailable(e)
        if reason is None:
            raise  # a bug: keep the traceback
        _fail(f"database unavailable: {reason}")


if __name__ == "__main__":
    main()
