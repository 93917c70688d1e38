"""`pkictl token intake|transfer|receive|return`: each acceptance point's stock of USB keys
(services/stock.py); `token list` (token_commands.py) shows it by point and state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pki.cli.app import as_option, json_option, point_option, print_json
from pki.cli.token_commands import token


def _echo(done: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        print_json(done)
        return
    where = f" {done['point']}" if done["point"] else ""
    click.echo(f"{len(done['serials'])} USB key(s) {verb}{where}: {', '.join(done['serials'])}")


def _serials(given: tuple[str, ...], csv_path: Path | None) -> list[str]:
    from pki.services.bulk import decode
    from pki.services.stock import serials_from_csv

    found = list(given)
    if csv_path is not None:
        found += serials_from_csv(decode(csv_path.read_bytes()))
    if not found:
        raise click.UsageError("give the keys' serial numbers (--serial, or --csv FILE)")
    return found


@token.command("intake")
@click.option("--serial", "serials", multiple=True, metavar="SERIAL", help="A key's serial (repeatable).")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A CSV whose first column holds the serials (a header line is skipped).",
)
@click.option("--model", required=True, help="USBKEY 品牌及型号, a model of tokens.toml.")
@point_option
@as_option
@json_option
def token_intake(
    serials: tuple[str, ...],
    csv_path: Path | None,
    model: str,
    point: str | None,
    as_user: str,
    as_json: bool,
) -> None:
    """Take blank USB keys into an acceptance point's stock (all or nothing)."""
    from pki.cli.app import desk

    done = desk(as_user).call("token.intake", serials=_serials(serials, csv_path), model=model, point=point)
    _echo(done, as_json, "taken into the stock of")


@token.command("transfer")
@click.argument("serials", nargs=-1, required=True)
@click.option("--to", "to", required=True, metavar="POINT", help="The receiving acceptance point.")
@as_option
@json_option
def token_transfer(serials: tuple[str, ...], to: str, as_user: str, as_json: bool) -> None:
    """Send keys in stock to another acceptance point; they are in transit until received there."""
    from pki.cli.app import desk

    done = desk(as_user).call("token.transfer", serials=list(serials), to=to)
    _echo(done, as_json, "on their way to")


@token.command("receive")
@click.argument("serials", nargs=-1, required=True)
@as_option
@json_option
def token_receive(serials: tuple[str, ...], as_user: str, as_json: bool) -> None:
    """Receive keys transferred to your acceptance point into its stock."""
    from pki.cli.app import desk

    done = desk(as_user).call("token.receive", serials=list(serials))
    _echo(done, as_json, "received into the stock of")


@token.command("return")
@click.argument("serials", nargs=-1, required=True)
@click.option("--reason", required=True, help="What is wrong with them (kept in the audit trail).")
@as_option
@json_option
def token_return(serials: tuple[str, ...], reason: str, as_user: str, as_json: bool) -> None:
    """Send defective keys back to the supplier (they leave the stock for good)."""
    from pki.cli.app import desk

    done = desk(as_user).call("token.return", serials=list(serials), reason=reason)
    _echo(done, as_json, "sent back as defective")
