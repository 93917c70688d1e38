"""Operator sessions: log-in from a desk (a bearer token), who am I, log-out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from pki.desk.contract import Input, NoInput, acting, operation
from pki.desk.types import Instant

if TYPE_CHECKING:
    from pki.services import Actor, Service

TAG = "sessions"


class Credentials(Input):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class OpenedSession(BaseModel):
    token: str
    username: str
    roles: list[str]
    expires_at: Instant


class Operator(BaseModel):
    username: str
    roles: list[str]


@operation(
    "session.open",
    "POST",
    "/sessions",
    Credentials,
    OpenedSession,
    summary="Log in: a session token for the desk (throttled and audited like every log-in)",
    tag=TAG,
    needs_actor=False,
    status=201,
)
def open_session(svc: Service, actor: Actor | None, data: Credentials) -> Any:
    # The API adapter calls svc.sessions.login itself (it knows the client's address); this is the contract.
    return svc.sessions.login(data.username, data.password)


@operation(
    "session.show",
    "GET",
    "/sessions/current",
    NoInput,
    Operator,
    summary="The operator this session stands for",
    tag=TAG,
)
def whoami(svc: Service, actor: Actor | None, data: NoInput) -> Any:
    me = acting(actor)
    return {"username": me.username, "roles": sorted(me.roles)}


class Closed(BaseModel):
    closed: bool


@operation(
    "session.close",
    "DELETE",
    "/sessions/current",
    NoInput,
    Closed,
    summary="Log out: the session token stops working",
    tag=TAG,
)
def close_session(svc: Service, actor: Actor | None, data: NoInput) -> Any:
    # The API adapter revokes the token it was called with; a local desk has no session to close.
    return {"closed": True}
