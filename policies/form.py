"""Form rules that are policy rather than format (form.toml) and the province table (provinces.toml)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

from pki.errors import ConfigurationError
from policies._load import need, read_toml, str_list, tables


@dataclass(frozen=True)
class FormPolicy:
    validity_months: tuple[int, ...]
    earliest_application_date: date


@dataclass(frozen=True)
class Province:
    code: str
    name: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class ProvinceTable:
    by_code: Mapping[str, Province]
    by_name: Mapping[str, Province]  # canonical names and aliases

    def lookup(self, name: str) -> Province | None:
        return self.by_name.get(name.strip())

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Canonical names in the standard administrative order (GB/T 2260, the order of provinces.toml):
        what every list and filter shows, never code-point order (上海, 云南, 内蒙古, 北京 …)."""
        return tuple(p.name for p in self.by_code.values())

    def order(self, name: str) -> int:
        """Sort key putting ``name`` (a canonical name or an alias) in the standard order; unknown names
        after every known one."""
        found = self.lookup(name)
        return self._rank[found.code] if found else len(self._rank)

    @cached_property
    def _rank(self) -> Mapping[str, int]:
        return {code: i for i, code in enumerate(self.by_code)}


def load_form(directory: Path) -> FormPolicy:
    data = read_toml(directory, "form.toml")
    months = need(data, "validity_months", list, "form.toml")
    if not months or not all(isinstance(m, int) and not isinstance(m, bool) and 0 < m <= 120 for m in months):
        raise ConfigurationError("form.toml: validity_months must be a non-empty list of 1..120")
    earliest = need(data, "earliest_application_date", date, "form.toml")
    return FormPolicy(validity_months=tuple(sorted(set(months))), earliest_application_date=earliest)


def load_provinces(directory: Path) -> ProvinceTable:
    data = read_toml(directory, "provinces.toml")
    by_code: dict[str, Province] = {}
    by_name: dict[str, Province] = {}
    for i, raw in enumerate(tables(data, "province", "provinces.toml")):
        where = f"provinces.toml [[province]] #{i + 1}"
        p = Province(
            code=need(raw, "code", str, where),
            name=need(raw, "name", str, where),
            aliases=tuple(str_list(raw, "aliases", where)) if "aliases" in raw else (),
        )
        if not re.fullmatch(r"[0-9]{2}", p.code):
            raise ConfigurationError(f"{where}: code must be two digits")
        if p.code in by_code:
            raise ConfigurationError(f"{where}: duplicate code {p.code}")
        by_code[p.code] = p
        for n in (p.name, *p.aliases):
            if n in by_name:
                raise ConfigurationError(f"{where}: name {n!r} used twice")
            by_name[n] = p
    return ProvinceTable(by_code=MappingProxyType(by_code), by_name=MappingProxyType(by_name))
