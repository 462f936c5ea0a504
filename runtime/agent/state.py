"""The agent state machine with checked transitions."""

from __future__ import annotations

from enum import StrEnum

from troupe.runtime.errors import InvalidTransitionError


class AgentState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    ERROR = "error"
    TERMINATED = "terminated"


ALLOWED: dict[AgentState, frozenset[AgentState]] = {
    AgentState.IDLE: frozenset({AgentState.RUNNING, AgentState.PAUSED, AgentState.TERMINATED}),
    AgentState.RUNNING: frozenset({AgentState.IDLE, AgentState.PAUSED, AgentState.ERROR, AgentState.TERMINATED}),
    AgentState.PAUSED: frozenset({AgentState.IDLE, AgentState.RUNNING, AgentState.TERMINATED}),
    AgentState.ERROR: frozenset({AgentState.IDLE, AgentState.TERMINATED}),
    AgentState.TERMINATED: frozenset(),
}


class StateMachine:
    def __init__(self, agent: str, state: AgentState = AgentState.IDLE) -> None:
        self.agent = agent
        self.state = state

    def can(self, to: AgentState) -> bool:
        return to in ALLOWED[self.state]

    def move(self, to: AgentState) -> AgentState:
        """Move to ``to`` and return the previous state."""
        if to not in ALLOWED[self.state]:
            allowed = ", ".join(sorted(ALLOWED[self.state])) or "nothing (terminal)"
            raise InvalidTransitionError(
                f"agent {self.agent!r} cannot go from {self.state} to {to}; from {self.state} it may go to {allowed}",
                agent=self.agent,
                current=str(self.state),
                requested=str(to),
            )
        prev, self.state = self.state, to
        return prev


__all__ = ["ALLOWED", "AgentState", "StateMachine"]
