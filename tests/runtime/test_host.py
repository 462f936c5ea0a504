"""The host core's routing, without Ray: local delivery, forwarding, closed sessions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.runtime.teams import call, team
from troupe.actors.transport import RayTransport
from troupe.runtime.agent.core import user_message
from troupe.runtime.errors import UnknownAgentError
from troupe.runtime.events import ListSink
from troupe.runtime.ids import AgentId, RunId, SessionId
from troupe.runtime.messages import Envelope
from troupe.runtime.session.host import HostCore
from troupe.runtime.session.spec import SessionSpec


class RecordingTransport:
    def __init__(self) -> None:
        self.delivered: list[tuple[str, str]] = []
        self.calls: list[tuple[str, str, str]] = []

    async def deliver(self, session_id: SessionId, agent: AgentId, envelope: Envelope) -> bool:
        self.delivered.append((str(session_id), str(agent)))
        return True

    async def call(self, session_id: SessionId, target: AgentId, method: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((str(session_id), str(target), method))
        return "remote"


def spec() -> SessionSpec:
    cfg = team([{"id": "a"}, {"id": "b"}], scripts={"*": []})
    return SessionSpec(session_id=SessionId.new(), run_id=RunId.new(), team=cfg)


async def test_local_guests_are_served_in_process_and_others_are_forwarded() -> None:
    transport = RecordingTransport()
    host = HostCore(sink=ListSink(), transport=transport)
    sp = spec()
    await host.start_session(sp, ["a"])  # "b" and the services live elsewhere (dedicated placement)
    assert await host.deliver(sp.session_id, AgentId("a"), user_message(sp.session_id, sp.run_id, "a", "hi")) is True
    assert transport.delivered == []
    await host.deliver(sp.session_id, AgentId("b"), user_message(sp.session_id, sp.run_id, "b", "hi"))
    assert await host.call(sp.session_id, AgentId("blackboard"), "list", {"prefix": ""}) == "remote"
    assert transport.delivered == [(sp.session_id, "b")]
    assert transport.calls == [(sp.session_id, "blackboard", "list")]
    await host.close()


async def test_late_messages_for_a_closed_session_are_dropped_not_forwarded() -> None:
    transport = RecordingTransport()
    host = HostCore(sink=ListSink(), transport=transport)
    sp = spec()
    await host.start_session(sp, ["a"])
    await host.close_session(sp.session_id)
    late = user_message(sp.session_id, sp.run_id, "a", "too late")
    assert await host.deliver(sp.session_id, AgentId("a"), late) is False
    with pytest.raises(UnknownAgentError, match="is closed"):
        await host.call(sp.session_id, AgentId("blackboard"), "list", {})
    assert transport.delivered == [] and transport.calls == []


def test_ray_transport_never_routes_to_its_own_actor() -> None:
    sid = SessionId("s-1")
    transport = RayTransport(own_name=f"{sid}/worker")
    with pytest.raises(UnknownAgentError, match="not on its own host"):
        transport.handle(sid, AgentId("worker"))
    with pytest.raises(UnknownAgentError, match="not on its own host"):
        transport.handle(sid, AgentId("worker.child"))


async def test_children_of_a_local_root_are_never_looked_up_elsewhere() -> None:
    transport = RecordingTransport()
    host = HostCore(sink=ListSink(), transport=transport)
    sp = spec()
    await host.start_session(sp, ["a"])
    with pytest.raises(UnknownAgentError, match="no agent 'a.gone'"):
        await host.deliver(sp.session_id, AgentId("a.gone"), user_message(sp.session_id, sp.run_id, "a", "x"))
    assert transport.delivered == []
    await host.close()


async def test_a_slow_event_log_slows_the_agents_instead_of_filling_memory() -> None:
    from troupe.runtime.eventlog.buffer import EventBuffer
    from troupe.runtime.session.supervisor import SessionStatus

    release = asyncio.Event()
    shipped: list[int] = []

    async def ship(columns: dict[str, list[Any]]) -> int:
        await release.wait()  # the log's disk is stuck
        shipped.append(len(columns["type"]))
        return len(columns["type"])

    buffer = EventBuffer(ship, max_batch=10, high_water=30, max_delay_s=0.01)
    buffer.start()
    host = HostCore(sink=buffer)
    rounds = [{"tool_calls": [call("blackboard_get", key="k")]} for _ in range(40)]
    cfg = team([{"id": "a", "tools": ["blackboard_get"], "max_rounds": 50}], scripts={"a": [*rounds, {"text": "ok"}]})
    sp = SessionSpec(session_id=SessionId.new(), run_id=RunId.new(), team=cfg)
    await host.start_session(sp, sp.all_names())
    await host.call(sp.session_id, AgentId("session"), "start", {"input": "go", "team": "t", "placement": "packed"})
    await host.deliver(sp.session_id, AgentId("a"), user_message(sp.session_id, sp.run_id, "a", "go"))
    await asyncio.sleep(0.5)
    agent = host.sessions[sp.session_id].guests[AgentId("a")]
    held = buffer.pending
    assert held < 30 + 15, f"{held} events buffered behind a stuck log"  # high water + one round's events
    assert agent.sm.state.value == "running"  # waiting at its next round, not finished
    release.set()
    result = await host.call(sp.session_id, AgentId("session"), "wait", {"timeout": 20})
    assert result.status is SessionStatus.COMPLETED and result.reply == "ok"
    await host.close()
    await buffer.close()
    assert sum(shipped) > 40 * 3  # every round's events reached the log once it moved
