"""Roles per action and separation of duties, as data (workflow.toml) with small pure evaluation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pki.enums import ISSUING_DEALS, AccessType, Action, Deal, Role
from pki.errors import ConfigurationError
from pki.lifecycle import FULL_ROUTE, OPTIONAL_STEPS, Route
from policies._load import need, read_toml, str_list, tables

# Operations outside the request state machine, guarded by role only.
OPERATIONS = (
    "revoke",
    "renew",
    "crl_publish",
    "ca_init",
    "token_mark",
    "token_clean",
    "cutover",
    "party_import",
    "evidence_record",
    "attach",
    "read_attachments",
    "read_evidence",
    "notify",
    "token_admin",
    "hold",
    "token_stock",
    "point_admin",
)


@dataclass(frozen=True)
class SeparationRule:
    name: str
    did: frozenset[Action]
    may_not: frozenset[Action]
    reason: str
    reason_zh: str


@dataclass(frozen=True)
class AcceptancePolicy:
    """What agreeing to accept a request needs ([acceptance])."""

    required_attachments: Mapping[AccessType, tuple[str, ...]]  # attachment kinds, per access type
    confirm_uscc_name_conflict: bool

    def attachments_for(self, access_type: AccessType) -> tuple[str, ...]:
        return self.required_attachments.get(access_type, ())


@dataclass(frozen=True)
class DealPolicy:
    """One deal type ([deals.<type>]): its way through the state machine and who takes its steps where
    that differs from [actions]."""

    route: Route
    roles: Mapping[Action, frozenset[Role]]


@dataclass(frozen=True)
class WorkflowPolicy:
    roles_for: Mapping[Action, frozenset[Role]]
    separation: tuple[SeparationRule, ...]
    operations: Mapping[str, frozenset[Role]]
    acceptance: AcceptancePolicy
    deals: Mapping[Deal, DealPolicy] = field(default_factory=lambda: MappingProxyType({}))

    def role_allows(self, roles: Iterable[str], action: Action, deal: Deal = Deal.NEW) -> bool:
        return not self.roles_of(action, deal).isdisjoint(roles)

    def roles_of(self, action: Action, deal: Deal = Deal.NEW) -> frozenset[Role]:
        """The roles that may take ``action`` on a request of type ``deal``."""
        policy = self.deals.get(deal)
        if policy is not None and action in policy.roles:
            return policy.roles[action]
        return self.roles_for.get(action, frozenset())

    def route(self, deal: Deal) -> Route:
        """The steps a deal of this type takes (all of them for a type the policy does not name)."""
        policy = self.deals.get(deal)
        if policy is not None:
            return policy.route
        return FULL_ROUTE if deal in ISSUING_DEALS else Route(finish=Action.COMPLETE)

    def operation_allows(self, roles: Iterable[str], operation: str) -> bool:
        return not self.operations.get(operation, frozenset()).isdisjoint(roles)

    def conflict(self, earlier_actions: Iterable[Action], action: Action) -> SeparationRule | None:
        """The first rule broken if a person who took ``earlier_actions`` on a request now takes ``action``."""
        earlier = frozenset(earlier_actions)
        for rule in self.separation:
            if action in rule.may_not and not earlier.isdisjoint(rule.did):
                return rule
        return None


def _actions(values: list[str], where: str) -> frozenset[Action]:
    try:
        return frozenset(Action(v) for v in values)
    except ValueError as e:
        raise ConfigurationError(f"{where}: {e}; known actions: {', '.join(a.value for a in Action)}") from e


def load_workflow(directory: Path) -> WorkflowPolicy:
    data = read_toml(directory, "workflow.toml")
    table = need(data, "actions", dict, "workflow.toml")
    roles_for: dict[Action, frozenset[Role]] = {}
    for action in _actions(list(table), "workflow.toml [actions]"):
        names = str_list(table, action.value, "workflow.toml [actions]")
        roles_for[action] = _roles(names, f"[actions] {action.value}")
    missing = set(Action) - set(roles_for)
    if missing:
        raise ConfigurationError(f"workflow.toml [actions]: no roles for {', '.join(sorted(missing))}")
    rules = []
    for i, raw in enumerate(tables(data, "separation", "workflow.toml")):
        where = f"workflow.toml [[separation]] #{i + 1}"
        rules.append(
            SeparationRule(
                name=need(raw, "name", str, where),
                did=_actions(str_list(raw, "did", where), where),
                may_not=_actions(str_list(raw, "may_not", where), where),
                reason=need(raw, "reason", str, where),
                reason_zh=need(raw, "reason_zh", str, where),
            )
        )
    operations: dict[str, frozenset[Role]] = {}
    table_ops = need(data, "operations", dict, "workflow.toml")
    for name in OPERATIONS:
        operations[name] = _roles(
            str_list(table_ops, name, "workflow.toml [operations]"), f"[operations] {name}"
        )
    unknown_ops = sorted(set(table_ops) - set(OPERATIONS))
    if unknown_ops:
        raise ConfigurationError(f"workflow.toml [operations]: unknown operation {', '.join(unknown_ops)}")
    return WorkflowPolicy(
        roles_for=MappingProxyType(roles_for),
        separation=tuple(rules),
        operations=MappingProxyType(operations),
        acceptance=_acceptance(data),
        deals=_deals(data),
    )


def _deals(data: dict[str, object]) -> Mapping[Deal, DealPolicy]:
    """[deals.<type>]: ``steps`` (the optional steps it needs: countersign, approve) and ``roles`` (per
    action, overriding [actions]). A type not named takes every step with the roles of [actions]."""
    table = data.get("deals", {})
    if not isinstance(table, dict):
        raise ConfigurationError("workflow.toml [deals] must be a table of deal types")
    optional = {a.value: a for a in OPTIONAL_STEPS.values()}
    out: dict[Deal, DealPolicy] = {}
    for name, raw in table.items():
        where = f"workflow.toml [deals.{name}]"
        try:
            deal = Deal(name)
        except ValueError:
            known = ", ".join(d.value for d in Deal)
            raise ConfigurationError(f"{where}: unknown deal type; known: {known}") from None
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{where} must be a table")
        unknown = sorted(set(raw) - {"steps", "roles"})
        if unknown:
            raise ConfigurationError(f"{where}: unknown key {', '.join(unknown)}")
        steps = str_list(raw, "steps", where)
        bad = sorted(set(steps) - set(optional))
        if bad:
            raise ConfigurationError(
                f"{where} steps: {', '.join(bad)} cannot be chosen; the optional steps are countersign, approve"
            )
        roles_raw = raw.get("roles", {})
        if not isinstance(roles_raw, dict):
            raise ConfigurationError(f"{where}: 'roles' must be a table of action = [roles]")
        roles = {
            action: _roles(str_list(roles_raw, action.value, where), f"[deals.{name}] roles")
            for action in _actions(list(roles_raw), f"{where} roles")
        }
        finish = Action.ISSUE if deal in ISSUING_DEALS else Action.COMPLETE
        skips = frozenset(a for v, a in optional.items() if v not in steps)
        out[deal] = DealPolicy(Route(skips, finish), MappingProxyType(roles))
    return MappingProxyType(out)


def _acceptance(data: dict[str, object]) -> AcceptancePolicy:
    """[acceptance]; absent, nothing extra is needed (an older policy directory)."""
    where = "workflow.toml [acceptance]"
    table = data.get("acceptance", {})
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where} must be a table")
    unknown = sorted(set(table) - {"required_attachments", "confirm_uscc_name_conflict"})
    if unknown:
        raise ConfigurationError(f"{where}: unknown key {', '.join(unknown)}")
    raw = table.get("required_attachments", {})
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where}: 'required_attachments' must be a table of access types")
    required: dict[AccessType, tuple[str, ...]] = {}
    for name in raw:
        try:
            access = AccessType(name)
        except ValueError as e:
            known = ", ".join(a.value for a in AccessType)
            raise ConfigurationError(f"{where} required_attachments: {e}; known: {known}") from e
        required[access] = tuple(str_list(raw, name, f"{where} required_attachments"))
    confirm = table.get("confirm_uscc_name_conflict", False)
    if not isinstance(confirm, bool):
        raise ConfigurationError(f"{where}: 'confirm_uscc_name_conflict' must be true or false")
    return AcceptancePolicy(MappingProxyType(required), confirm)


def _roles(names: list[str], where: str) -> frozenset[Role]:
    try:
        return frozenset(Role(n) for n in names)
    except ValueError as e:
        raise ConfigurationError(
            f"workflow.toml {where}: {e}; known roles: {', '.join(r.value for r in Role)}"
        ) from e
