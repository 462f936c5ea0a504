"""Unit tests for the agent state machine."""

from __future__ import annotations

import pytest

from troupe.runtime.agent.state import ALLOWED, AgentState, StateMachine
from troupe.runtime.errors import InvalidTransitionError, ModelVisibleError

S = AgentState

ALLOWED_PAIRS = [(a, b) for a, targets in ALLOWED.items() for b in sorted(targets)]
FORBIDDEN_PAIRS = [(a, b) for a in AgentState for b in AgentState if b not in ALLOWED[a]]


def test_allowed_table_is_complete_and_as_designed():
    assert set(ALLOWED) == set(AgentState)
    assert {k.value: sorted(v) for k, v in ALLOWED.items()} == {
        "idle": ["paused", "running", "terminated"],
        "running": ["error", "idle", "paused", "terminated"],
        "paused": ["idle", "running", "terminated"],
        "error": ["idle", "terminated"],
        "terminated": [],
    }


def test_default_state_is_idle():
    sm = StateMachine("lead")
    assert sm.state is S.IDLE
    assert sm.agent == "lead"


@pytest.mark.parametrize(("current", "target"), ALLOWED_PAIRS)
def test_every_allowed_transition_works(current, target):
    sm = StateMachine("lead", current)
    assert sm.can(target) is True
    assert sm.move(target) is current
    assert sm.state is target


@pytest.mark.parametrize(("current", "target"), FORBIDDEN_PAIRS)
def test_every_forbidden_transition_raises_and_leaves_state(current, target):
    sm = StateMachine("lead", current)
    assert sm.can(target) is False
    with pytest.raises(InvalidTransitionError) as info:
        sm.move(target)
    assert sm.state is current
    err = info.value
    assert err.fields == {"agent": "lead", "current": current.value, "requested": target.value}


@pytest.mark.parametrize(
    ("current", "target", "message"),
    [
        (S.IDLE, S.ERROR, "agent 'lead' cannot go from idle to error; from idle it may go to paused, running, terminated"),
        (S.ERROR, S.RUNNING, "agent 'lead' cannot go from error to running; from error it may go to idle, terminated"),
        (S.PAUSED, S.ERROR, "agent 'lead' cannot go from paused to error; from paused it may go to idle, running, terminated"),
        (S.IDLE, S.IDLE, "agent 'lead' cannot go from idle to idle; from idle it may go to paused, running, terminated"),
    ],
)
def test_forbidden_message_names_current_requested_and_allowed(current, target, message):
    with pytest.raises(InvalidTransitionError) as info:
        StateMachine("lead", current).move(target)
    assert str(info.value) == message
    assert info.value.message == message


@pytest.mark.parametrize("target", list(AgentState))
def test_terminated_allows_nothing(target):
    sm = StateMachine("w", S.TERMINATED)
    assert sm.can(target) is False
    with pytest.raises(InvalidTransitionError) as info:
        sm.move(target)
    assert str(info.value) == (
        f"agent 'w' cannot go from terminated to {target.value}; from terminated it may go to nothing (terminal)"
    )


def test_invalid_transition_is_model_visible():
    assert issubclass(InvalidTransitionError, ModelVisibleError)


def test_lifecycle_sequence():
    sm = StateMachine("lead")
    path = [S.RUNNING, S.PAUSED, S.RUNNING, S.ERROR, S.IDLE, S.RUNNING, S.IDLE, S.TERMINATED]
    prevs = [sm.move(s) for s in path]
    assert prevs == [S.IDLE, S.RUNNING, S.PAUSED, S.RUNNING, S.ERROR, S.IDLE, S.RUNNING, S.IDLE]
    assert sm.state is S.TERMINATED


def test_accepts_state_values_as_strings():
    sm = StateMachine("lead")
    assert sm.can("running") is True  # StrEnum membership by value
    assert sm.move(S("running")) is S.IDLE
    assert sm.state == "running"
