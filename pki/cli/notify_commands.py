"""`pkictl notify expiring`: expiry reminders to each unit's handler and a summary per point, by mail."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

import click

from pki.cli.app import cli, json_option, local_time, login, print_json, service
from pki.cli.cutover_commands import INSTANT


@cli.group()
def notify() -> None:
    """Mail sent by the center (run from cron on the center's host)."""


@notify.command("expiring")
@click.option("--dry-run", is_flag=True, help="List what would be sent; write and send nothing.")
@click.option("--at", "at", type=INSTANT, default=None, help="Decide as of this instant (default: now).")
@click.option("--as", "as_user", metavar="USER", help="Operator (omit for a scheduled run).")
@json_option
def notify_expiring(dry_run: bool, at: datetime | None, as_user: str | None, as_json: bool) -> None:
    """Remind each unit's handler (the application's Email) of certificates entering an expiry window
    (notify.toml: 60, 30 and 7 days), once per window, and send each point a summary. Through PKI_SMTP_URL
    (smtp://[user@]host[:port][?starttls=true] or smtps://…; password in PKI_SMTP_PASSWORD). A run sends
    again what an earlier, interrupted run claimed and had not sent."""
    import ssl

    from pki.errors import ConfigurationError
    from pki.mail import Mailer, smtp_server

    svc = service()
    if dry_run:
        due = svc.reminders.due(at=at)
        _report(due, as_json, resent=0, sent=0, summaries=0, dry_run=True)
        return
    url = os.environ.get("PKI_SMTP_URL", "")
    if not url:
        raise ConfigurationError("no mail server: set PKI_SMTP_URL (smtp://host:port)")
    server = smtp_server(url, os.environ.get("PKI_SMTP_PASSWORD", ""))
    # PKI_SMTP_CA: the mail server's CA certificate(s), when its TLS certificate is not publicly trusted
    context = ssl.create_default_context(cafile=os.environ.get("PKI_SMTP_CA") or None)
    actor = login(svc, as_user) if as_user else None
    result = svc.reminders.run(lambda: Mailer(server, context), at=at, actor=actor)
    _report(result.due, as_json, resent=result.resent, sent=result.sent, summaries=result.summaries)


def _report(
    due: list[Any], as_json: bool, *, resent: int, sent: int, summaries: int, dry_run: bool = False
) -> None:
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "sent": sent,
                "resent": resent,
                "summaries": summaries,
                "reminders": [
                    {
                        "serial": d.serial,
                        "unit_name": d.unit_name,
                        "credential_number": d.credential_number,
                        "email": d.email,
                        "window_days": d.window_days,
                        "not_valid_after": d.not_valid_after.isoformat(),
                    }
                    for d in due
                ],
            }
        )
        return
    for d in due:
        click.echo(
            f"{d.serial}  {d.unit_name}  ends {local_time(d.not_valid_after)} CST  "
            f"({d.window_days}-day window)  -> {d.email}"
        )
    if dry_run:
        click.echo(f"{len(due)} reminders due (dry run: nothing sent)")
    else:
        extra = f" ({resent} left by an earlier run)" if resent else ""
        click.echo(f"{len(due)} reminders due, {summaries} point summaries; {sent} mails sent{extra}")
