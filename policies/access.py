"""Login throttling, session lengths and attachment limits (access.toml), validated at load."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

from pki.errors import ConfigurationError
from policies._load import need, read_toml


@dataclass(frozen=True)
class AccessPolicy:
    login_window: timedelta
    max_failures_per_user: int
    max_failures_per_address: int
    session_idle: timedelta
    session_absolute: timedelta
    desk_idle: timedelta
    desk_absolute: timedelta
    attachment_max_bytes: int
    attachment_kinds: Mapping[str, str]  # kind -> Chinese label


def _positive(table: dict[str, object], key: str, where: str) -> int:
    value: int = need(table, key, int, where)
    if value <= 0:
        raise ConfigurationError(f"{where}: {key!r} must be positive")
    return value


def load_access(directory: Path) -> AccessPolicy:
    data = read_toml(directory, "access.toml")
    login = need(data, "login", dict, "access.toml")
    session = need(data, "session", dict, "access.toml")
    desk = need(data, "desk", dict, "access.toml")
    files = need(data, "attachments", dict, "access.toml")
    kinds = need(files, "kinds", dict, "access.toml [attachments]")
    if not kinds or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in kinds.items()):
        raise ConfigurationError("access.toml [attachments]: kinds must map names to non-empty labels")
    idle = timedelta(minutes=_positive(session, "idle_minutes", "access.toml [session]"))
    absolute = timedelta(hours=_positive(session, "absolute_hours", "access.toml [session]"))
    if absolute < idle:
        raise ConfigurationError(
            "access.toml [session]: absolute_hours must not be shorter than idle_minutes"
        )
    desk_idle = timedelta(minutes=_positive(desk, "idle_minutes", "access.toml [desk]"))
    desk_absolute = timedelta(hours=_positive(desk, "absolute_hours", "access.toml [desk]"))
    if desk_absolute < desk_idle:
        raise ConfigurationError("access.toml [desk]: absolute_hours must not be shorter than idle_minutes")
    return AccessPolicy(
        login_window=timedelta(minutes=_positive(login, "window_minutes", "access.toml [login]")),
        max_failures_per_user=_positive(login, "max_failures_per_user", "access.toml [login]"),
        max_failures_per_address=_positive(login, "max_failures_per_address", "access.toml [login]"),
        session_idle=idle,
        session_absolute=absolute,
        desk_idle=desk_idle,
        desk_absolute=desk_absolute,
        attachment_max_bytes=_positive(files, "max_bytes", "access.toml [attachments]"),
        attachment_kinds=MappingProxyType(dict(kinds)),
    )
