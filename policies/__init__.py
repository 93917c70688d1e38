"""Policy data (TOML beside this file) and the small pure code that loads and evaluates it.

No database, no web framework, no PKCS#11 here. A directory given to :func:`load_policies` overrides the
packaged files one by one (a file missing there falls back to the packaged default).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pki.errors import ConfigurationError
from policies._load import PACKAGED
from policies.access import AccessPolicy, load_access
from policies.audit import AuditPolicy, load_audit
from policies.ca import CaPolicy, ProfilePolicy, load_ca, load_profiles
from policies.cutover import CutoverPolicy, load_cutover
from policies.form import FormPolicy, ProvinceTable, load_form, load_provinces
from policies.notify import NotifyPolicy, load_notify
from policies.tokens import TokenPolicy, load_tokens
from policies.workflow import WorkflowPolicy, load_workflow


@dataclass(frozen=True)
class Policies:
    workflow: WorkflowPolicy
    form: FormPolicy
    provinces: ProvinceTable
    ca: CaPolicy
    profiles: ProfilePolicy
    cutover: CutoverPolicy
    tokens: TokenPolicy
    access: AccessPolicy
    audit: AuditPolicy
    notify: NotifyPolicy


def load_policies(directory: Path | None = None) -> Policies:
    d = directory or PACKAGED
    policies = Policies(
        workflow=load_workflow(d),
        form=load_form(d),
        provinces=load_provinces(d),
        ca=load_ca(d),
        profiles=load_profiles(d),
        cutover=load_cutover(d),
        tokens=load_tokens(d),
        access=load_access(d),
        audit=load_audit(d),
        notify=load_notify(d),
    )
    unknown = sorted(policies.cutover.fast_track_provinces - set(policies.provinces.by_name))
    if unknown:
        raise ConfigurationError(
            f"cutover.toml: fast_track_provinces has unknown provinces {', '.join(unknown)}"
        )
    kinds = policies.access.attachment_kinds
    for access, required in policies.workflow.acceptance.required_attachments.items():
        missing = sorted(set(required) - set(kinds))
        if missing:
            raise ConfigurationError(
                f"workflow.toml [acceptance] required_attachments.{access.value}: unknown attachment kind "
                f"{', '.join(missing)} (access.toml [attachments] kinds: {', '.join(kinds)})"
            )
    return policies


__all__ = ["Policies", "load_policies"]
