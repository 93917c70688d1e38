"""Reading policy TOML files with errors that name the file and the key."""

from __future__ import annotations

import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pki.errors import ConfigurationError

PACKAGED = Path(__file__).resolve().parent


def read_toml(directory: Path, name: str) -> dict[str, Any]:
    path = directory / name
    if not path.is_file():
        path = PACKAGED / name
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigurationError(f"policy file {path}: {e}") from e


def need(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in data:
        raise ConfigurationError(f"{where}: missing key {key!r}")
    value = data[key]
    wrong_subtype = (kind is int and isinstance(value, bool)) or (
        kind is date and isinstance(value, datetime)
    )
    if not isinstance(value, kind) or wrong_subtype:
        raise ConfigurationError(f"{where}: {key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def str_list(data: dict[str, Any], key: str, where: str) -> list[str]:
    value = need(data, key, list, where)
    if not all(isinstance(v, str) for v in value):
        raise ConfigurationError(f"{where}: {key!r} must be a list of strings")
    return list(value)


def tables(data: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """An array of tables ([[key]]); each entry must be a table."""
    entries = need(data, key, list, where)
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ConfigurationError(f"{where}: [[{key}]] entry #{i + 1} must be a table")
    return list(entries)
