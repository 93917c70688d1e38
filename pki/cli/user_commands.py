"""`pkictl user …`: operators and roles."""

from __future__ import annotations

import sys

import click

from pki.cli.app import as_option, cli, json_option, login, print_json, service
from pki.enums import Role

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
@click.option("--display-name", default="", help="The person's name (张三), shown instead of the login name.")
@click.option(
    "--point",
    metavar="POINT",
    help="The acceptance point (受理点) they work at; without it a center user, who sees every point's work.",
)
@click.option(
    "--as", "as_user", metavar="ADMIN", help="Admin adding the user (not needed for the first user)."
)
def user_add(
    name: str, roles: tuple[str, ...], display_name: str, point: str | None, as_user: str | None
) -> None:
    """Add user NAME; the password is read from standard input (first line)."""
    svc = service()
    actor = login(svc, as_user) if as_user else None
    password = _new_password()
    created = svc.users.add(name, password, roles, actor=actor, display_name=display_name, point=point)
    where = f" at {point.strip()}" if point else ""
    click.echo(f"user {created.username} added with roles {created.roles}{where}")


def _new_password() -> str:
    """A new password: prompted twice in a terminal, else the first line of standard input."""
    if sys.stdin.isatty():
        return str(click.prompt("New password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


@user.command("set")
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    metavar="ROLE",
    type=click.Choice([r.value for r in Role]),
    help="Replace the roles with these; repeat for several.",
)
@click.option("--active/--inactive", default=None, help="Reactivate or deactivate the user.")
@click.option("--reset-password", is_flag=True, help="Set a new password, read like `user add` does.")
@click.option("--point", metavar="POINT", help="Move them to this acceptance point (受理点).")
@click.option("--center", is_flag=True, help="Make them a center user (no point: every point's work).")
@click.option("--display-name", default=None, help="The person's name (张三).")
@as_option
def user_set(
    name: str,
    roles: tuple[str, ...],
    active: bool | None,
    reset_password: bool,
    point: str | None,
    center: bool,
    display_name: str | None,
    as_user: str,
) -> None:
    """Change a user's roles, activation, password, point or display name (admins only; the last active
    admin stays)."""
    svc = service()
    actor = login(svc, as_user)
    updated = svc.users.update(
        name,
        actor=actor,
        roles=roles or None,
        active=active,
        password=_new_password() if reset_password else None,
        point=point,
        center=center,
        display_name=display_name,
    )
    where = svc.points.name_of(updated.point_id) or "the center"
    click.echo(
        f"user {updated.username}: roles {updated.roles}, {'active' if updated.active else 'inactive'}, "
        f"at {where}"
    )


@user.command("list")
@json_option
def user_list(as_json: bool) -> None:
    """List users and their roles."""
    from pki.serialize import user_to_dict

    svc = service()
    points = {p.id: p.name for p in svc.points.list()}
    users = [user_to_dict(u, points.get(u.point_id) if u.point_id else None) for u in svc.users.list()]
    if as_json:
        print_json(users)
        return
    for u in users:
        click.echo(
            f"{u['username']:<20} {','.join(u['roles']):<40} {'active' if u['active'] else 'inactive':<8} "
            f"{u['point'] or '(center)':<16} {u['display_name']}"
        )
