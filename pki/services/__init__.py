"""The service layer: the only way web/ and the CLI change anything."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from pki.clock import Clock, SystemClock
from pki.services.audit_log import AuditService
from pki.services.bulk import BulkService
from pki.services.context import Actor, Context
from pki.services.requests import RequestFilter, RequestService
from pki.services.users import UserService
from policies import Policies, load_policies


class Service:
    """One object per process (or per test) holding every sub-service over one engine."""

    def __init__(
        self, engine: Engine, *, policies: Policies | None = None, clock: Clock | None = None
    ) -> None:
        self.ctx = Context(engine=engine, policies=policies or load_policies(), clock=clock or SystemClock())
        self.users = UserService(self.ctx)
        self.requests = RequestService(self.ctx)
        self.bulk = BulkService(self.ctx, self.requests)
        self.audit = AuditService(self.ctx)


__all__ = ["Actor", "RequestFilter", "Service"]
