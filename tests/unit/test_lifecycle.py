"""Every (state, action) pair of the request state machine: allowed ones land where the workflow says,
every other one is refused."""

from __future__ import annotations

import itertools

import pytest

from pki.enums import Action, RequestState
from pki.errors import InvalidTransitionError
from pki.lifecycle import TERMINAL, Route, actions_from, transition

S, A = RequestState, Action

# Written out independently of pki.lifecycle.TRANSITIONS, from the workflow in DOMAIN.md and issue #2.
EXPECTED = {
    (S.ENTERED, A.EDIT): S.ENTERED,
    (S.ENTERED, A.ACCEPT): S.ACCEPTED,
    (S.ENTERED, A.DISAGREE): S.REJECTED,
    (S.ENTERED, A.CANCEL): S.CANCELLED,
    (S.ACCEPTED, A.COUNTERSIGN): S.COUNTERSIGNED,
    (S.ACCEPTED, A.EDIT): S.ENTERED,
    (S.ACCEPTED, A.CANCEL): S.CANCELLED,
    (S.COUNTERSIGNED, A.APPROVE): S.APPROVED,
    (S.COUNTERSIGNED, A.RETURN): S.RETURNED,
    (S.COUNTERSIGNED, A.REJECT): S.REJECTED,
    (S.COUNTERSIGNED, A.EDIT): S.ENTERED,
    (S.COUNTERSIGNED, A.CANCEL): S.CANCELLED,
    (S.RETURNED, A.EDIT): S.ENTERED,
    (S.RETURNED, A.CANCEL): S.CANCELLED,
    (S.APPROVED, A.ISSUE): S.ISSUED,
    (S.APPROVED, A.CANCEL): S.CANCELLED,
    (S.ISSUED, A.DISTRIBUTE): S.DISTRIBUTED,
}

ALLOWED = sorted(EXPECTED.items(), key=str)
FORBIDDEN = sorted((p for p in itertools.product(S, A) if p not in EXPECTED), key=str)


@pytest.mark.parametrize(("pair", "target"), ALLOWED, ids=[f"{s.value}-{a.value}" for (s, a), _ in ALLOWED])
def test_allowed_transition(pair: tuple[RequestState, Action], target: RequestState) -> None:
    state, action = pair
    assert transition(state, action) is target
    assert action in actions_from(state)


@pytest.mark.parametrize("pair", FORBIDDEN, ids=[f"{s.value}-{a.value}" for s, a in FORBIDDEN])
def test_forbidden_transition(pair: tuple[RequestState, Action]) -> None:
    state, action = pair
    with pytest.raises(InvalidTransitionError) as info:
        transition(state, action)
    assert state.value in info.value.message and action.value in info.value.message
    assert action not in actions_from(state)


def test_terminal_states_allow_nothing() -> None:
    assert {S.DISTRIBUTED, S.REJECTED, S.CANCELLED, S.COMPLETED} == TERMINAL
    for state in TERMINAL:
        assert actions_from(state) == frozenset()


def test_enter_is_never_a_transition() -> None:
    """A request is created in ENTERED; no state can be 'entered' again by ENTER."""
    assert all(A.ENTER not in actions_from(s) for s in S)


# A deal that issues nothing and needs acceptance only (an unlock, a hold: workflow.toml [deals]).
SHORT = Route(skips=frozenset({A.COUNTERSIGN, A.APPROVE}), finish=A.COMPLETE)


def test_a_short_route_skips_its_optional_steps_and_completes() -> None:
    assert transition(S.ENTERED, A.ACCEPT, SHORT) is S.APPROVED
    assert actions_from(S.APPROVED, SHORT) == {A.COMPLETE, A.CANCEL}
    assert transition(S.APPROVED, A.COMPLETE, SHORT) is S.COMPLETED
    for refused in (A.ISSUE, A.COUNTERSIGN, A.APPROVE):
        with pytest.raises(InvalidTransitionError):
            transition(S.APPROVED if refused is A.ISSUE else S.ACCEPTED, refused, SHORT)


def test_a_route_without_countersignature_goes_from_acceptance_to_review() -> None:
    review_only = Route(skips=frozenset({A.COUNTERSIGN}))
    assert transition(S.ENTERED, A.ACCEPT, review_only) is S.COUNTERSIGNED
    assert transition(S.COUNTERSIGNED, A.APPROVE, review_only) is S.APPROVED
    assert A.COMPLETE not in actions_from(S.APPROVED, review_only)


def test_every_non_terminal_state_is_reachable_and_can_move() -> None:
    reachable = {S.ENTERED} | set(EXPECTED.values()) | {transition(S.APPROVED, A.COMPLETE, SHORT)}
    assert reachable == set(S)
    assert all(actions_from(s) for s in set(S) - TERMINAL)
