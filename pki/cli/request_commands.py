"""`pkictl request …`: applications through acceptance and review."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pki.cli.app import (
    access_mode_option,
    as_option,
    cli,
    desk,
    json_option,
    local_time,
    point_option,
    print_json,
    read_json_file,
    reader_option,
)
from pki.enums import AccessType, Deal, RequestState
from pki.errors import ImportRowsError, PkiError

WORKFLOW_STATES = tuple(s.value for s in RequestState)

# request ----------------------------------------------------------------------------------------------


@cli.group()
def request() -> None:
    """Certificate applications (附件7) through acceptance and review."""


def _echo_request(req: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        print_json(req)
    else:
        click.echo(f"request {req['id']} {verb}: {req['state']}")


@request.command("new")
@click.option(
    "--type",
    "deal",
    type=click.Choice([d.value for d in Deal]),
    default=Deal.NEW.value,
    show_default=True,
    help="The deal (业务类型): a new application, or a deal on the certificate --serial.",
)
@click.option("--serial", help="The certificate a deal concerns (every type but new).")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Application as JSON (keys documented in docs/application-json.md): a new one, or a change's form.",
)
@click.option("--months", type=int, help="A renew or rekey deal's validity in months.")
@click.option(
    "--reason",
    default="",
    help="revoke: an RFC 5280 reason (default unspecified); replace-damaged: returned or destroyed.",
)
@click.option("--comment", default="", help="What the unit says, in its words.")
@point_option
@as_option
@json_option
def request_new(
    deal: str,
    serial: str | None,
    path: Path | None,
    months: int | None,
    reason: str,
    comment: str,
    point: str | None,
    as_user: str,
    as_json: bool,
) -> None:
    """Enter one application, or a deal on a certificate (renew, rekey, change, replace-lost,
    replace-damaged, unlock, hold, release, revoke)."""
    raw = read_json_file(path) if path is not None else None
    if deal == Deal.NEW.value:
        if raw is None or serial is not None or months is not None or reason or comment:
            raise click.UsageError("a new application takes --file only (a deal names --type and --serial)")
        _echo_request(desk(as_user).call("request.new", application=raw, point=point), as_json, "entered")
        return
    if serial is None:
        raise click.UsageError(f"a {deal} deal names the certificate it concerns: --serial SERIAL")
    req = desk(as_user).call(
        "request.deal",
        type=deal,
        serial=serial,
        application=raw,
        months=months,
        reason=reason,
        comment=comment,
        point=point,
    )
    _echo_request(req, as_json, f"entered ({deal} deal on certificate {serial})")


@request.command("edit")
@click.argument("request_id", type=int)
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@as_option
@json_option
def request_edit(request_id: int, path: Path, as_user: str, as_json: bool) -> None:
    """Replace an application's fields (voids an earlier acceptance)."""
    raw = read_json_file(path)
    _echo_request(
        desk(as_user).call("request.edit", request_id=request_id, application=raw), as_json, "edited"
    )


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
@access_mode_option
@click.option("--skip-invalid", is_flag=True, help="Import the good rows and report the bad ones.")
@point_option
@as_option
@json_option
def request_import(
    csv_path: Path,
    defaults_path: Path,
    label: str,
    access_mode: str,
    skip_invalid: bool,
    point: str | None,
    as_user: str,
    as_json: bool,
) -> None:
    """Import a 附件4–6 unit list (CSV): one request per unit; by default nothing if any row is bad."""
    defaults = read_json_file(defaults_path)
    try:
        result = desk(as_user).call(
            "request.import",
            csv=csv_path.read_bytes(),
            source_name=csv_path.name,
            defaults=defaults,
            label=label,
            access_mode=access_mode,
            skip_invalid=skip_invalid,
            point=point,
        )
    except ImportRowsError as e:
        if not as_json:
            raise  # main() prints the rows and the one-line refusal
        from pki.desk.ops.requests import rows_json

        print_json({"batch_id": None, "total": e.total, "imported": [], "rejected": rows_json(e.rows)})
        raise PkiError(e.message) from e
    if as_json:
        print_json(result)
        return
    click.echo(f"batch {result['batch_id']}: imported {len(result['imported'])} of {result['total']} rows")
    for r in result["rejected"]:
        problems = "; ".join(f"{e['field']}: {e['message']}" for e in r["errors"])
        click.echo(f"  skipped line {r['line']}: {problems}")


@request.command("list")
@click.option("--status", type=click.Choice(WORKFLOW_STATES))
@click.option("--province")
@click.option("--access-type", type=click.Choice([t.value for t in AccessType]))
@click.option("--search", help="Unit name fragment or exact credit code.")
@click.option("--after-id", type=int, help="Page on: only requests with a larger id.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@reader_option
@json_option
def request_list(
    status: str | None,
    province: str | None,
    access_type: str | None,
    search: str | None,
    after_id: int | None,
    limit: int,
    as_user: str | None,
    as_json: bool,
) -> None:
    """List requests, oldest first."""
    rows = desk(as_user).call(
        "request.list",
        status=status,
        province=province,
        access_type=access_type,
        search=search,
        after_id=after_id,
        limit=limit,
    )
    if as_json:
        print_json(rows)
        return
    for r in rows:
        click.echo(
            f"{r['id']:>7}  {r['state']:<13} {r['access_type']:<6} {r['province']:<6} "
            f"{r['credential_number']:<18}  {r['unit_name']}"
        )


@request.command("show")
@click.argument("request_id", type=int)
@reader_option
@json_option
def request_show(request_id: int, as_user: str | None, as_json: bool) -> None:
    """Show one request and its history."""
    from pki.application import FIELD_LABELS

    detail = desk(as_user).call("request.show", request_id=request_id)
    if as_json:
        print_json(detail)
        return
    for key, value in detail.items():
        if key in ("history", "prerequisites", "deal_certificate"):
            continue
        shown = local_time(value) if key.endswith("_at") and value else value  # instants: entered_at, …
        click.echo(f"{FIELD_LABELS.get(key, key)} ({key}): {shown if shown not in (None, '') else '-'}")
    subject = detail.get("deal_certificate")
    if subject:
        key_text = (
            f"USB key {subject['token_serial']} ({subject['token_state']})"
            if subject["token_serial"]
            else "no USB key"
        )
        click.echo(f"the deal's certificate: {subject['serial']} ({subject['status']}), {key_text}")
    click.echo("history (China Standard Time):")
    for a in detail["history"]:
        click.echo(f"  #{a['seq']} {local_time(a['at'])} {a['actor']} {a['action']} {_details(a['details'])}")
    report = detail["prerequisites"]
    if report["applies"]:
        click.echo(f"test → formal prerequisites (at {local_time(report['at'])}):")
        for rule in report["rules"]:
            click.echo(f"  [{'pass' if rule['passed'] else 'FAIL'}] {rule['rule']}: {rule['reason']}")


def _details(details: dict[str, Any]) -> str:
    """An audit record's details as the trail stores them (canonical JSON)."""
    from pki.audit import canonical_json

    return canonical_json(details)


@request.command("attach")
@click.argument("request_id", type=int)
@click.option("--kind", required=True, help="Attachment kind (access.toml [attachments]), e.g. signed_form.")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="PDF, JPEG or PNG.",
)
@as_option
@json_option
def request_attach(request_id: int, kind: str, path: Path, as_user: str, as_json: bool) -> None:
    """Keep a scan with a request (the stamped form that acceptance may require, the unit's credential)."""
    added = desk(as_user).call(
        "attachment.add", request_id=request_id, kind=kind, filename=path.name, content=path.read_bytes()
    )
    if as_json:
        print_json(added)
    else:
        click.echo(f"request {request_id}: attachment {added['id']} ({added['kind']}) kept")


@request.command("accept")
@click.argument("request_id", type=int)
@click.option(
    "--opinion", type=click.Choice(["agree", "disagree"]), required=True, help="受理意见 同意/不同意."
)
@click.option("--usbkey", default="", help="USBKEY 品牌及型号 (required to agree).")
@click.option("--comment", default="", help="Remark; required to disagree.")
@click.option(
    "--confirm-uscc",
    is_flag=True,
    help="The unit's credit code is on record under another unit name: checked, accept anyway.",
)
@as_option
@json_option
def request_accept(
    request_id: int, opinion: str, usbkey: str, comment: str, confirm_uscc: bool, as_user: str, as_json: bool
) -> None:
    """Record the acceptor's opinion (受理意见)."""
    req = desk(as_user).call(
        "request.accept",
        request_id=request_id,
        opinion=opinion,
        usbkey=usbkey,
        comment=comment,
        confirm_uscc=confirm_uscc or None,  # unset unless given: a server without the field still answers
    )
    _echo_request(req, as_json, "accepted" if opinion == "agree" else "not accepted")


@request.command("countersign")
@click.argument("request_id", type=int)
@as_option
@json_option
def request_countersign(request_id: int, as_user: str, as_json: bool) -> None:
    """Countersign an accepted request as head of the acceptance point (负责人)."""
    _echo_request(desk(as_user).call("request.countersign", request_id=request_id), as_json, "countersigned")


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
    req = desk(as_user).call(
        "request.review", request_id=request_id, decision=decision.value, reason=reason or ""
    )
    _echo_request(req, as_json, "reviewed")


@request.command("cancel")
@click.argument("request_id", type=int)
@click.option("--reason", required=True)
@as_option
@json_option
def request_cancel(request_id: int, reason: str, as_user: str, as_json: bool) -> None:
    """Withdraw a request that has not been issued."""
    _echo_request(
        desk(as_user).call("request.cancel", request_id=request_id, reason=reason), as_json, "cancelled"
    )
