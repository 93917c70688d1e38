"""The local desk: the CLI on the center's host, calling the service in this process."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pki.desk.contract import Sink, operations, validate

if TYPE_CHECKING:
    from pki.services import Actor, Service


class LocalDesk:
    def __init__(self, service: Service, username: str | None, password: Callable[[str], str]) -> None:
        self._service = service
        self._username = username
        self._password = password
        self._actor: Actor | None = None

    @property
    def service(self) -> Service:
        return self._service

    def call(self, name: str, /, sink: Sink | None = None, **fields: Any) -> Any:
        """Run operation ``name`` with ``fields`` (validated as the API validates them); its JSON document.
        ``sink``: an operation's long list (contract.Operation.rows) row by row, as the service makes it."""
        op = operations()[name]
        data = validate(op, fields)
        # A read given --as answers as the API would that operator (their acceptance points' records);
        # without it, the center's host reads everything.
        acting = op.needs_actor or self._username is not None
        return op.call(self._service, self.actor() if acting else None, data, sink)

    def actor(self) -> Actor:
        """The operator (--as), authenticated once per process with the password."""
        if self._actor is None:
            if self._username is None:
                raise TypeError("this operation needs --as USER")
            self._actor = self._service.users.authenticate(
                self._username, self._password(f"Password for {self._username}")
            )
        return self._actor
