"""The role check, shared by every service that guards a workflow action."""

from __future__ import annotations

from pki.enums import Action
from pki.errors import PermissionDeniedError
from pki.lifecycle import ACTION_LABELS_ZH
from pki.services.context import Actor
from policies.workflow import WorkflowPolicy


def require_role(workflow: WorkflowPolicy, actor: Actor, action: Action) -> None:
    """Raise PermissionDeniedError unless one of the actor's roles may take ``action``."""
    if not workflow.role_allows(actor.roles, action):
        raise PermissionDeniedError(
            f"user {actor.username!r} has no role that may {action.value}",
            message_zh=f"当前用户无权执行“{ACTION_LABELS_ZH[action]}”",
        )


def require_operation(workflow: WorkflowPolicy, actor: Actor, operation: str) -> None:
    """Raise PermissionDeniedError unless one of the actor's roles may run ``operation`` (workflow.toml)."""
    if not workflow.operation_allows(actor.roles, operation):
        raise PermissionDeniedError(
            f"user {actor.username!r} has no role that may {operation.replace('_', ' ')}",
            message_zh="当前用户无权执行该操作",
        )
