"""People and roles: adding users, authenticating, every attempt audited."""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from pki import audit
from pki.application import single_line
from pki.enums import Role
from pki.errors import (
    AuthenticationError,
    ConflictError,
    FieldError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from pki.models import User
from pki.passwords import hash_password, needs_rehash, verify_password
from pki.services import login_throttle
from pki.services.context import Actor, Context
from pki.services.points import point_named

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 10


class UserService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def add(
        self,
        username: str,
        password: str,
        roles: Iterable[str],
        *,
        actor: Actor | None,
        display_name: str = "",
        point: str | None = None,
    ) -> User:
        """Create a user, at the acceptance point ``point`` (None: a center user, who sees every point's
        work). Needs an admin ``actor``, except for the very first user, who must be an admin.

        Raises ValidationError (bad name, weak password, unknown role or point, bad display name),
        PermissionDeniedError, ConflictError.
        """
        role_set = self._check_new_user(username, password, roles, display_name)
        with self._ctx.denials_recorded(actor, "user.add", "user", username), self._ctx.write() as s:
            count = s.exec(select(func.count()).select_from(User)).one()
            if count == 0:
                if Role.ADMIN.value not in role_set:
                    raise PermissionDeniedError(
                        "the first user must have the admin role", message_zh="第一个用户必须是管理员"
                    )
                actor_name = username
            elif actor is None or Role.ADMIN.value not in self._ctx.resolve(s, actor).roles:
                raise PermissionDeniedError(
                    "only an admin may add users", message_zh="只有管理员可以添加用户"
                )
            else:
                actor_name = actor.username
            if s.exec(select(User).where(User.username == username)).first() is not None:
                raise ConflictError(f"user {username!r} already exists", message_zh=f"用户“{username}”已存在")
            now = self._ctx.now()
            place = point_named(s, point) if point is not None else None
            user = User(
                username=username,
                display_name=_shown(display_name),
                password_hash=hash_password(password),
                roles=",".join(sorted(role_set)),
                created_at=now,
                point_id=place.id if place else None,
            )
            s.add(user)
            s.flush()
            audit.append(
                s,
                at=now,
                actor=actor_name,
                action="user.add",
                subject_type="user",
                subject_id=username,
                details={"roles": sorted(role_set), "point": place.name if place else None}
                | ({"display_name": user.display_name} if display_name else {}),
            )
            return user

    def authenticate(self, username: str, password: str, *, source: str = "cli", address: str = "") -> Actor:
        """Check a password. Success and failure are both audited; failure raises AuthenticationError.

        Too many recent failures for ``username`` or from ``address`` (the client's address, web logins)
        raise LoginThrottledError before the password is looked at (access.toml [login]).
        The slow hash check runs outside the write transaction, so logins never hold up other writers.
        """
        login_throttle.check(self._ctx, username, address, source=source)
        with self._ctx.read() as s:
            user = s.exec(select(User).where(User.username == username)).first()
        ok = verify_password(user.password_hash if user else None, password)
        granted = user is not None and ok and user.active
        new_hash = hash_password(password) if granted and user and needs_rehash(user.password_hash) else None
        reason = "" if granted else "unknown user" if user is None else "inactive" if ok else "bad password"
        with self._ctx.write() as s:
            if new_hash is not None:
                s.execute(update(User).where(col(User.username) == username).values(password_hash=new_hash))
            login_throttle.record(s, self._ctx, username, address, granted=granted)
            audit.append(
                s,
                at=self._ctx.now(),
                actor=username[:64],
                action="auth.login" if granted else "auth.failed",
                subject_type="user",
                subject_id=username[:64],
                details=({"source": source} if granted else {"source": source, "reason": reason})
                | ({"address": address} if address else {}),
            )
        if not granted or user is None:
            raise AuthenticationError()
        return Actor(username=user.username, roles=user.role_set())

    def update(
        self,
        username: str,
        *,
        actor: Actor,
        roles: Iterable[str] | None = None,
        active: bool | None = None,
        password: str | None = None,
        point: str | None = None,
        center: bool = False,
        display_name: str | None = None,
    ) -> User:
        """Change a user's roles, activation, password, point (``center``: no point, sees every point's
        work) or display name (admins only), audited without the password.

        Refuses to leave no active admin, so the system cannot lock itself out.
        """
        errors: list[FieldError] = []
        if display_name is not None:
            errors += _display_name_errors(display_name.strip())
            display_name = _shown(display_name)
        if point is not None and center:
            errors.append(
                FieldError("point", "give a point or make a center user, not both", "受理点设置冲突")
            )
        role_set = None
        if roles is not None:
            role_list = list(roles)
            known = {r.value for r in Role}
            if not role_list or any(r not in known for r in role_list):
                errors.append(
                    FieldError("roles", f"roles must be among {', '.join(sorted(known))}", "角色无效")
                )
            role_set = frozenset(role_list)
        if password is not None and len(password) < MIN_PASSWORD_LENGTH:
            errors.append(
                FieldError(
                    "password",
                    f"at least {MIN_PASSWORD_LENGTH} characters",
                    f"密码至少{MIN_PASSWORD_LENGTH}位",
                )
            )
        if errors:
            raise ValidationError(errors)
        new_hash = hash_password(password) if password is not None else None
        with self._ctx.denials_recorded(actor, "user.update", "user", username), self._ctx.write() as s:
            self._require_admin(s, actor)
            user = s.exec(select(User).where(User.username == username)).one_or_none()
            if user is None:
                raise NotFoundError(f"no user {username!r}", message_zh="用户不存在")
            changed: dict[str, object] = {}
            if role_set is not None and role_set != user.role_set():
                user.roles, changed["roles"] = ",".join(sorted(role_set)), sorted(role_set)
            if active is not None and active != user.active:
                user.active, changed["active"] = active, active
            if new_hash is not None:
                user.password_hash, changed["password"] = new_hash, "reset"
            if point is not None or center:
                place = point_named(s, point) if point is not None else None
                if (place.id if place else None) != user.point_id:
                    user.point_id, changed["point"] = (place.id, place.name) if place else (None, None)
            if display_name is not None and display_name != user.display_name:
                user.display_name, changed["display_name"] = display_name, display_name
            if not changed:
                raise ValidationError([FieldError("user", "nothing to change", "没有修改任何内容")])
            s.add(user)
            s.flush()
            admins = s.exec(select(User).where(col(User.active).is_(True))).all()
            if not any(Role.ADMIN.value in u.role_set() for u in admins):
                raise ConflictError("this would leave no active admin", message_zh="不能移除最后一个管理员")
            audit.append(
                s,
                at=self._ctx.now(),
                actor=actor.username,
                action="user.update",
                subject_type="user",
                subject_id=username,
                details=changed,
            )
            return user

    def active_person(self, username: str) -> tuple[Actor, str] | None:
        """The actor for a signed-in session and the name people know them by, read together (a page names
        who is signed in without another query); None once the user is unknown or deactivated."""
        with self._ctx.read() as s:
            user = s.exec(select(User).where(User.username == username)).one_or_none()
        if user is None or not user.active:
            return None
        return Actor(username=user.username, roles=user.role_set()), user.display_name or user.username

    def display_names(self, usernames: Iterable[str | None]) -> dict[str, str]:
        """{username: the name people know them by}: the display name, else the login name; a name no user
        has (a record older than its user) maps to itself. One query per 500 names, so a page of records
        costs one query whatever the number of rows."""
        wanted: list[str] = sorted({u for u in usernames if u})
        out = {u: u for u in wanted}
        with self._ctx.read() as s:
            for i in range(0, len(wanted), 500):
                rows = s.exec(
                    select(User.username, User.display_name).where(
                        col(User.username).in_(wanted[i : i + 500])
                    )
                ).all()
                out.update({name: shown or name for name, shown in rows})
        return out

    def directory(self, *, actor: Actor) -> list[User]:
        """Every user, for the administration page: admins only (a refusal is recorded)."""
        with self._ctx.denials_recorded(actor, "user.list", "user"), self._ctx.read() as s:
            self._require_admin(s, actor)
            return list(s.exec(select(User).order_by(col(User.username))).all())

    def _require_admin(self, s: Session, actor: Actor) -> None:
        if Role.ADMIN.value not in self._ctx.resolve(s, actor).roles:
            raise PermissionDeniedError("only an admin may manage users", message_zh="只有管理员可以管理用户")

    def list(self) -> list[User]:
        with self._ctx.read() as s:
            return list(s.exec(select(User).order_by(col(User.username))).all())

    def count(self) -> int:
        with self._ctx.read() as s:
            return int(s.exec(select(func.count()).select_from(User)).one())

    @staticmethod
    def _check_new_user(
        username: str, password: str, roles: Iterable[str], display_name: str = ""
    ) -> frozenset[str]:
        errors: list[FieldError] = _display_name_errors(display_name.strip())
        if not USERNAME_RE.match(username):
            errors.append(FieldError("username", "2–64 letters, digits, '.', '_' or '-'", "用户名格式无效"))
        if len(password) < MIN_PASSWORD_LENGTH:
            errors.append(
                FieldError(
                    "password",
                    f"at least {MIN_PASSWORD_LENGTH} characters",
                    f"密码至少{MIN_PASSWORD_LENGTH}位",
                )
            )
        role_list = list(roles)
        known = {r.value for r in Role}
        unknown = [r for r in role_list if r not in known]
        if unknown or not role_list:
            errors.append(FieldError("roles", f"roles must be among {', '.join(sorted(known))}", "角色无效"))
        if errors:
            raise ValidationError(errors)
        return frozenset(role_list)


DISPLAY_NAME_MAX = 64


def _shown(name: str) -> str:
    """A display name as kept: blanks around dropped, runs of blanks inside made one (张  三 -> 张 三)."""
    return " ".join(name.split())


def _display_name_errors(name: str) -> list[FieldError]:
    """A display name is shown on pages and printed on the 附件7: one line, at most 64 characters."""
    if len(name) > DISPLAY_NAME_MAX:
        return [
            FieldError(
                "display_name",
                f"at most {DISPLAY_NAME_MAX} characters",
                f"姓名：不能超过{DISPLAY_NAME_MAX}个字",
            )
        ]
    if not single_line(name):
        return [FieldError("display_name", "must be a single line", "姓名：不能包含换行或控制字符")]
    return []
