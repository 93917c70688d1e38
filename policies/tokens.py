"""USB key models (tokens.toml): brand and model -> PKCS#11 module and key types; the inventory policy."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pki.enums import RevocationReason, TokenState
from pki.errors import ConfigurationError, FieldError, ValidationError
from policies._load import need, read_toml, str_list, tables

TOKEN_KEY_TYPES = ("ec-p256", "rsa-2048")  # what issuing onto a token can generate
MARKS = ("lost", "destroyed", "returned", "suspended", "reinstated")
REQUIRED_MARKS = ("lost", "destroyed", "returned")  # a tokens.toml without the other two simply lacks them


def _norm(name: str) -> str:
    return re.sub(r"\s+", "", name).casefold()


@dataclass(frozen=True)
class TokenModel:
    name: str
    aliases: tuple[str, ...]
    module: str
    key_types: tuple[str, ...]
    default_key_type: str
    note: str = ""

    def key_type(self, wanted: str | None) -> str:
        """``wanted`` if this model supports it (default: the model's default); ValidationError otherwise."""
        chosen = wanted or self.default_key_type
        if chosen not in self.key_types:
            raise ValidationError(
                [
                    FieldError(
                        "key_type",
                        f"{self.name} cannot generate {chosen}; it supports {', '.join(self.key_types)}",
                        f"该型号USB Key不支持密钥类型 {chosen}",
                    )
                ]
            )
        return chosen


@dataclass(frozen=True)
class MarkRule:
    state: TokenState
    allowed_from: frozenset[TokenState]
    revoke: RevocationReason | None


@dataclass(frozen=True)
class TokenPolicy:
    models: tuple[TokenModel, ...]
    marks: Mapping[str, MarkRule]

    def model(self, name: str) -> TokenModel | None:
        """The model whose name or alias is ``name`` (case and spaces ignored)."""
        key = _norm(name)
        for m in self.models:
            if key in {_norm(m.name), *(_norm(a) for a in m.aliases)}:
                return m
        return None

    def key_type_for(self, model_name: str, wanted: str | None) -> str:
        """The key type to generate for a request's USBKEY model: ``wanted`` if the model supports it, the
        model's default otherwise; for a model not in tokens.toml (a module given by hand) ``wanted`` or
        the first type issuing onto a token can generate."""
        model = self.model(model_name)
        return model.key_type(wanted) if model else (wanted or TOKEN_KEY_TYPES[0])

    def require_model(self, name: str) -> TokenModel:
        found = self.model(name)
        if found is None:
            known = ", ".join(m.name for m in self.models)
            raise ValidationError(
                [
                    FieldError(
                        "usbkey",
                        f"USB key model {name!r} is not in tokens.toml (known: {known}); give --module",
                        "USBKEY 品牌及型号未登记，请指定驱动模块",
                    )
                ]
            )
        return found

    def modules(self) -> tuple[str, ...]:
        """Every distinct module path, in file order."""
        return tuple(dict.fromkeys(m.module for m in self.models))


def load_tokens(directory: Path) -> TokenPolicy:
    data = read_toml(directory, "tokens.toml")
    models: list[TokenModel] = []
    seen: set[str] = set()
    for i, raw in enumerate(tables(data, "model", "tokens.toml")):
        where = f"tokens.toml [[model]] #{i + 1}"
        name = need(raw, "name", str, where).strip()
        aliases = tuple(str_list(raw, "aliases", where)) if "aliases" in raw else ()
        for n in (name, *aliases):
            if not n.strip():
                raise ConfigurationError(f"{where}: names and aliases may not be blank")
            if _norm(n) in seen:
                raise ConfigurationError(f"{where}: the name {n!r} is used by two models")
            seen.add(_norm(n))
        module = need(raw, "module", str, where)
        if not module.startswith("/"):
            raise ConfigurationError(f"{where}: 'module' must be an absolute path, got {module!r}")
        key_types = tuple(str_list(raw, "key_types", where))
        unknown = sorted(set(key_types) - set(TOKEN_KEY_TYPES))
        if unknown or not key_types:
            raise ConfigurationError(f"{where}: key_types must be among {', '.join(TOKEN_KEY_TYPES)}")
        default = need(raw, "default_key_type", str, where)
        if default not in key_types:
            raise ConfigurationError(f"{where}: default_key_type {default!r} is not in its key_types")
        note = need(raw, "note", str, where) if "note" in raw else ""
        models.append(TokenModel(name, aliases, module, key_types, default, note))
    if not models:
        raise ConfigurationError("tokens.toml: at least one [[model]] is needed")
    inventory = need(data, "inventory", dict, "tokens.toml")
    missing, unknown_marks = set(REQUIRED_MARKS) - set(inventory), set(inventory) - set(MARKS)
    if missing or unknown_marks:
        raise ConfigurationError(
            f"tokens.toml [inventory]: needs {', '.join(REQUIRED_MARKS)} and may have only {', '.join(MARKS)}"
        )
    marks: dict[str, MarkRule] = {}
    for mark in (m for m in MARKS if m in inventory):
        where = f"tokens.toml [inventory.{mark}]"
        raw = need(inventory, mark, dict, "tokens.toml [inventory]")
        try:
            state = TokenState(need(raw, "state", str, where))
            allowed = frozenset(TokenState(s) for s in str_list(raw, "from", where))
        except ValueError as e:
            known = ", ".join(s.value for s in TokenState)
            raise ConfigurationError(f"{where}: {e}; token states: {known}") from e
        reason_text = need(raw, "revoke", str, where)
        try:
            reason = RevocationReason(reason_text) if reason_text else None
        except ValueError as e:
            known = ", ".join(r.value for r in RevocationReason)
            raise ConfigurationError(f"{where}: revoke {reason_text!r} unknown; use one of {known}") from e
        marks[mark] = MarkRule(state, allowed, reason)
    _check_suspension(marks)
    return TokenPolicy(tuple(models), MappingProxyType(marks))


def _check_suspension(marks: Mapping[str, MarkRule]) -> None:
    """suspended and reinstated come as a pair that undo each other: reinstating puts back exactly the keys
    suspended, in the state they were suspended from, and neither revokes (a reinstated key's certificates
    must still be good)."""
    present = [m for m in ("suspended", "reinstated") if m in marks]
    if not present:
        return
    if len(present) == 1:
        raise ConfigurationError("tokens.toml [inventory]: suspended and reinstated go together")
    held, back = marks["suspended"], marks["reinstated"]
    if back.allowed_from != {held.state} or held.allowed_from != {back.state}:
        raise ConfigurationError(
            "tokens.toml [inventory.reinstated]: must take a key from the suspended state back to the one "
            f"state suspended applies to (suspended: from {sorted(s.value for s in held.allowed_from)} to "
            f"{held.state.value}; reinstated: from {sorted(s.value for s in back.allowed_from)} to "
            f"{back.state.value})"
        )
    if held.revoke is not None or back.revoke is not None:
        raise ConfigurationError(
            'tokens.toml [inventory.suspended]/[inventory.reinstated]: revoke must be ""'
        )
