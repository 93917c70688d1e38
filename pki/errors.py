"""The one error hierarchy of pkictl.

Every refusal the service makes is a :class:`PkiError`. Each adapter (the CLI, the web app) maps it to its
own output in exactly one place. Messages are English (``message``) and Chinese (``message_zh``): the CLI
prints the first, the clerks' web UI the second.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class PkiError(Exception):
    """Base class: an operation was refused or failed; nothing was written."""

    code = "error"

    def __init__(self, message: str, *, message_zh: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.message_zh = message_zh or message


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field."""

    field: str
    message: str
    message_zh: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ValidationError(PkiError):
    """Input was refused; ``errors`` names each bad field."""

    code = "invalid"

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        if not self.errors:
            raise ValueError("ValidationError needs at least one FieldError")
        super().__init__(
            "invalid input: " + "; ".join(str(e) for e in self.errors),
            message_zh="；".join(e.message_zh for e in self.errors),
        )

    def for_field(self, field: str) -> list[FieldError]:
        return [e for e in self.errors if e.field == field]


@dataclass(frozen=True)
class RowError:
    """The field errors of one data row of a bulk import; ``row`` is the line in the file (header = 1)."""

    row: int
    errors: tuple[FieldError, ...]

    def __str__(self) -> str:
        return f"line {self.row}: " + "; ".join(str(e) for e in self.errors)


class ImportRowsError(PkiError):
    """A bulk import was refused because of bad rows; nothing was imported."""

    code = "invalid"

    def __init__(self, rows: Sequence[RowError], *, total: int) -> None:
        self.rows = tuple(rows)
        self.total = total
        first = "; ".join(str(r) for r in self.rows[:3])
        more = f" (and {len(self.rows) - 3} more bad rows)" if len(self.rows) > 3 else ""
        super().__init__(
            f"{len(self.rows)} of {total} rows are invalid, nothing imported: {first}{more}",
            message_zh=f"共 {total} 行，其中 {len(self.rows)} 行有误，未导入任何记录",
        )


class NotFoundError(PkiError):
    code = "not_found"


class ScopeRefusalError(PkiError):
    """Base of refusals because something belongs to an acceptance point outside the actor's (services/
    scope.py). Each looks exactly like the refusal of something missing (same code and messages, so existence
    does not leak); ``reason`` says why, for the audit trail only."""

    reason = ""


class OutOfScopeError(ScopeRefusalError, NotFoundError):
    """A record of another acceptance point, refused as a missing record is."""

    def __init__(self, missing: NotFoundError, reason: str) -> None:
        NotFoundError.__init__(self, missing.message, message_zh=missing.message_zh)
        self.reason = reason


class PointOutOfScopeError(ScopeRefusalError, ValidationError):
    """An acceptance point the actor may not work for, named for new work: refused as an unknown point is."""

    def __init__(self, unknown: ValidationError, reason: str) -> None:
        ValidationError.__init__(self, unknown.errors)
        self.reason = reason


class AuthenticationError(PkiError):
    """Unknown user, wrong password or disabled account (deliberately not told apart)."""

    code = "authentication"

    def __init__(self) -> None:
        super().__init__("authentication failed", message_zh="用户名或密码错误")


class SessionExpiredError(PkiError):
    """A desk's session token is unknown, expired or revoked: the operator must log in again."""

    code = "session_expired"

    def __init__(self, why: str) -> None:
        super().__init__(
            f"session {why}: log in again with 'pkictl login'", message_zh="会话已失效，请重新登录"
        )
        self.why = why


class PermissionDeniedError(PkiError):
    """The user's roles do not allow the action."""

    code = "forbidden"


class SeparationOfDutiesError(PermissionDeniedError):
    """The user took an earlier step on this request that conflicts with this one."""

    code = "separation_of_duties"


class InvalidTransitionError(PkiError):
    """The request's state does not allow the action."""

    code = "invalid_transition"


class ConflictError(PkiError):
    """The operation clashes with existing data (a duplicate, a concurrent change)."""

    code = "conflict"


class ConfigurationError(PkiError):
    """Settings or policy data are missing or malformed."""

    code = "configuration"


class AuditIntegrityError(PkiError):
    """The audit hash chain does not verify."""

    code = "audit_integrity"


class KeyAccessError(PkiError):
    """A CA key could not be used: wrong passphrase, missing file, unreachable HSM."""

    code = "key_access"


class IssuanceError(PkiError):
    """Policy refused to issue, renew or revoke (validity past the CA, key reuse, unsupported key, …)."""

    code = "issuance_refused"


class TokenError(PkiError):
    """A PKCS#11 token refused or failed: wrong PIN, locked, absent, unsupported mechanism, full."""

    code = "token"

    def __init__(self, message: str, *, message_zh: str | None = None, ckr: str | None = None) -> None:
        super().__init__(message, message_zh=message_zh)
        self.ckr = ckr


class PrerequisiteMissingError(PkiError):
    """A formal request may not be approved: a test → formal rule (cutover.toml) is not met."""

    code = "prerequisite_missing"

    def __init__(self, rule: str, reason: str, reason_zh: str) -> None:
        super().__init__(
            f"approval refused: prerequisite {rule!r} not met ({reason})",
            message_zh=f"不能审核通过：{reason_zh}",
        )
        self.rule = rule
        self.reason = reason


class CutoverNotDueError(PkiError):
    """A cutover run was asked for before the platform's cutover instant (rehearse instead)."""

    code = "cutover_not_due"


class LoginThrottledError(PkiError):
    """Too many failed logins for this user name or from this address within the window (access.toml)."""

    code = "throttled"

    def __init__(self, minutes: int) -> None:
        super().__init__(
            f"too many failed logins; try again in {minutes} minutes",
            message_zh=f"登录失败次数过多，请 {minutes} 分钟后再试",
        )
        self.minutes = minutes


def database_unavailable(error: Exception) -> str | None:
    """The first line of the driver's message if ``error`` is SQLAlchemy's OperationalError (server
    unreachable, database locked): not a refusal, but no bug either; None otherwise. Looked up lazily, so
    that a CLI that never touched the database (``pkictl --help``) never imports SQLAlchemy."""
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is None or not isinstance(error, exc.OperationalError):
        return None
    lines = str(error.orig if error.orig is not None else error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
