"""What every service needs: the engine, the policies, the clock; and the authenticated actor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from pki.clock import CHINA_TZ, Clock
from pki.db import read_session, transaction
from policies import Policies


@dataclass(frozen=True)
class Actor:
    """An authenticated person. Obtained only from :meth:`UserService.authenticate` (or bootstrap)."""

    username: str
    roles: frozenset[str]


@dataclass
class Context:
    engine: Engine
    policies: Policies
    clock: Clock

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        """Today's date in China Standard Time: the date on the paper form."""
        return self.clock.now().astimezone(CHINA_TZ).date()

    @contextmanager
    def write(self) -> Iterator[Session]:
        with transaction(self.engine) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with read_session(self.engine) as session:
            yield session
