"""Shared fakes for the plain-Python cores (blackboard, task registry): what they emit and notify."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from troupe.runtime.clock import FakeClock
from troupe.runtime.events import Payload
from troupe.runtime.ids import AgentId, SessionId
from troupe.runtime.messages import MessageKind

SID = SessionId("s-test")
START = datetime(2026, 1, 1, tzinfo=UTC)


class Recorder:
    """Records what a core emits and who it notifies, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.notes: list[tuple[AgentId, MessageKind, str, dict[str, Any]]] = []

    def emit(self, payload: Payload, /, **fields: Any) -> None:
        data = payload.dump()
        json.dumps(data)  # what a core emits must be JSON-able
        self.events.append((payload.event_type, data, fields))

    def notify(self, agent: AgentId, kind: MessageKind, content: str, data: dict[str, Any]) -> None:
        json.dumps(data)  # notifications become message data: JSON-able too
        self.notes.append((agent, kind, content, data))

    def types(self) -> list[str]:
        return [t for t, _, _ in self.events]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)
