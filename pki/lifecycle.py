"""The one request state machine: which action moves a request from which state to which.

Only the service calls :func:`transition`; views and commands never set a state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pki.enums import STATE_LABELS_ZH, Action, RequestState
from pki.errors import InvalidTransitionError

S = RequestState
A = Action

# (state, action) -> next state. ENTER creates a request and so has no source state.
TRANSITIONS: Mapping[tuple[RequestState, Action], RequestState] = MappingProxyType(
    {
        (S.ENTERED, A.EDIT): S.ENTERED,
        (S.ENTERED, A.ACCEPT): S.ACCEPTED,
        (S.ENTERED, A.DISAGREE): S.REJECTED,
        (S.ENTERED, A.CANCEL): S.CANCELLED,
        # An edit after acceptance voids it: the request goes back to the acceptor.
        (S.ACCEPTED, A.EDIT): S.ENTERED,
        (S.ACCEPTED, A.COUNTERSIGN): S.COUNTERSIGNED,
        (S.ACCEPTED, A.CANCEL): S.CANCELLED,
        (S.COUNTERSIGNED, A.EDIT): S.ENTERED,
        (S.COUNTERSIGNED, A.APPROVE): S.APPROVED,
        (S.COUNTERSIGNED, A.RETURN): S.RETURNED,
        (S.COUNTERSIGNED, A.REJECT): S.REJECTED,
        (S.COUNTERSIGNED, A.CANCEL): S.CANCELLED,
        (S.RETURNED, A.EDIT): S.ENTERED,
        (S.RETURNED, A.CANCEL): S.CANCELLED,
        (S.APPROVED, A.ISSUE): S.ISSUED,
        (S.APPROVED, A.CANCEL): S.CANCELLED,
        (S.ISSUED, A.DISTRIBUTE): S.DISTRIBUTED,
        # A deal that issues nothing (unlock, hold, release, revoke) is carried out instead of issued.
        (S.APPROVED, A.COMPLETE): S.COMPLETED,
    }
)

TERMINAL: frozenset[RequestState] = frozenset({S.DISTRIBUTED, S.REJECTED, S.CANCELLED, S.COMPLETED})

# The steps a deal type may leave out (policies/workflow.toml [deals]), by the state each waits in.
OPTIONAL_STEPS: Mapping[RequestState, Action] = MappingProxyType(
    {S.ACCEPTED: A.COUNTERSIGN, S.COUNTERSIGNED: A.APPROVE}
)
# How a request ends: a certificate is issued (then distributed), or the deal is carried out.
FINISHES = frozenset({A.ISSUE, A.COMPLETE})


@dataclass(frozen=True)
class Route:
    """One deal type's way through the state machine: the optional steps it skips and how it finishes."""

    skips: frozenset[Action] = frozenset()  # of OPTIONAL_STEPS' actions
    finish: Action = A.ISSUE  # a FINISHES action

    def admits(self, action: Action) -> bool:
        return action not in self.skips and (action not in FINISHES or action is self.finish)


FULL_ROUTE = Route()

ACTION_LABELS_ZH: Mapping[Action, str] = MappingProxyType(
    {
        A.ENTER: "录入",
        A.EDIT: "修改",
        A.ACCEPT: "受理（同意）",
        A.DISAGREE: "受理（不同意）",
        A.COUNTERSIGN: "负责人签字",
        A.APPROVE: "审核通过",
        A.RETURN: "退回修改",
        A.REJECT: "审核拒绝",
        A.ISSUE: "签发",
        A.DISTRIBUTE: "分发",
        A.CANCEL: "撤销",
        A.COMPLETE: "办理",
    }
)


def actions_from(state: RequestState, route: Route = FULL_ROUTE) -> frozenset[Action]:
    """Every action the state machine allows in ``state`` on ``route`` (roles and duties are checked
    elsewhere)."""
    return frozenset(a for (s, a) in TRANSITIONS if s is state and route.admits(a))


def transition(state: RequestState, action: Action, route: Route = FULL_ROUTE) -> RequestState:
    """The state after ``action`` on ``route``, past any optional step the route skips; raises
    InvalidTransitionError when ``state`` does not allow it."""
    after = TRANSITIONS.get((state, action)) if route.admits(action) else None
    if after is None:
        raise InvalidTransitionError(
            f"cannot {action.value} a request that is {state.value}",
            message_zh=f"当前状态“{STATE_LABELS_ZH[state]}”不允许“{ACTION_LABELS_ZH[action]}”",
        )
    while (step := OPTIONAL_STEPS.get(after)) is not None and step in route.skips:
        after = TRANSITIONS[(after, step)]
    return after
