"""Expiry reminders: the windows, the sender and the summary's recipients (notify.toml), validated at load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pki.errors import ConfigurationError
from policies._load import need, read_toml, str_list


@dataclass(frozen=True)
class NotifyPolicy:
    windows_days: tuple[int, ...]  # nearest last: (60, 30, 7)
    sender: str
    summary_to: tuple[str, ...]
    message_id_domain: str

    def window_for(self, days_left: float) -> int | None:
        """The nearest window a certificate with ``days_left`` is inside (None: none yet, or expired)."""
        if days_left <= 0:
            return None
        inside = [w for w in self.windows_days if days_left <= w]
        return min(inside) if inside else None


def load_notify(directory: Path) -> NotifyPolicy:
    data = read_toml(directory, "notify.toml")
    expiry = need(data, "expiry", dict, "notify.toml")
    windows = need(expiry, "windows_days", list, "notify.toml [expiry]")
    if not windows or not all(
        isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 3650 for w in windows
    ):
        raise ConfigurationError(
            "notify.toml [expiry]: 'windows_days' must list whole days between 1 and 3650"
        )
    if len(set(windows)) != len(windows):
        raise ConfigurationError("notify.toml [expiry]: 'windows_days' lists a day twice")
    mail = need(data, "mail", dict, "notify.toml")
    where = "notify.toml [mail]"
    sender: str = need(mail, "sender", str, where)
    domain: str = need(mail, "message_id_domain", str, where)
    if "@" not in sender or not domain or any(c in domain for c in "@<> "):
        raise ConfigurationError(f"{where}: 'sender' needs an address and 'message_id_domain' a domain name")
    to = str_list(mail, "summary_to", where)
    if any("@" not in a for a in to):
        raise ConfigurationError(f"{where}: 'summary_to' must list mail addresses")
    return NotifyPolicy(tuple(sorted(windows, reverse=True)), sender, tuple(to), domain)
