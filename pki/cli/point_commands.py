"""`pkictl point …`: acceptance points (受理点)."""

from __future__ import annotations

import click

from pki.cli.app import as_option, cli, desk, json_option, print_json


@cli.group()
def point() -> None:
    """Acceptance points (受理点): where clerks work and USB keys are kept."""


@point.command("add")
@click.argument("name")
@click.option("--province", required=True, help="Its province (provinces.toml), e.g. 湖北.")
@click.option("--parent", metavar="POINT", help="The provincial point it is under.")
@as_option
@json_option
def point_add(name: str, province: str, parent: str | None, as_user: str, as_json: bool) -> None:
    """Add acceptance point NAME (admins)."""
    added = desk(as_user).call("point.add", name=name, province=province, parent=parent)
    if as_json:
        print_json(added)
        return
    under = f" under {added['parent']}" if added["parent"] else ""
    click.echo(f"point {added['name']} added ({added['province']}{under})")


@point.command("list")
@json_option
def point_list(as_json: bool) -> None:
    """List the acceptance points, each provincial point followed by the points under it."""
    rows = desk().call("point.list")
    if as_json:
        print_json(rows)
        return
    for p in rows:
        name = f"  {p['name']}" if p["parent"] else p["name"]
        click.echo(f"{name:<24} {p['province'] or '-':<8} users {p['users']}")
