"""CA hierarchy and end-entity profile policy (ca.toml, profiles.toml), validated at load."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pki.ca.keys import KEY_ALGORITHMS, is_sm2
from pki.errors import ConfigurationError
from policies._load import need, read_toml, str_list

KINDS = ("test", "formal")
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")


@dataclass(frozen=True)
class CaName:
    common_name: str
    lifetime_years: int
    key_algorithm: str  # this CA's key type (and so its signature algorithm); its OCSP signer's too


@dataclass(frozen=True)
class CaPolicy:
    country: str
    organization: str
    key_algorithm: str
    root: CaName
    issuing: Mapping[str, CaName]  # kind -> issuing CA
    ocsp_lifetime_days: int
    ocsp_response_validity_hours: int
    crl_base: str
    ocsp_base: str
    ca_issuers_base: str
    crl_next_update_hours: int
    renewal_window_days: int  # renewable from this many days before the end …
    revoke_superseded: str  # "issue" | "distribute" | "never"
    renewal_after_expiry_days: int = 0  # … to this many days after it
    renewal_carry_over: bool = False  # renewed before the end: the months count from the old not-after
    key_store: str = "file"  # "file" | "pkcs11"
    hold_max_days: int = 90  # a hold (冻结) left longer becomes a revocation at the next CRL publication
    hold_expiry_reason: str = "cessationOfOperation"
    # 补办（损坏）: within this many months of the key's first issuance the new certificate keeps the old not-after
    replacement_warranty_months: int = 12
    change_revoke_reason: str = (
        "affiliationChanged"  # 变更: the old certificate's reason at the new one's hand-over
    )
    pkcs11_module: str = ""
    pkcs11_token_label: str = ""

    def algorithm_for(self, slug: str) -> str:
        """The key type of CA ``slug`` (root, an issuing kind, or an OCSP signer ocsp-CA, which signs with
        the algorithm of the CA it answers for)."""
        ca = slug.removeprefix("ocsp-")
        return self.root.key_algorithm if ca == "root" else self.issuing[ca].key_algorithm

    def crl_url(self, ca: str) -> str:
        return f"{self.crl_base.rstrip('/')}/{ca}.crl"

    def ocsp_url(self, ca: str) -> str:
        return f"{self.ocsp_base.rstrip('/')}/{ca}"

    def ca_issuers_url(self, ca: str) -> str:
        return f"{self.ca_issuers_base.rstrip('/')}/{ca}.cer"


@dataclass(frozen=True)
class Kind:
    name: str
    issuing_ca: str
    policy_oid: str
    label_zh: str


@dataclass(frozen=True)
class ProfilePolicy:
    kinds: Mapping[str, Kind]
    organization_code_oid: str
    organization_identifier: bool
    allowed_keys: tuple[str, ...]


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    return need(data, key, dict, where)  # type: ignore[no-any-return]


def _positive(data: dict[str, Any], key: str, where: str, upper: int) -> int:
    value: int = need(data, key, int, where)
    if not 0 < value <= upper:
        raise ConfigurationError(f"{where}: {key!r} must be between 1 and {upper}")
    return value


def _algorithm(value: object, where: str) -> str:
    if value not in KEY_ALGORITHMS:
        raise ConfigurationError(f"{where}: key_algorithm must be one of {', '.join(KEY_ALGORITHMS)}")
    return str(value)


def _name(data: dict[str, Any], where: str, default_algorithm: str) -> CaName:
    cn = need(data, "common_name", str, where)
    if not 0 < len(cn) <= 64:
        raise ConfigurationError(f"{where}: 'common_name' must be 1..64 characters")
    return CaName(
        common_name=cn,
        lifetime_years=_positive(data, "lifetime_years", where, 50),
        key_algorithm=_algorithm(data.get("key_algorithm", default_algorithm), where),
    )


def _url(data: dict[str, Any], key: str, where: str) -> str:
    value: str = need(data, key, str, where)
    if not _URL.match(value):
        raise ConfigurationError(f"{where}: {key!r} must be an http(s) URL, got {value!r}")
    return value


def _days(table: dict[str, Any], key: str, where: str) -> int:
    """An optional whole number of days, 0 to 3650 (absent: 0)."""
    value = table.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3650:
        raise ConfigurationError(f"{where}: {key!r} must be a whole number of days from 0 to 3650")
    return value


def _warranty(table: dict[str, Any]) -> int:
    value = table.get("warranty_months", 12)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 120:
        raise ConfigurationError(
            "ca.toml [replacement]: 'warranty_months' must be a whole number from 0 to 120"
        )
    return value


def _flag(table: dict[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfigurationError(f"{where}: {key!r} must be true or false")
    return value


# What a hold becomes once it has lasted longer than [hold] max_days (RFC 5280 reason names).
HOLD_EXPIRY_REASONS = ("cessationOfOperation", "keyCompromise", "privilegeWithdrawn", "unspecified")
# What the old certificate of a change (变更) is revoked as.
CHANGE_REVOKE_REASONS = ("affiliationChanged", "superseded")


def load_ca(directory: Path) -> CaPolicy:
    data = read_toml(directory, "ca.toml")
    h = _table(data, "hierarchy", "ca.toml")
    algorithm = _algorithm(need(h, "key_algorithm", str, "ca.toml [hierarchy]"), "ca.toml [hierarchy]")
    issuing = _table(data, "issuing", "ca.toml")
    if sorted(issuing) != sorted(KINDS):
        raise ConfigurationError(f"ca.toml [issuing]: needs exactly the kinds {', '.join(KINDS)}")
    urls = _table(data, "urls", "ca.toml")
    renewal = _table(data, "renewal", "ca.toml")
    revoke = need(renewal, "revoke_superseded", str, "ca.toml [renewal]")
    if revoke not in ("issue", "distribute", "never"):
        raise ConfigurationError(
            "ca.toml [renewal]: revoke_superseded must be 'issue', 'distribute' or 'never'"
        )
    hold = data.get("hold", {})
    hold_reason = hold.get("expiry_reason", "cessationOfOperation")
    if hold_reason not in HOLD_EXPIRY_REASONS:
        raise ConfigurationError(
            f"ca.toml [hold]: expiry_reason must be one of {', '.join(HOLD_EXPIRY_REASONS)}"
        )
    replacement = data.get("replacement", {})
    change = data.get("change", {})
    change_reason = change.get("revoke_reason", "affiliationChanged")
    if change_reason not in CHANGE_REVOKE_REASONS:
        raise ConfigurationError(
            f"ca.toml [change]: revoke_reason must be one of {', '.join(CHANGE_REVOKE_REASONS)}"
        )
    keys = _table(data, "keys", "ca.toml")
    store = need(keys, "store", str, "ca.toml [keys]")
    if store not in ("file", "pkcs11"):
        raise ConfigurationError("ca.toml [keys]: store must be 'file' or 'pkcs11'")
    root = _name(_table(data, "root", "ca.toml"), "ca.toml [root]", algorithm)
    issuing_names = {
        k: _name(_table(issuing, k, "ca.toml [issuing]"), f"ca.toml [issuing.{k}]", algorithm) for k in KINDS
    }
    if store == "pkcs11" and any(is_sm2(n.key_algorithm) for n in (root, *issuing_names.values())):
        # SoftHSM2 has no SM2 mechanism and every vendor's SM2 mechanism has its own number: not mapped yet.
        raise ConfigurationError(
            "ca.toml [keys]: SM2 CA keys are kept in files (store = 'file'); SM2 through PKCS#11 needs a"
            " vendor mechanism that pkictl does not map yet"
        )
    country = need(h, "country", str, "ca.toml [hierarchy]")
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise ConfigurationError("ca.toml [hierarchy]: country must be two capital letters")
    return CaPolicy(
        country=country,
        organization=need(h, "organization", str, "ca.toml [hierarchy]"),
        key_algorithm=algorithm,
        root=root,
        issuing=MappingProxyType(issuing_names),
        ocsp_lifetime_days=_positive(
            _table(data, "ocsp", "ca.toml"), "lifetime_days", "ca.toml [ocsp]", 3650
        ),
        ocsp_response_validity_hours=_positive(
            _table(data, "ocsp", "ca.toml"), "response_validity_hours", "ca.toml [ocsp]", 24 * 7
        ),
        crl_base=_url(urls, "crl_base", "ca.toml [urls]"),
        ocsp_base=_url(urls, "ocsp_base", "ca.toml [urls]"),
        ca_issuers_base=_url(urls, "ca_issuers_base", "ca.toml [urls]"),
        crl_next_update_hours=_positive(
            _table(data, "crl", "ca.toml"), "next_update_hours", "ca.toml [crl]", 24 * 31
        ),
        renewal_window_days=_positive(renewal, "window_days", "ca.toml [renewal]", 3650),
        renewal_after_expiry_days=_days(renewal, "after_expiry_days", "ca.toml [renewal]"),
        renewal_carry_over=_flag(renewal, "carry_over", "ca.toml [renewal]"),
        revoke_superseded=revoke,
        key_store=store,
        hold_max_days=_positive(hold, "max_days", "ca.toml [hold]", 3650) if "max_days" in hold else 90,
        hold_expiry_reason=hold_reason,
        replacement_warranty_months=_warranty(replacement),
        change_revoke_reason=change_reason,
        pkcs11_module=need(keys, "pkcs11_module", str, "ca.toml [keys]"),
        pkcs11_token_label=need(keys, "pkcs11_token_label", str, "ca.toml [keys]"),
    )


MAX_ARC = 2**28 - 1  # RFC 5280 Appendix B: what relying parties are asked to support


def _oid(data: dict[str, Any], key: str, where: str) -> str:
    value: str = need(data, key, str, where)
    if not _OID.match(value):
        raise ConfigurationError(f"{where}: {key!r} is not a dotted OID: {value!r}")
    if any(int(arc) > MAX_ARC for arc in value.split(".")):
        raise ConfigurationError(
            f"{where}: {key!r} has an arc above 2^28-1, which relying parties may reject"
        )
    return value


def load_profiles(directory: Path) -> ProfilePolicy:
    data = read_toml(directory, "profiles.toml")
    raw_kinds = _table(data, "kinds", "profiles.toml")
    if sorted(raw_kinds) != sorted(KINDS):
        raise ConfigurationError(f"profiles.toml [kinds]: needs exactly {', '.join(KINDS)}")
    kinds: dict[str, Kind] = {}
    for name in KINDS:
        where = f"profiles.toml [kinds.{name}]"
        k = _table(raw_kinds, name, "profiles.toml [kinds]")
        ca = need(k, "issuing_ca", str, where)
        if ca not in KINDS:
            raise ConfigurationError(f"{where}: issuing_ca must be one of {', '.join(KINDS)}")
        kinds[name] = Kind(
            name=name,
            issuing_ca=ca,
            policy_oid=_oid(k, "policy_oid", where),
            label_zh=need(k, "label_zh", str, where),
        )
    if len({k.policy_oid for k in kinds.values()}) != len(kinds):
        raise ConfigurationError("profiles.toml [kinds]: each kind needs its own policy_oid")
    if len({k.issuing_ca for k in kinds.values()}) != len(kinds):
        raise ConfigurationError("profiles.toml [kinds]: each kind needs its own issuing CA")
    ee = _table(data, "end_entity", "profiles.toml")
    keys = str_list(ee, "allowed_keys", "profiles.toml [end_entity]")
    unknown = sorted(set(keys) - set(KEY_ALGORITHMS))
    if unknown or not keys:
        raise ConfigurationError(
            f"profiles.toml [end_entity]: allowed_keys must be among {', '.join(KEY_ALGORITHMS)}"
        )
    return ProfilePolicy(
        kinds=MappingProxyType(kinds),
        organization_code_oid=_oid(ee, "organization_code_oid", "profiles.toml [end_entity]"),
        organization_identifier=need(ee, "organization_identifier", bool, "profiles.toml [end_entity]"),
        allowed_keys=tuple(keys),
    )
