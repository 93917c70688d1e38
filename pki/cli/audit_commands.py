"""`pkictl audit …`: the keyed, hash-chained trail and its checkpoints."""

from __future__ import annotations

import click

from pki.cli.app import (
    cli,
    desk,
    fail,
    json_option,
    local_time,
    print_json,
    reader_option,
    service,
)

# audit ------------------------------------------------------------------------------------------------


@cli.group()
def audit() -> None:
    """The keyed, hash-chained audit trail (audit key: PKI_AUDIT_PASSPHRASE or a prompt)."""


@audit.command("verify")
@click.option(
    "--expect",
    "anchor",
    metavar="SEQ:HASH",
    help="An anchor noted earlier (from a previous verify): record SEQ must still have HASH.",
)
@json_option
def audit_verify(anchor: str | None, as_json: bool) -> None:
    """Check every record's hash, link and MAC (audit key) and every checkpoint; exit 1 if a record was
    edited, forged, inserted, deleted or cut off the end, naming the first record that cannot be trusted.

    Records after the newest checkpoint can be cut off the end unnoticed (policies/audit.toml sets how often
    one is written; every CRL publication writes one too); --expect SEQ:HASH checks one more anchor.
    """
    expect = None
    if anchor is not None:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter(
                "use SEQ:HASH as printed by 'pkictl audit verify'", param_hint="--expect"
            )
        expect = (int(seq), digest.lower())
    result = service().audit.verify(expect=expect)
    if as_json:
        print_json(
            {
                "ok": result.ok,
                "records": result.records,
                "head_seq": result.head_seq,
                "head_hash": result.head_hash,
                "keyed_from": result.keyed_from,
                "checkpoints": result.checkpoints,
                "last_checkpoint": result.last_checkpoint,
                "untrusted_from": result.untrusted_from,
                "problems": result.problems,
                "warnings": result.warnings,
            }
        )
    elif result.ok:
        click.echo(f"audit chain OK: {result.records} records, head {result.head_seq}:{result.head_hash}")
        if result.keyed_from > 1:
            click.echo(
                f"records 1-{result.keyed_from - 1} unkeyed (before the audit key), sealed by a checkpoint"
            )
        click.echo(f"newest checkpoint: record {result.last_checkpoint} ({result.checkpoints} checkpoints)")
    else:
        for p in result.problems:  # the report goes to stdout; the one-line refusal to stderr below
            click.echo(p)
    for w in result.warnings:
        click.echo(f"warning: {w}")
    if not result.ok:
        where = f": untrustworthy from record {result.untrusted_from}" if result.untrusted_from else ""
        fail(f"audit chain broken: {len(result.problems)} problem(s) found{where}")


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Checkpoint the chain head now (for cron in quiet hours; writes also checkpoint at the policy's
    interval, and every CRL publication does)."""
    seq = service().audit.checkpoint()
    click.echo(f"checkpoint written: record {seq}")


@audit.command("show")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--request", "request_id", type=int, help="Only this request's records.")
@reader_option
@json_option
def audit_show(limit: int, request_id: int | None, as_user: str | None, as_json: bool) -> None:
    """Show the newest audit records, oldest of them first (an acceptance point's users: of one of their
    requests)."""
    from pki.audit import canonical_json

    recs = desk(as_user).call("audit.show", limit=limit, request_id=request_id)
    if as_json:
        print_json(recs)
        return
    for r in recs:
        subject = f"{r['subject_type']}:{r['subject_id']}" if r["subject_type"] else "-"
        details = canonical_json(r["details"]) if r["details"] else ""
        click.echo(
            f"#{r['seq']:<6} {local_time(r['at'])} {r['actor']:<16} {r['action']:<22} {subject:<16} {details}"
        )
