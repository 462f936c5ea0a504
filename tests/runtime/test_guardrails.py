"""Unit tests for the permission check (runtime/agent/guardrails.py) and tool execution (runtime/agent/toolexec.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel

from troupe.runtime.agent.deps import AgentDeps
from troupe.runtime.agent.guardrails import check_permission
from troupe.runtime.agent.toolexec import MAX_RESULT_CHARS, ToolOutcome, ToolRun, execute_calls, render_result
from troupe.runtime.config import AgentSpec, PermissionLevel, Permissions
from troupe.runtime.errors import (
    BudgetExceededError,
    ModelVisibleError,
    PermissionDeniedError,
    RunError,
    ToolArgumentError,
)
from troupe.runtime.events import Payload
from troupe.runtime.ids import AgentId, RunId, SessionId
from troupe.runtime.llm.scripted import ScriptedModel
from troupe.runtime.llm.types import ChatMessage, ToolCall
from troupe.tools.context import ToolContext
from troupe.tools.spec import Tool, ToolSpec, tool


def agent(level: str = "L1", scopes: list[str] | None = None, id: str = "lead") -> AgentSpec:
    return AgentSpec(id=id, permissions=Permissions(level=level, scopes=scopes or []))


# --- check_permission ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("have", "need", "ok"),
    [
        ("L0", "L0", True), ("L1", "L0", True), ("L5", "L4", True), ("L2", "L2", True),
        ("L0", "L1", False), ("L1", "L2", False), ("L4", "L5", False),
    ],
)
def test_level_check(have, need, ok):
    spec = ToolSpec(name="t", level=need)
    if ok:
        check_permission(agent(have), spec)
        return
    with pytest.raises(PermissionDeniedError) as info:
        check_permission(agent(have), spec)
    assert str(info.value) == f"permission denied: tool 't' needs level {need} and agent 'lead' has {have}"
    assert info.value.fields == {"tool": "t", "reason": "level"}
    assert isinstance(info.value, ModelVisibleError)


def test_missing_scope():
    spec = ToolSpec(name="shell", level="L0", scopes=("shell:exec", "file:read"))
    with pytest.raises(PermissionDeniedError) as info:
        check_permission(agent("L5", ["file:read"]), spec)
    assert str(info.value) == (
        "permission denied: tool 'shell' needs scope(s) ['shell:exec'] that agent 'lead' was not granted"
    )
    assert info.value.fields == {"tool": "shell", "reason": "scope"}


def test_all_missing_scopes_listed_in_order():
    spec = ToolSpec(name="t", scopes=("b:x", "a:y", "c:z"))
    with pytest.raises(PermissionDeniedError, match=r"needs scope\(s\) \['b:x', 'a:y', 'c:z'\]"):
        check_permission(agent("L1"), spec)


def test_level_checked_before_scope():
    spec = ToolSpec(name="t", level="L3", scopes=("x:y",))
    with pytest.raises(PermissionDeniedError) as info:
        check_permission(agent("L1"), spec)
    assert info.value.fields["reason"] == "level"


@pytest.mark.parametrize(
    ("granted", "needed", "ok"),
    [
        (["file:read"], "file:read", True),
        (["file:*"], "file:read", True),
        (["file:*"], "file:write", True),
        (["file:*"], "file:", True),
        (["file:*"], "shell:exec", False),
        (["file:*"], "filesystem:read", False),
        (["file:*"], "file", False),
        (["*"], "shell:exec", True),
        (["*"], "anything", True),
        (["file:read"], "file:write", False),
        (["file:read"], "file:read:extra", False),
        (["shell:exec", "file:*"], "file:delete", True),
        ([], "file:read", False),
    ],
)
def test_scope_matching(granted, needed, ok):
    spec = ToolSpec(name="t", scopes=(needed,))
    if ok:
        check_permission(agent("L0", granted), spec)
    else:
        with pytest.raises(PermissionDeniedError):
            check_permission(agent("L0", granted), spec)


def test_no_scopes_needed_passes_with_none_granted():
    check_permission(agent("L0"), ToolSpec(name="t"))


# --- execute_calls ---------------------------------------------------------------------------
class Recorder:
    """A ListSink-style emitter: collects (type, fields) in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, payload: Payload, /, **fields: Any) -> None:
        data = payload.dump()
        json.dumps(data)
        self.events.append((payload.event_type, {**fields, "payload": data}))

    def types(self) -> list[str]:
        return [t for t, _ in self.events]

    def for_call(self, call_id: str) -> list[str]:
        return [t for t, f in self.events if f["payload"]["id"] == call_id]


class _Services:
    async def call(self, target: Any, method: str, /, **kwargs: Any) -> Any: ...
    async def send(self, envelope: Any) -> None: ...
    async def spawn_child(self, spec: Any, *, parent: Any) -> Any: ...
    async def terminate(self, agent: Any) -> None: ...
    def members(self) -> list[Any]:
        return []


LEAD = agent("L1", ["file:*"])


class Harness:
    def __init__(self, *tools: Tool, spec: AgentSpec = LEAD) -> None:
        self.tools = {t.name: t for t in tools}
        self.spec = spec
        self.emit = Recorder()
        self.ctx_for: list[str] = []

    def deps(self) -> AgentDeps:
        return AgentDeps(spec=self.spec, session_id=SessionId("s-1"), run_id=RunId("r-1"), llm=ScriptedModel([]),
                         tools=self.tools, services=_Services(), emit=self.emit)

    def make_ctx(self, call: ToolCall) -> ToolContext:
        self.ctx_for.append(call.id)
        return ToolContext(session_id=SessionId("s-1"), run_id=RunId("r-1"), agent=AgentId(self.spec.id),
                           services=_Services(), spec=self.spec, tool_call_id=call.id)

    async def run(self, *calls: ToolCall, parent_event_id: str | None = "ev-1") -> list[ToolOutcome]:
        return await asyncio.wait_for(
            execute_calls(calls, ToolRun(deps=self.deps(), make_ctx=self.make_ctx, emit=self.emit,
                                         parent_event_id=parent_event_id)),
            timeout=2,
        )


def call(id: str, name: str, arguments: Any = None) -> ToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return ToolCall(id=id, name=name, arguments=text)


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@tool
async def echo(ctx: ToolContext, text: str) -> dict[str, str]:
    """Echo with the caller's tool call id."""
    return {"text": text, "call": ctx.tool_call_id, "agent": str(ctx.agent)}


async def test_single_call_event_sequence_and_outcome():
    h = Harness(add)
    [out] = await h.run(call("c1", "add", {"a": 2, "b": 3}))
    assert (out.call.id, out.ok, out.content, out.error_type) == ("c1", True, "5", None)
    assert out.duration_ms >= 0
    assert out.to_message() == ChatMessage(role="tool", content="5", tool_call_id="c1", name="add")
    assert h.emit.types() == ["tool.call", "tool.result"]
    (_, f1), (_, f2) = h.emit.events
    assert f1 == {"tool": "add", "parent_event_id": "ev-1", "payload": {
        "id": "c1", "arguments": '{"a": 2, "b": 3}', "risk": {"score": 0, "reasons": [], "decision": "allow"}, "v": 3}}
    assert isinstance(f2.pop("duration_ms"), float)
    assert f2 == {"tool": "add", "status": "ok", "parent_event_id": "ev-1",
                  "payload": {"id": "c1", "result": "5", "error_type": None, "v": 2}}


async def test_results_in_call_order_and_ctx_per_call():
    @tool
    async def slow_first(ctx: ToolContext, delay: float, tag: str) -> str:
        """Sleep then answer."""
        await asyncio.sleep(delay)
        return f"{tag}:{ctx.tool_call_id}"

    h = Harness(slow_first, echo)
    outs = await h.run(
        call("c1", "slow_first", {"delay": 0.05, "tag": "a"}),
        call("c2", "slow_first", {"delay": 0.0, "tag": "b"}),
        call("c3", "echo", {"text": "hi"}),
    )
    assert [(o.call.id, o.ok, o.content) for o in outs] == [
        ("c1", True, "a:c1"),
        ("c2", True, "b:c2"),
        ("c3", True, '{"text": "hi", "call": "c3", "agent": "lead"}'),
    ]
    assert sorted(h.ctx_for) == ["c1", "c2", "c3"]
    # events: every call starts before any finishes; c1 (slowest) finishes last
    assert h.emit.types()[:3] == ["tool.call"] * 3
    assert [f["payload"]["id"] for t, f in h.emit.events if t == "tool.result"][-1] == "c1"
    for cid in ("c1", "c2", "c3"):
        assert h.emit.for_call(cid) == ["tool.call", "tool.result"]


async def test_calls_run_concurrently():
    barrier = asyncio.Barrier(2)

    @tool
    async def meet(who: str) -> str:
        """Wait for the other call."""
        await barrier.wait()
        return who

    h = Harness(meet)
    outs = await h.run(call("c1", "meet", {"who": "x"}), call("c2", "meet", {"who": "y"}))
    assert [(o.ok, o.content) for o in outs] == [(True, "x"), (True, "y")]


async def test_sync_tools_run_concurrently_too():
    import threading

    barrier = threading.Barrier(2, timeout=2)

    @tool
    def meet_sync(who: str) -> str:
        """Wait for the other call in another thread."""
        barrier.wait()
        return who

    h = Harness(meet_sync)
    outs = await h.run(call("c1", "meet_sync", {"who": "x"}), call("c2", "meet_sync", {"who": "y"}))
    assert [o.content for o in outs] == ["x", "y"]


async def test_empty_batch():
    h = Harness(add)
    assert await h.run() == []
    assert h.emit.events == []


async def test_unknown_tool():
    h = Harness(add, echo)
    [out] = await h.run(call("c1", "search", {"q": 1}))
    assert (out.ok, out.content, out.error_type) == (
        False, "Error: there is no tool 'search'; your tools are: add, echo", "UnknownToolCallError",
    )
    assert h.emit.types() == ["tool.call", "tool.error"]
    _, fields = h.emit.events[1]
    assert fields["status"] == "error"
    assert fields["payload"] == {"id": "c1", "result": out.content, "error_type": "UnknownToolCallError", "v": 2}
    assert h.ctx_for == []


async def test_unknown_tool_with_no_tools():
    h = Harness()
    [out] = await h.run(call("c1", "x"))
    assert out.content == "Error: there is no tool 'x'; your tools are: none"


@pytest.mark.parametrize(
    ("arguments", "content"),
    [
        ('{"a": 1,', "Error: arguments for tool 'add' are not valid JSON (Expecting property name enclosed in "
                     "double quotes at position 8); send a JSON object"),
        ("[1, 2]", "Error: arguments for tool 'add' must be a JSON object, got list"),
        ('"text"', "Error: arguments for tool 'add' must be a JSON object, got str"),
    ],
)
async def test_invalid_json_arguments(arguments, content):
    h = Harness(add)
    [out] = await h.run(call("c1", "add", arguments))
    assert (out.ok, out.content, out.error_type) == (False, content, "ToolArgumentError")
    assert h.emit.types() == ["tool.call", "tool.error"]
    assert h.ctx_for == []


async def test_schema_violation_is_error_outcome():
    h = Harness(add)
    [out] = await h.run(call("c1", "add", {"a": 1}))
    assert (out.ok, out.error_type) == (False, "ToolArgumentError")
    assert out.content == "Error: invalid arguments for tool 'add': b: Field required. Fix the arguments and call again."


async def test_tool_raising_value_error():
    @tool
    async def boom() -> None:
        """Fail."""
        raise ValueError("bad input")

    h = Harness(boom, add)
    outs = await h.run(call("c1", "boom"), call("c2", "add", {"a": 1, "b": 1}))
    assert [(o.ok, o.content, o.error_type) for o in outs] == [
        (False, "Error: tool 'boom' raised ValueError: bad input", "ValueError"),
        (True, "2", None),
    ]
    assert h.emit.for_call("c1") == ["tool.call", "tool.error"]
    assert h.emit.for_call("c2") == ["tool.call", "tool.result"]


async def test_model_visible_error_from_tool_uses_its_message():
    @tool
    async def picky() -> None:
        """Refuse."""
        raise ToolArgumentError("try a smaller number", tool="picky")

    h = Harness(picky)
    [out] = await h.run(call("c1", "picky"))
    assert (out.ok, out.content, out.error_type) == (False, "Error: try a smaller number", "ToolArgumentError")


async def test_tool_timeout():
    @tool(timeout_s=0.05)
    async def sleepy() -> str:
        """Sleep too long."""
        await asyncio.sleep(5)
        return "late"

    h = Harness(sleepy)
    [out] = await h.run(call("c1", "sleepy"))
    assert (out.ok, out.content, out.error_type) == (False, "Error: tool 'sleepy' timed out after 0.05s; try smaller input or another approach", "ToolTimeoutError")
    assert 40 <= out.duration_ms < 1000
    assert h.emit.types() == ["tool.call", "tool.error"]


async def test_tool_timeout_does_not_hold_other_calls():
    @tool(timeout_s=0.05)
    async def sleepy() -> str:
        """Sleep too long."""
        await asyncio.sleep(5)
        return "late"

    h = Harness(sleepy, add)
    outs = await h.run(call("c1", "sleepy"), call("c2", "add", {"a": 2, "b": 2}))
    assert [(o.ok, o.error_type) for o in outs] == [(False, "ToolTimeoutError"), (True, None)]


async def test_denied_permission_not_executed():
    ran: list[str] = []

    @tool(level="L3")
    async def dangerous(x: int) -> str:
        """Do something risky."""
        ran.append("level")
        return "done"

    @tool(scopes=["shell:exec"])
    async def shell(cmd: str) -> str:
        """Run a command."""
        ran.append("scope")
        return "ok"

    h = Harness(dangerous, shell)
    outs = await h.run(call("c1", "dangerous", {"x": 1}), call("c2", "shell", {"cmd": "ls"}))
    assert ran == []
    assert h.ctx_for == []
    assert [(o.ok, o.error_type, o.content) for o in outs] == [
        (False, "PermissionDeniedError",
         "Error: permission denied: tool 'dangerous' needs level L3 and agent 'lead' has L1"),
        (False, "PermissionDeniedError",
         "Error: permission denied: tool 'shell' needs scope(s) ['shell:exec'] that agent 'lead' was not granted"),
    ]
    assert h.emit.for_call("c1") == ["tool.call", "guardrail.denied", "tool.error"]
    assert h.emit.for_call("c2") == ["tool.call", "guardrail.denied", "tool.error"]
    denied = [f for t, f in h.emit.events if t == "guardrail.denied"]
    assert denied[0] == {
        "tool": "dangerous", "status": "denied",
        "payload": {"id": "c1", "reason": "level", "error": "permission denied: tool 'dangerous' needs level L3 and agent 'lead' has L1"},
    }


async def test_permission_checked_before_arguments():
    ran: list[int] = []

    @tool(level="L5")
    async def admin(x: int) -> None:
        """Admin."""
        ran.append(x)

    h = Harness(admin)
    [out] = await h.run(call("c1", "admin", "not json"))
    assert out.error_type == "PermissionDeniedError"
    assert ran == []


async def test_granted_scope_runs():
    @tool(level="L1", scopes=["file:read"])
    async def read(path: str) -> str:
        """Read."""
        return f"read {path}"

    h = Harness(read)  # LEAD holds file:*
    [out] = await h.run(call("c1", "read", {"path": "/x"}))
    assert (out.ok, out.content) == (True, "read /x")
    assert h.emit.types() == ["tool.call", "tool.result"]


async def test_run_error_propagates():
    @tool
    async def over_budget() -> None:
        """Spend too much."""
        raise BudgetExceededError("tool budget exhausted", limit="max_tool_calls")

    h = Harness(over_budget)
    with pytest.raises(BudgetExceededError, match="tool budget exhausted"):
        await h.run(call("c1", "over_budget"))
    # the run ends, but the call is still closed in the lake (no tool.call without an outcome)
    assert h.emit.types() == ["tool.call", "tool.error"]
    _, error = h.emit.events[1]
    assert (error["status"], error["payload"]["error_type"]) == ("error", "BudgetExceededError")


async def test_plain_run_error_propagates_from_sync_tool():
    @tool
    def failing() -> None:
        """Fail the run."""
        raise RunError("stop")

    h = Harness(failing)
    with pytest.raises(RunError, match="stop"):
        await h.run(call("c1", "failing"))


async def test_no_parent_event_id():
    h = Harness(add)
    await h.run(call("c1", "add", {"a": 0, "b": 0}), parent_event_id=None)
    assert [f["parent_event_id"] for _, f in h.emit.events] == [None, None]


async def test_long_arguments_and_results_are_recorded_whole_up_to_the_record_cap():
    @tool
    async def big(text: str) -> str:
        """Return a lot."""
        return text[:8000]

    h = Harness(big)
    [out] = await h.run(call("c1", "big", {"text": "x" * 30_000}))
    assert len(out.content) == 8000
    (_, f1), (_, f2) = h.emit.events
    assert len(f1["payload"]["arguments"]) == 20_000 and f1["payload"]["truncated"] is True  # cut: marked
    assert f2["payload"]["result"] == "x" * 8000 and "truncated" not in f2["payload"]  # whole: as the model saw it


# --- render_result ---------------------------------------------------------------------------
class _Point(BaseModel):
    x: int
    y: int


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("plain", "plain"),
        (42, "42"),
        (None, "null"),
        ({"a": [1, "é"]}, '{"a": [1, "é"]}'),
        (_Point(x=1, y=2), '{"x":1,"y":2}'),
        ({"when": PermissionLevel.L1}, '{"when": "L1"}'),
        (["a", 1.5, True], '["a", 1.5, true]'),
    ],
)
def test_render_result(value, text):
    assert render_result(value) == text


def test_render_result_non_json_falls_back_to_str():
    class Thing:
        def __str__(self) -> str:
            return "thing!"

    assert render_result({"t": Thing()}) == '{"t": "thing!"}'


def test_render_result_truncates():
    text = render_result("y" * (MAX_RESULT_CHARS + 10))
    assert text == "y" * MAX_RESULT_CHARS + "\n[truncated: 10 more characters]"
    assert render_result("z" * MAX_RESULT_CHARS) == "z" * MAX_RESULT_CHARS
