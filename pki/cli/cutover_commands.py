"""`pkictl party …`, `pkictl evidence …`, `pkictl cutover …` and `pkictl access-check`."""

from __future__ import annotations

import sys
from datetime import datetime
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
    login,
    point_option,
    print_json,
    reader_option,
    service,
)
from pki.enums import EvidenceType, PartyKind, Readiness
from pki.errors import ImportRowsError, PkiError

PLATFORM_HELP = "Platform name from cutover.toml."


class Instant(click.ParamType[datetime]):
    """An ISO 8601 instant; without an offset it is China Standard Time (what people read on screen)."""

    name = "INSTANT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        from pki.errors import ValidationError
        from pki.services.access import parse_instant

        try:
            return parse_instant(str(value))
        except ValidationError as e:
            self.fail(e.errors[0].message, param, ctx)


INSTANT = Instant()


def platform_option(f: Any) -> Any:
    return click.option("--platform", default="production", show_default=True, help=PLATFORM_HELP)(f)


# party ------------------------------------------------------------------------------------------------


@cli.group()
def party() -> None:
    """The registry of connected provincial platforms and units (附件4–6 unit lists)."""


@party.command("import")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@platform_option
@click.option("--kind", type=click.Choice([k.value for k in PartyKind]), default="unit", show_default=True)
@access_mode_option
@click.option("--province", default=None, help="Province of every row (default: 省份 column, else the USCC).")
@click.option("--skip-invalid", is_flag=True, help="Register the good rows and report the bad ones.")
@point_option
@as_option
@json_option
def party_import(
    csv_path: Path,
    platform: str,
    kind: str,
    access_mode: str,
    province: str | None,
    skip_invalid: bool,
    point: str | None,
    as_user: str,
    as_json: bool,
) -> None:
    """Register the units of a 附件4–6 list (CSV, UTF-8 or GB 18030) as parties of a platform."""
    try:
        result = desk(as_user).call(
            "party.import",
            csv=csv_path.read_bytes(),
            source_name=csv_path.name,
            platform=platform,
            kind=kind,
            access_mode=access_mode,
            province=province,
            skip_invalid=skip_invalid,
            point=point,
        )
    except ImportRowsError as e:
        if not as_json:
            raise
        print_json({"total": e.total, "imported": 0, "rejected": [str(r) for r in e.rows]})
        raise PkiError(e.message) from e
    if as_json:
        print_json(result)
        return
    for row in result["rejected"]:
        click.echo(f"skipped {row}")
    click.echo(
        f"{result['imported']} of {result['total']} parties registered for {platform}"
        f" ({len(result['already_registered'])} already registered, {len(result['rejected'])} rejected)"
    )


@party.command("list")
@click.option("--platform", default=None, help=PLATFORM_HELP + " Default: all.")
@click.option("--province", default=None)
@reader_option
@json_option
def party_list(platform: str | None, province: str | None, as_user: str | None, as_json: bool) -> None:
    """List parties (streamed a page at a time)."""
    import json

    d = desk(as_user)
    first = True
    if as_json:
        click.echo("[", nl=False)
    after: int | None = None
    while True:
        page = d.call("party.list", platform=platform, province=province, after_id=after, limit=PAGE)
        for p in page:
            if as_json:
                click.echo(("" if first else ",") + "\n  " + json.dumps(p, ensure_ascii=False), nl=False)
            else:
                click.echo(
                    f"{p['id']:>7}  {p['platform']:<10} {p['province']:<6} {p['credential_number']:<18} "
                    f"{p['kind']:<8} {p['access_mode']:<5} {p['state']:<10} {p['name']}"
                )
            first = False
        if len(page) < PAGE:
            break
        after = page[-1]["id"]
    if as_json:
        click.echo("\n]" if not first else "]")


PAGE = 1000


# evidence ---------------------------------------------------------------------------------------------


@cli.group()
def evidence() -> None:
    """Reports and letters on record for the test → formal rules."""


@evidence.command("add")
@click.option("--uscc", "credential_number", required=True, help="The unit's 统一社会信用代码.")
@click.option("--type", "evidence_type", type=click.Choice([t.value for t in EvidenceType]), required=True)
@click.option("--reference", required=True, help="The document's reference (文号 / report number).")
@click.option("--date", "document_date", required=True, help="The document's date, YYYY-MM-DD.")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@as_option
@json_option
def evidence_add(
    credential_number: str,
    evidence_type: str,
    reference: str,
    document_date: str,
    path: Path,
    as_user: str,
    as_json: bool,
) -> None:
    """Record a third-party software test report, a 等级保护 test report or a waiver letter (来函说明)."""
    record = desk(as_user).call(
        "evidence.add",
        uscc=credential_number,
        type=evidence_type,
        reference=reference,
        date=document_date,
        filename=path.name,
        content=path.read_bytes(),
    )
    if as_json:
        print_json(record)
    else:
        click.echo(f"evidence {record['id']} recorded: {record['type']} {record['sha256']}")


@evidence.command("list")
@click.option("--uscc", "credential_number", default=None)
@json_option
def evidence_list(credential_number: str | None, as_json: bool) -> None:
    """Evidence on record, newest first."""
    records = desk().call("evidence.list", uscc=credential_number)
    if as_json:
        print_json(records)
        return
    for r in records:
        click.echo(
            f"{r['id']:>5}  {r['credential_number']}  {r['type']:<21} {r['date']}  "
            f"{r['reference']}  {r['filename']} ({r['size']} B, sha256 {r['sha256'][:16]}…)  by {r['recorded_by']}"
        )


# cutover ----------------------------------------------------------------------------------------------


@cli.group()
def cutover() -> None:
    """Readiness for a platform's cutover, the switch itself and its record."""


PLAN_COLUMNS = ("province", "credential_number", "name", "kind", "readiness", "reason", "valid_until")


@cutover.command("plan")
@platform_option
@click.option(
    "--at", "at", type=INSTANT, default=None, help="Instant (default: the cutover, or now once passed)."
)
@click.option("--days", type=click.IntRange(0, 3650), default=30, show_default=True, help="Expiry horizon.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="Per-party CSV.")
@json_option
def cutover_plan(platform: str, at: datetime | None, days: int, out_path: Path | None, as_json: bool) -> None:
    """Readiness per party and totals per province at an instant; exits 0 whoever is not ready. The parties
    are written as they come (on the center's host the service hands them over one by one)."""
    import json
    from contextlib import ExitStack

    from pki.reports import CsvReport, csv_report

    writer: CsvReport | None = None
    first = [True]

    def sink(row: dict[str, Any]) -> None:
        values = tuple(row[c] or "" for c in PLAN_COLUMNS)
        if writer is not None:
            writer.row(values)
        if as_json:
            item = json.dumps(dict(zip(PLAN_COLUMNS, values, strict=True)), ensure_ascii=False)
            sys.stdout.write(("" if first[0] else ",") + "\n    " + item)
            first[0] = False

    d = desk()
    with ExitStack() as stack:
        if out_path is not None:
            writer = stack.enter_context(csv_report(out_path, PLAN_COLUMNS))
        if as_json:
            sys.stdout.write('{\n  "parties": [')
        summary = d.call("cutover.plan", sink=sink, platform=platform, at=at, days=days)
    if as_json:
        body = json.dumps(summary, ensure_ascii=False, indent=2)[1:]  # continue the open object
        sys.stdout.write(("\n  ]," if not first[0] else "],") + body + "\n")
        return
    totals = summary["totals"]
    parties = sum(totals.values())
    click.echo(
        f"{summary['platform']}: readiness at {local_time(summary['at'])} CST "
        f"(expiring = before {local_time(summary['horizon'])}), {parties} parties"
    )
    header = "".join(f"{r.value:>10}" for r in Readiness)
    click.echo(f"{'province':<10}{header}")
    for province, counts in summary["by_province"].items():
        click.echo(f"{province:<10}" + "".join(f"{counts[r.value]:>10}" for r in Readiness))
    click.echo(f"{'total':<10}" + "".join(f"{totals[r.value]:>10}" for r in Readiness))
    not_ready = parties - totals[Readiness.READY.value]
    click.echo(f"{not_ready} parties not ready" + (f"; per-party report in {out_path}" if out_path else ""))


@cutover.command("run")
@platform_option
@click.option("--at", "at", type=INSTANT, default=None, help="Decide for this instant (default: now).")
@click.option(
    "--rehearse", is_flag=True, help="Decide everything, write nothing (allowed before the instant)."
)
@click.option(
    "--chunk", type=click.IntRange(1, 50_000), default=10_000, show_default=True, help="Parties per commit."
)
@as_option
@json_option
def cutover_run(
    platform: str, at: datetime | None, rehearse: bool, chunk: int, as_user: str, as_json: bool
) -> None:
    """Switch enforcement at or after the platform's instant and record a decision per party.

    Safe to repeat (a finished run changes nothing) and to interrupt (the next run resumes)."""
    svc = service()
    summary = svc.cutover.run(
        actor=login(svc, as_user), platform=platform, at=at, rehearse=rehearse, chunk=chunk
    )
    if as_json:
        from pki.desk.ops.cutover import RunDoc, run_doc

        print_json(RunDoc.model_validate(run_doc(summary)).model_dump(mode="json"))
        return
    verb = {"rehearsal": "rehearsal", "done": "done" if summary.changed else "already done, nothing changed"}
    click.echo(
        f"cutover {summary.platform} at {local_time(summary.at)} CST: {verb.get(summary.state, summary.state)}; "
        f"{summary.allowed} allowed, {summary.refused} refused"
    )


@cutover.command("status")
@click.option("--refused", "show_refused", is_flag=True, help="Also list the refused parties (first 1000).")
@reader_option
@json_option
def cutover_status(show_refused: bool, as_user: str | None, as_json: bool) -> None:
    """Each platform's cutover instant, whether enforcement is switched, and the run's totals (with
    --refused, the refused parties of your acceptance points)."""
    status = desk(as_user).call("cutover.status", refused=show_refused)
    if as_json:
        print_json([{k: v for k, v in p.items() if k != "refused" or show_refused} for p in status])
        return
    for p in status:
        run = p["run"]
        state = "enforced" if p["enforced"] else ("running" if run else "not run")
        line = f"{p['platform']:<10} cutover {local_time(p['cutover'])} CST  {state}"
        if run:
            line += f"  ({run['allowed']} allowed, {run['refused']} refused; by {run['started_by'] or ''})"
        click.echo(line)
        for d in p["refused"] or []:
            click.echo(f"    refused {d['credential_number']} {d['name']}: {d['reason']}")


# access-check -----------------------------------------------------------------------------------------


@cli.command("access-check")
@click.option(
    "--cert",
    "cert_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The certificate presented (PEM or DER); omit for a connection that presents none.",
)
@platform_option
@click.option("--at", "at", type=INSTANT, default=None, help="Decide for this instant (default: now).")
@json_option
def access_check(cert_path: Path | None, platform: str, at: datetime | None, as_json: bool) -> int:
    """Would a connection presenting this certificate (or none) be let in? Exit 0 allow, 1 deny."""
    result = desk().call(
        "access.check",
        certificate=cert_path.read_bytes() if cert_path is not None else None,
        platform=platform,
        at=at,
    )
    if as_json:
        print_json(result)
    else:
        click.echo(f"{result['decision']}: {'; '.join(result['reasons'])}")
        for w in result["warnings"]:
            click.echo(f"warning: {w}")
    return 0 if result["decision"] == "allow" else 1  # main() turns it into the exit code
