"""Login throttling (access.toml [login]): failures counted per user name and per client address.

Checked before the password hash is computed, so a throttled attempt costs nothing and tells nothing.
"""

from __future__ import annotations

from sqlalchemy import delete, or_
from sqlmodel import Session, col, func, select

from pki import audit
from pki.errors import LoginThrottledError
from pki.models import LoginFailure
from pki.services.context import Context


def check(ctx: Context, username: str, address: str, *, source: str) -> None:
    """Raise LoginThrottledError (and audit it) if either count has reached its limit within the window."""
    policy = ctx.policies.access
    since = ctx.now() - policy.login_window
    with ctx.read() as s:
        by_user = _count(s, col(LoginFailure.username) == username, since)
        by_address = _count(s, col(LoginFailure.address) == address, since) if address else 0
    if by_user < policy.max_failures_per_user and by_address < policy.max_failures_per_address:
        return
    with ctx.write() as s:
        audit.append(
            s,
            at=ctx.now(),
            actor=username[:64],
            action="auth.throttled",
            subject_type="user",
            subject_id=username[:64],
            details={"source": source, "address": address, "by_user": by_user, "by_address": by_address},
        )
    raise LoginThrottledError(int(policy.login_window.total_seconds() // 60))


def record(s: Session, ctx: Context, username: str, address: str, *, granted: bool) -> None:
    """Inside the login's audit transaction: remember a failure, or clear the user's count on success.

    Old rows of either kind are dropped as they fall out of the window, so the table stays small.
    """
    now = ctx.now()
    stale = now - ctx.policies.access.login_window
    if granted:
        s.execute(
            delete(LoginFailure).where(
                or_(col(LoginFailure.username) == username, col(LoginFailure.at) < stale)
            )
        )
        return
    s.execute(delete(LoginFailure).where(col(LoginFailure.at) < stale))
    s.add(LoginFailure(at=now, username=username[:64], address=address[:64]))


def _count(s: Session, where: object, since: object) -> int:
    stmt = select(func.count()).select_from(LoginFailure).where(where, col(LoginFailure.at) >= since)  # type: ignore[arg-type]
    return int(s.exec(stmt).one())
