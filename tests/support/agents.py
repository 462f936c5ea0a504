"""One agent with no session around it: a fake model, fake services, recorded events.

The unit tests of the agent loop (tests/runtime/test_loop.py) build their agents here, and only
here: :func:`make_agent` is the one place that knows how an :class:`AgentCore` is constructed.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from troupe.runtime.agent.core import AgentCore, user_message
from troupe.runtime.agent.deps import AgentDeps
from troupe.runtime.config import AgentSpec
from troupe.runtime.errors import BudgetExceededError
from troupe.runtime.ids import AgentId, RunId, SessionId
from troupe.runtime.llm.function import FunctionModel, ModelFunction
from troupe.runtime.messages import Envelope
from troupe.tools.spec import Tool

SID = SessionId("s-loop")
RID = RunId("r-loop")


class Events:
    """An emitter that records what the agent emits: ``(type, payload dict, envelope fields)``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def __call__(self, what: Any, /, *, payload: Any = None, **fields: Any) -> None:
        if isinstance(what, str):  # emit("tool.call", payload={...})
            kind, data = what, payload or {}
        else:  # emit(ToolCallPayload(...)): a payload model names its type
            kind, data = what.event_type, what.dump()
        json.dumps(data, default=str)  # an event payload must be JSON-able
        self.events.append((str(kind), dict(data), fields))

    def types(self) -> list[str]:
        return [t for t, _, _ in self.events]

    def of(self, kind: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [(p, f) for t, p, f in self.events if t == kind]


class FakeServices:
    """The session's services as one agent sees them: usage charged (with optional caps), messages
    sent, failures reported; every call recorded."""

    def __init__(self, *, max_tokens: int | None = None, max_tool_calls: int | None = None) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.sent: list[Envelope] = []
        self.usage: Counter[str] = Counter()
        self.limits = {"tokens": max_tokens, "tool_calls": max_tool_calls}
        self.replied = asyncio.Event()
        self.failed = asyncio.Event()

    async def call(self, target: AgentId, method: str, /, **kwargs: Any) -> Any:
        self.calls.append((str(target), method, kwargs))
        if method == "charge":
            for key, n in kwargs.items():
                if key != "agent":
                    self.usage[key] += n
            for key, cap in self.limits.items():
                if cap is not None and self.usage[key] > cap:
                    raise BudgetExceededError(f"budget exceeded: {key} {self.usage[key]} > {cap}", budget=key)
        elif method == "agent_failed":
            self.failed.set()
        return None

    async def send(self, envelope: Envelope) -> None:
        self.sent.append(envelope)
        self.replied.set()

    async def spawn_child(self, spec: AgentSpec, *, parent: AgentId) -> AgentId:
        raise NotImplementedError("no children in these tests")

    async def terminate(self, agent: AgentId) -> None:
        return None

    def members(self) -> Sequence[AgentId]:
        return [AgentId("a")]

    def reply(self) -> str:
        assert self.sent, "the agent sent nothing"
        return self.sent[-1].content


def make_agent(model: ModelFunction, *, tools: Iterable[Tool] = (), services: FakeServices | None = None,
               events: Events | None = None, context_retries: int = 2, **spec: Any) -> AgentCore:
    """An agent ``a`` on a function model (``model(request, agent)`` returns a reply or an
    LLMResponse), granted ``tools``, that runs them in this process. ``spec`` sets AgentSpec fields."""
    granted = {t.spec.name: t for t in tools}
    agent_spec = AgentSpec(id=AgentId("a"), tools=list(granted), **spec)
    deps = AgentDeps(spec=agent_spec, session_id=SID, run_id=RID, llm=FunctionModel(model, agent="a"), tools=granted,
                     services=services or FakeServices(), emit=events or Events(), context_retries=context_retries)
    return AgentCore(deps)


async def ask(agent: AgentCore, text: str, *, timeout: float = 10.0) -> str:
    """Start the agent, send it ``text`` from the user, and return its reply."""
    services = agent.services
    assert isinstance(services, FakeServices)
    runner = agent.start()
    try:
        agent.deliver(user_message(SID, RID, agent.id, text))
        done = asyncio.ensure_future(services.replied.wait())
        failed = asyncio.ensure_future(services.failed.wait())
        await asyncio.wait({done, failed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        done.cancel()
        failed.cancel()
        if services.failed.is_set():
            return ""
        return services.reply()
    finally:
        agent.terminate()
        await asyncio.wait_for(runner, timeout)


__all__ = ["RID", "SID", "Events", "FakeServices", "ask", "make_agent"]
