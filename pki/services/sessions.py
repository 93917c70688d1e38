"""Operator sessions for desks working through the API: a bearer token per log-in, short-lived and revocable.

The token is shown once, to the desk that logged in; the database keeps only its SHA-256, so a copy of the
database lets nobody act as an operator. Lifetimes are access.toml [desk]: an idle limit (counted from the
last use, recorded at most once a minute so that reads do not each become a write) and an absolute one.
Log-in goes through UserService.authenticate: the same throttling and audit as the clerks' UI.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy import select as sa_select
from sqlmodel import select

from pki import audit
from pki.db import one_statement
from pki.errors import SessionExpiredError
from pki.models import ApiSession, User
from pki.models.workflow import parse_roles
from pki.services.context import Actor, Context
from pki.services.users import UserService

_SESSIONS = ApiSession.__table__  # type: ignore[attr-defined]
_USERS = User.__table__  # type: ignore[attr-defined]
# Built once: every API call runs it.
_RESOLVE = (
    sa_select(
        _SESSIONS.c.id,
        _SESSIONS.c.username,
        _SESSIONS.c.last_used_at,
        _SESSIONS.c.expires_at,
        _SESSIONS.c.revoked_at,
        _USERS.c.roles,
        _USERS.c.active,
    )
    .join(_USERS, _USERS.c.username == _SESSIONS.c.username)
    .where(_SESSIONS.c.token_hash == bindparam("hash"))
)
_TOUCH = update(_SESSIONS).where(_SESSIONS.c.id == bindparam("sid")).values(last_used_at=bindparam("now"))
TOKEN_PREFIX = "pkis_"  # noqa: S105 - a prefix that makes a leaked token recognisable
# A session's last use is written when it is older than this: idle expiry is exact to within it.
_TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedSession:
    token: str  # shown once; never stored
    username: str
    roles: tuple[str, ...]
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SessionService:
    def __init__(self, ctx: Context, users: UserService) -> None:
        self._ctx = ctx
        self._users = users

    def login(self, username: str, password: str, *, address: str = "") -> IssuedSession:
        """Check the password (throttled and audited like every log-in) and open a session.

        Raises AuthenticationError or LoginThrottledError.
        """
        actor = self._users.authenticate(username, password, source="api", address=address)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._ctx.now()
        expires = now + self._ctx.policies.access.desk_absolute
        with self._ctx.write() as s:
            s.add(
                ApiSession(
                    token_hash=token_hash(token),
                    username=actor.username,
                    created_at=now,
                    last_used_at=now,
                    expires_at=expires,
                    address=address[:64],
                )
            )
            s.flush()
            audit.append(
                s,
                at=now,
                actor=actor.username,
                action="session.open",
                subject_type="user",
                subject_id=actor.username,
                details={"until": expires.isoformat()} | ({"address": address} if address else {}),
            )
        return IssuedSession(token, actor.username, tuple(sorted(actor.roles)), expires)

    def resolve(self, token: str) -> Actor:
        """The operator a bearer token stands for, with the roles the user table gives now.

        Raises SessionExpiredError for an unknown, revoked, idle or expired session, or a deactivated user.
        """
        now = self._ctx.now()
        with one_statement(self._ctx.engine, read=True) as conn:  # every API call runs it
            row = conn.execute(_RESOLVE, {"hash": token_hash(token)}).first()
        if row is None:
            raise SessionExpiredError("unknown")
        why = self._ended(row, now)
        if why is None and not row.active:
            why = "ended: the user is deactivated"
        if why is not None:
            raise SessionExpiredError(why)
        if now - row.last_used_at >= _TOUCH_EVERY:
            with one_statement(self._ctx.engine) as conn:  # no audit record: a use is not a change
                conn.execute(_TOUCH, {"sid": row.id, "now": now})
        return Actor(row.username, parse_roles(row.roles))

    def _ended(self, session: Any, now: datetime) -> str | None:
        if session.revoked_at is not None:
            return "revoked"
        if now >= session.expires_at:
            return "expired"
        if now - session.last_used_at > self._ctx.policies.access.desk_idle:
            return "expired (idle)"
        return None

    def logout(self, token: str) -> None:
        """End the session of ``token`` (audited). Ending one already ended is not an error."""
        now = self._ctx.now()
        with self._ctx.write() as s:
            session = s.exec(select(ApiSession).where(ApiSession.token_hash == token_hash(token))).first()
            if session is None or session.revoked_at is not None:
                return
            session.revoked_at = now
            s.add(session)
            audit.append(
                s,
                at=now,
                actor=session.username,
                action="session.close",
                subject_type="user",
                subject_id=session.username,
                details={},
            )
