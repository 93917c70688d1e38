"""A desk in the test's process acting as one of the test's people: the desk contract's operations
(pki/desk/contract.py) called on the service exactly as the local desk calls them, without a password (the
people of tests/conftest.py have none)."""

from __future__ import annotations

from typing import Any

from pki.desk.contract import operations, validate
from pki.services import Actor, Service


class ActingDesk:
    def __init__(self, service: Service, actor: Actor) -> None:
        self.service = service
        self.actor = actor

    def call(self, name: str, /, **fields: Any) -> Any:
        op = operations()[name]
        return op.call(self.service, self.actor, validate(op, fields))
