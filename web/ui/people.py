"""People by the names they are known by (display names), never by their logins.

A view names the users its page shows (:func:`want`) before rendering; the ``person`` filter then resolves
every wanted name with one query (UserService.display_names) on its first use, so a page of records costs one
query, not one per row. A name the view did not announce is still resolved, in a query of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import g


def want(*usernames: str | None) -> None:
    """Names this page is about to show."""
    _wanted().update(u for u in usernames if u)


def want_all(usernames: Iterable[str | None]) -> None:
    want(*usernames)


def known(username: str, name: str) -> None:
    """A name already read with something else (the signed-in user's, with their session)."""
    _known()[username] = name


def person(username: str | None) -> str:
    """The Jinja filter: ``{{ req.accepted_by|person }}``."""
    if not username:
        return ""
    names = _known()
    if username not in names:
        from web.ui import service

        pending = (_wanted() | {username}) - names.keys()
        names.update(service().users.display_names(pending))
        _wanted().clear()
    return names[username]


def _known() -> dict[str, str]:
    names: dict[str, str] = g.setdefault("people_known", {})
    return names


def _wanted() -> set[str]:
    wanted: set[str] = g.setdefault("people_wanted", set())
    return wanted
