"""The role check, shared by every service that guards a workflow action."""

from __future__ import annotations

from pki.enums import DEAL_LABELS_ZH, Action, Deal
from pki.errors import PermissionDeniedError
from pki.lifecycle import ACTION_LABELS_ZH
from pki.services.context import Actor
from policies.workflow import WorkflowPolicy


def require_role(workflow: WorkflowPolicy, actor: Actor, action: Action, deal: Deal | None = None) -> None:
    """Raise PermissionDeniedError unless one of the actor's roles may take ``action`` on a request of type
    ``deal`` (None: on a request of some type, before the request is read)."""
    deals = list(Deal) if deal is None else [deal]
    if not any(workflow.role_allows(actor.roles, action, d) for d in deals):
        kind = "" if deal is None or deal is Deal.NEW else f" on a {deal.value} deal"
        kind_zh = "" if deal is None or deal is Deal.NEW else f"（{DEAL_LABELS_ZH[deal]}）"
        raise PermissionDeniedError(
            f"user {actor.username!r} has no role that may {action.value}{kind}",
            message_zh=f"当前用户无权执行“{ACTION_LABELS_ZH[action]}”{kind_zh}",
        )


def require_operation_or_deal(
    workflow: WorkflowPolicy, actor: Actor, operation: str, action: Action, deals: tuple[Deal, ...]
) -> None:
    """Raise PermissionDeniedError unless the actor may run ``operation`` directly or take ``action`` (the
    step that carries it out) on a deal of one of ``deals``: checked before anything is looked up."""
    if not any(workflow.role_allows(actor.roles, action, d) for d in deals):
        require_operation(workflow, actor, operation)


def require_operation(workflow: WorkflowPolicy, actor: Actor, operation: str) -> None:
    """Raise PermissionDeniedError unless one of the actor's roles may run ``operation`` (workflow.toml)."""
    if not workflow.operation_allows(actor.roles, operation):
        raise PermissionDeniedError(
            f"user {actor.username!r} has no role that may {operation.replace('_', ' ')}",
            message_zh="当前用户无权执行该操作",
        )
