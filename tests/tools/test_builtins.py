"""Unit tests for the built-in tools: calculator, blackboard, tasks and messaging (no Ray).

Session tools run against a small fake ``SessionServices`` backed by a real
:class:`~troupe.runtime.session.blackboard.Blackboard` and :class:`~troupe.runtime.session.tasks.TaskRegistry`.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Sequence
from typing import Any

import pytest

from troupe.runtime.clock import FakeClock
from troupe.runtime.config import AgentSpec, PermissionLevel, Permissions
from troupe.runtime.errors import ModelVisibleError, ToolArgumentError
from troupe.runtime.ids import BLACKBOARD, TASKS, AgentId, MessageId, RunId, SessionId, TaskId
from troupe.runtime.messages import Envelope, MessageKind
from troupe.runtime.session.blackboard import Blackboard, Provenance
from troupe.runtime.session.task_model import TaskStatus
from troupe.runtime.session.tasks import TaskRegistry
from troupe.tools.builtins import BUILTIN_TOOLS, default_registry
from troupe.tools.builtins.blackboard import blackboard_get, blackboard_list, blackboard_put
from troupe.tools.builtins.calculator import calculator
from troupe.tools.builtins.messaging import broadcast, delegate, send_message, wait
from troupe.tools.builtins.tasks import task_create, task_list, task_update, task_wait
from troupe.tools.context import ToolContext
from troupe.tools.registry import ToolRegistry

SID = SessionId("s-test")
RID = RunId("r-test")


# --- calculator ------------------------------------------------------------------------------
async def calc(expression: str) -> str:
    return await calculator.invoke({"expression": expression})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1234 * 5678", "7006652"),
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("2 - 3 - 4", "-5"),
        ("2 ** 3 ** 2", "512"),
        ("-2 ** 2", "-4"),
        ("2 ^ 10", "1024"),
        ("3 × 4", "12"),
        ("7 / 2", "3.5"),
        ("10 / 2", "5"),
        ("7 // 2", "3"),
        ("7 % 3", "1"),
        ("-3 + +2", "-1"),
        ("sqrt(16)", "4"),
        ("sqrt(2)", str(math.sqrt(2))),
        ("abs(-5)", "5"),
        ("min(3, 1, 2) + max(3, 1, 2)", "4"),
        ("round(2.567)", "3"),
        ("log(e)", "1"),
        ("exp(0)", "1"),
        ("pi", str(math.pi)),
        ("2 * pi", str(2 * math.pi)),
        ("0.1 + 0.2", str(0.1 + 0.2)),
        ("1e20 / 1", "1e+20"),  # integral but too large to show as an int
    ],
)
async def test_calculator_arithmetic(expression, expected):
    assert await calc(expression) == expected


@pytest.mark.parametrize(("expression", "expected"), [("1 + 1 ", "2"), ("  1+1", "2"), ("\n3 * 3\n", "9")])
async def test_calculator_tolerates_surrounding_whitespace(expression, expected):
    # Models often pad arguments; a leading space must not turn into "unexpected indent".
    assert await calc(expression) == expected


async def test_calculator_big_int_exact():
    assert await calc("2 ** 100") == str(2**100)
    assert await calc("2 ** -2") == "0.25"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", "division by zero"),
        ("5 // 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("2 ** 10000", "exponent too large (limit 1000)"),
        ("2 ** -1001", "exponent too large (limit 1000)"),
        ("2 ^ 5000", "exponent too large (limit 1000)"),
    ],
)
async def test_calculator_refusals(expression, message):
    with pytest.raises(ToolArgumentError) as info:
        await calc(expression)
    assert str(info.value) == message
    assert info.value.fields == {"tool": "calculator"}


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "(1).real",
        "(1).__class__",
        "open('x')",
        "x",
        "'a' * 3",
        "[1, 2]",
        "True + 1",
        "lambda: 1",
        "1 if 1 else 2",
        "1 < 2",
        "round(2.567, ndigits=2)",
        "sqrt.__call__(4)",
        "1 & 3",
    ],
)
async def test_calculator_rejects_non_arithmetic(expression):
    with pytest.raises(ToolArgumentError) as info:
        await calc(expression)
    msg = str(info.value)
    assert msg.startswith("unsupported expression element ")
    assert msg.endswith(
        "; use numbers, + - * / // % **, parentheses, sqrt, abs, round, min, max, log, exp and pi, e"
    )


@pytest.mark.parametrize("expression", ["1 +", "2 * (3", "", "import os", "a = 1"])
async def test_calculator_syntax_errors(expression):
    with pytest.raises(ToolArgumentError) as info:
        await calc(expression)
    assert str(info.value).startswith(f"not an arithmetic expression: {expression!r} (")


async def test_calculator_nested_power_is_bounded():
    # The exponent guard only looks at one '**' at a time, so nesting builds a number of a
    # million digits: (10**1000)**1000 takes noticeable CPU and ((10**1000)**1000)**1000 never
    # finishes (the tool runs in a thread its timeout cannot stop). It must be refused as a
    # model-visible error like any other oversized power.
    with pytest.raises(ToolArgumentError):
        await calc("(10 ** 100) ** 1000")


def test_calculator_spec():
    assert calculator.spec.level is PermissionLevel.L0
    assert calculator.spec.idempotent is True
    assert calculator.spec.timeout_s == 5
    assert calculator.spec.parameters["required"] == ["expression"]
    assert calculator.wants_ctx is False


# --- registry of builtins --------------------------------------------------------------------
BUILTIN_NAMES = [
    "assign_tasks",
    "blackboard_get",
    "blackboard_list",
    "blackboard_put",
    "broadcast",
    "calculator",
    "convert_time",
    "delegate",
    "forget",
    "knowledge_search",
    "list_files",
    "load_skill",
    "read_file",
    "read_skill_file",
    "recall",
    "remember",
    "search_files",
    "send_message",
    "shell",
    "task_create",
    "task_list",
    "task_update",
    "task_wait",
    "update_memory",
    "wait",
    "write_file",
]


def test_default_registry_lists_every_builtin():
    reg = default_registry()
    assert isinstance(reg, ToolRegistry)
    assert reg.names() == BUILTIN_NAMES
    assert sorted(t.name for t in BUILTIN_TOOLS) == BUILTIN_NAMES
    assert default_registry() is not reg  # a fresh registry each time
    assert reg.get("calculator").fn is calculator.fn
    assert all(t.spec.source == "builtin" for t in BUILTIN_TOOLS)


def test_builtin_levels_and_ctx():
    reg = default_registry()
    assert {n: reg.get(n).spec.level.value for n in BUILTIN_NAMES} == {
        "blackboard_get": "L0",
        "blackboard_list": "L0",
        "blackboard_put": "L1",
        "broadcast": "L1",
        "calculator": "L0",
        "assign_tasks": "L1",
        "convert_time": "L0",
        "delegate": "L1",
        "list_files": "L1",
        "load_skill": "L0",
        "read_file": "L1",
        "read_skill_file": "L0",
        "forget": "L1",
        "knowledge_search": "L0",
        "recall": "L0",
        "remember": "L1",
        "update_memory": "L1",
        "search_files": "L1",
        "send_message": "L1",
        "shell": "L3",
        "write_file": "L2",
        "task_create": "L1",
        "task_list": "L0",
        "task_update": "L1",
        "task_wait": "L0",
        "wait": "L0",
    }
    assert [n for n in BUILTIN_NAMES if not reg.get(n).wants_ctx] == ["calculator", "convert_time"]
    for n in BUILTIN_NAMES:
        assert "ctx" not in reg.get(n).spec.parameters["properties"]
        assert reg.get(n).spec.description, n


# --- fake session services -------------------------------------------------------------------
class FakeServices:
    """Just enough of ``SessionServices`` for the built-in tools, over real blackboard and tasks.

    Spawned children act on their task assignment: ``child_behaviour[child_id]`` is
    ``(status, output, error)`` or ``None`` (the child never finishes).
    """

    def __init__(self, members: Sequence[str], *, clock: FakeClock | None = None) -> None:
        self._members = [AgentId(m) for m in members]
        self.board = Blackboard(SID)
        kwargs: dict[str, Any] = {"notify": self._notify}
        if clock is not None:
            kwargs["clock"] = clock
        self.tasks = TaskRegistry(SID, **kwargs)
        self.calls: list[tuple[AgentId, str, dict[str, Any]]] = []
        self.sent: list[Envelope] = []
        self.spawned: list[tuple[AgentSpec, AgentId]] = []
        self.terminated: list[AgentId] = []
        self.notes: list[tuple[AgentId, MessageKind, str, dict[str, Any]]] = []
        self.child_behaviour: dict[str, tuple[str, Any, str | None] | None] = {}
        self._pending: list[asyncio.Task[Any]] = []

    async def call(self, target: AgentId, method: str, /, **kwargs: Any) -> Any:
        self.calls.append((target, method, kwargs))
        service = {BLACKBOARD: self.board, TASKS: self.tasks}[target]
        result = getattr(service, method)(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def send(self, envelope: Envelope) -> None:
        self.sent.append(envelope)

    async def spawn_child(self, spec: AgentSpec, *, parent: AgentId) -> AgentId:
        self.spawned.append((spec, parent))
        self._members.append(spec.id)
        return spec.id

    async def terminate(self, agent: AgentId) -> None:
        self.terminated.append(agent)
        self._members.remove(agent)

    def members(self) -> Sequence[AgentId]:
        return list(self._members)

    def _notify(self, agent: AgentId, kind: MessageKind, content: str, data: dict[str, Any]) -> None:
        self.notes.append((agent, kind, content, data))
        if kind is MessageKind.TASK and agent in self.child_behaviour:
            behaviour = self.child_behaviour[agent]
            if behaviour is not None:
                status, output, error = behaviour
                self._pending.append(asyncio.ensure_future(self._finish(data["task_id"], agent, status, output, error)))

    async def _finish(self, task_id: str, agent: AgentId, status: str, output: Any, error: str | None) -> None:
        await asyncio.sleep(0)
        self.tasks.update(task_id, by=agent, status="running")
        await asyncio.sleep(0)
        self.tasks.update(task_id, by=agent, status=status, output=output, error=error)


class Ctx:
    """Builds a ToolContext and records end_turn / forget_notices calls."""

    def __init__(self, services: FakeServices, **overrides: Any) -> None:
        self.ended = 0
        self.forgotten: list[list[str]] = []
        spec = overrides.pop(
            "spec",
            AgentSpec(id="lead", tools=["calculator", "blackboard_get", "delegate"], model="m",
                      permissions=Permissions(level="L2", scopes=["file:read"]), max_rounds=5, context_tokens=4000),
        )
        fields: dict[str, Any] = {
            "session_id": SID,
            "run_id": RID,
            "agent": AgentId("lead"),
            "services": services,
            "spec": spec,
            "tool_call_id": "call-1",
            "message_id": MessageId("m-abc"),
            "task_id": None,
            "end_turn": self._end_turn,
            "forget_notices": self._forget,
        }
        fields.update(overrides)
        self.ctx = ToolContext(**fields)

    def _end_turn(self) -> None:
        self.ended += 1

    def _forget(self, task_ids: Sequence[str]) -> int:
        self.forgotten.append(list(task_ids))
        return len(task_ids)


@pytest.fixture
def services() -> FakeServices:
    return FakeServices(["lead", "worker_a", "worker_b"])


@pytest.fixture
def c(services: FakeServices) -> Ctx:
    return Ctx(services)


# --- blackboard tools ------------------------------------------------------------------------
async def test_blackboard_put_passes_author_and_provenance(services, c):
    out = await blackboard_put.invoke({"key": "results/t-1", "value": {"x": 1}, "kind": "artifact", "ttl_s": 60}, c.ctx)
    assert out == {"key": "results/t-1", "value": {"x": 1}, "version": 1, "author": "lead", "kind": "artifact"}
    assert services.calls == [
        (
            BLACKBOARD,
            "put",
            {
                "key": "results/t-1",
                "value": {"x": 1},
                "author": "lead",
                "kind": "artifact",
                "ttl_s": 60.0,
                "expected_version": None,
                "provenance": {"message_id": "m-abc", "tool_call_id": "call-1"},
            },
        )
    ]
    stored = services.board.get("results/t-1")
    assert stored.author == "lead"
    assert stored.provenance == Provenance(message_id="m-abc", tool_call_id="call-1")
    assert stored.ttl_s == 60.0


async def test_blackboard_put_defaults_and_versions(services, c):
    first = await blackboard_put.invoke({"key": "k", "value": 1}, c.ctx)
    second = await blackboard_put.invoke({"key": "k", "value": 2, "expected_version": 1}, c.ctx)
    assert (first["version"], first["kind"], second["version"], second["value"]) == (1, "fact", 2, 2)


async def test_blackboard_put_version_conflict_is_model_visible(c):
    await blackboard_put.invoke({"key": "k", "value": 1}, c.ctx)
    with pytest.raises(ModelVisibleError, match="expected version 5 but the current version is 1"):
        await blackboard_put.invoke({"key": "k", "value": 2, "expected_version": 5}, c.ctx)


async def test_blackboard_put_bad_kind_is_argument_error(services, c):
    with pytest.raises(ToolArgumentError, match="kind: Input should be 'fact', 'artifact' or 'decision'"):
        await blackboard_put.invoke({"key": "k", "value": 1, "kind": "rumour"}, c.ctx)
    assert services.calls == []


async def test_blackboard_get(services, c):
    services.board.put("plan", ["a", "b"], author="worker_a", kind="decision")
    assert await blackboard_get.invoke({"key": "plan"}, c.ctx) == {
        "key": "plan", "value": ["a", "b"], "version": 1, "author": "worker_a", "kind": "decision",
    }
    assert services.calls == [(BLACKBOARD, "get", {"key": "plan"})]


async def test_blackboard_get_missing_key_message(c):
    assert await blackboard_get.invoke({"key": "nope/here"}, c.ctx) == "no entry under key 'nope/here'"


async def test_blackboard_list(services, c):
    services.board.put("results/b", 2, author="worker_b")
    services.board.put("results/a", 1, author="worker_a")
    services.board.put("plan", 0, author="lead")
    out = await blackboard_list.invoke({"prefix": "results/"}, c.ctx)
    assert out == [
        {"key": "results/a", "value": 1, "version": 1, "author": "worker_a", "kind": "fact"},
        {"key": "results/b", "value": 2, "version": 1, "author": "worker_b", "kind": "fact"},
    ]
    assert [e["key"] for e in await blackboard_list.invoke({}, c.ctx)] == ["plan", "results/a", "results/b"]


# --- task tools ------------------------------------------------------------------------------
def _task_view(t: Any) -> dict[str, Any]:
    return {"id": t.id, "goal": t.goal, "status": t.status, "assignee": t.assignee, "parent_id": t.parent_id,
            "output": t.output, "error": t.error}


async def test_task_create_with_assignee(services, c):
    out = await task_create.invoke({"goal": "Compute", "assignee": "worker_a", "task_id": "t-mul", "input": {"n": 2}}, c.ctx)
    assert out == {"id": "t-mul", "goal": "Compute", "status": TaskStatus.PENDING, "assignee": "worker_a",
                   "parent_id": None, "output": None, "error": None}
    assert services.calls == [
        (TASKS, "create", {"goal": "Compute", "created_by": "lead", "assignee": "worker_a", "task_id": "t-mul",
                           "input": {"n": 2}, "parent_id": None})
    ]
    assert [(a, k, d["task_id"]) for a, k, _, d in services.notes] == [("worker_a", MessageKind.TASK, "t-mul")]


async def test_task_create_unknown_assignee_lists_members(services, c):
    with pytest.raises(ToolArgumentError) as info:
        await task_create.invoke({"goal": "x", "assignee": "worker_c"}, c.ctx)
    assert str(info.value) == "unknown assignee 'worker_c'; agents in this session: lead, worker_a, worker_b"
    assert info.value.fields == {"tool": "task_create"}
    assert services.calls == []
    assert services.tasks.list() == []


async def test_task_create_defaults_parent_to_current_task(services):
    parent = services.tasks.create("big goal", created_by="user", assignee="lead", task_id="t-root")
    ctx = Ctx(services, task_id=TaskId("t-root")).ctx
    out = await task_create.invoke({"goal": "part", "assignee": "worker_a", "task_id": "t-part"}, ctx)
    assert out["parent_id"] == "t-root"
    assert services.calls[-1][2]["parent_id"] == "t-root"
    assert services.tasks.get(parent.id).children == ["t-part"]


async def test_task_create_explicit_parent_wins(services):
    services.tasks.create("root", created_by="user", task_id="t-root")
    services.tasks.create("other", created_by="user", task_id="t-other")
    ctx = Ctx(services, task_id=TaskId("t-root")).ctx
    out = await task_create.invoke({"goal": "part", "parent_id": "t-other"}, ctx)
    assert out["parent_id"] == "t-other"
    assert out["assignee"] is None


async def test_task_update_and_list(services, c):
    await task_create.invoke({"goal": "a", "assignee": "worker_a", "task_id": "t-a"}, c.ctx)
    await task_create.invoke({"goal": "b", "assignee": "worker_b", "task_id": "t-b"}, c.ctx)
    out = await task_update.invoke({"task_id": "t-a", "status": "done", "output": {"v": 1}}, c.ctx)
    assert out == {"id": "t-a", "goal": "a", "status": TaskStatus.DONE, "assignee": "worker_a", "parent_id": None,
                   "output": {"v": 1}, "error": None}
    assert services.calls[-1] == (TASKS, "update", {"task_id": "t-a", "by": "lead", "status": "done",
                                                    "output": {"v": 1}, "error": None})
    assert [t["id"] for t in await task_list.invoke({}, c.ctx)] == ["t-a", "t-b"]
    assert [t["id"] for t in await task_list.invoke({"status": "pending"}, c.ctx)] == ["t-b"]
    assert [t["id"] for t in await task_list.invoke({"assignee": "worker_a"}, c.ctx)] == ["t-a"]


async def test_task_update_bad_status_is_argument_error(c):
    with pytest.raises(ToolArgumentError, match="status: Input should be"):
        await task_update.invoke({"task_id": "t-a", "status": "finished"}, c.ctx)


async def test_task_wait_success_forgets_notices(services, c):
    services.tasks.create("a", created_by="lead", task_id="t-a")
    services.tasks.create("b", created_by="lead", task_id="t-b")
    services.tasks.update("t-a", by="worker_a", status="done", output=1)

    async def finish_b() -> None:
        await asyncio.sleep(0)
        services.tasks.update("t-b", by="worker_b", status="failed", error="boom")

    finisher = asyncio.create_task(finish_b())
    out = await asyncio.wait_for(task_wait.invoke({"task_ids": ["t-a", "t-b"], "timeout_s": 5}, c.ctx), 2)
    await finisher
    assert out == [
        {"id": "t-a", "goal": "a", "status": TaskStatus.DONE, "assignee": None, "parent_id": None, "output": 1,
         "error": None},
        {"id": "t-b", "goal": "b", "status": TaskStatus.FAILED, "assignee": None, "parent_id": None, "output": None,
         "error": "boom"},
    ]
    assert c.forgotten == [["t-a", "t-b"]]
    assert services.calls == [(TASKS, "wait", {"task_ids": ["t-a", "t-b"], "timeout": 5.0})]


async def test_task_wait_timeout_is_argument_error():
    services = FakeServices(["lead"], clock=FakeClock())
    c = Ctx(services)
    services.tasks.create("slow", created_by="lead", task_id="t-slow")
    with pytest.raises(ToolArgumentError) as info:
        await asyncio.wait_for(task_wait.invoke({"task_ids": ["t-slow"], "timeout_s": 0.5}, c.ctx), 2)
    assert str(info.value) == "tasks ['t-slow'] did not finish within 0.5s"
    assert info.value.fields == {"tool": "task_wait"}
    assert c.forgotten == []


async def test_task_wait_unknown_task_is_model_visible(c):
    with pytest.raises(ModelVisibleError, match="unknown task 't-none'"):
        await task_wait.invoke({"task_ids": ["t-none"]}, c.ctx)
    assert c.forgotten == []


# --- messaging tools -------------------------------------------------------------------------
async def test_send_message(services):
    c = Ctx(services, task_id=TaskId("t-1"))
    out = await send_message.invoke({"to": "worker_a", "text": "hello"}, c.ctx)
    [env] = services.sent
    assert out == f"sent to worker_a (message {env.id})"
    assert env.model_dump(exclude={"id", "created_at"}) == {
        "session_id": SID,
        "sender": "lead",
        "recipient": "worker_a",
        "topic": None,
        "kind": MessageKind.TEXT,
        "content": "hello",
        "data": {},
        "reply_to": None,
        "deadline": None,
        "trace": {"run_id": RID, "task_id": "t-1", "parent_event_id": None, "turn": None},
    }


@pytest.mark.parametrize("to", ["lead", "nobody", "user"])
async def test_send_message_to_self_or_unknown(services, c, to):
    with pytest.raises(ToolArgumentError) as info:
        await send_message.invoke({"to": to, "text": "hi"}, c.ctx)
    assert str(info.value) == f"cannot send to {to!r}; agents you can message: worker_a, worker_b"
    assert info.value.fields == {"tool": "send_message"}
    assert services.sent == []


async def test_send_message_via_agent_core(services):
    class Core:
        def __init__(self) -> None:
            self.sent: list[Envelope] = []

        async def send(self, env: Envelope) -> None:
            self.sent.append(env)

    core = Core()
    c = Ctx(services, send=core.send)
    await send_message.invoke({"to": "worker_b", "text": "x"}, c.ctx)
    assert [(e.recipient, e.content) for e in core.sent] == [("worker_b", "x")]
    assert services.sent == []


async def test_broadcast_builds_topic_envelope(services, c):
    out = await broadcast.invoke({"group": "workers", "text": "stop"}, c.ctx)
    [env] = services.sent
    assert out == f"broadcast to group 'workers' (message {env.id})"
    assert env.model_dump(exclude={"id", "created_at"}) == {
        "session_id": SID,
        "sender": "lead",
        "recipient": None,
        "topic": "workers",
        "kind": MessageKind.TEXT,
        "content": "stop",
        "data": {},
        "reply_to": None,
        "deadline": None,
        "trace": {"run_id": RID, "task_id": None, "parent_event_id": None, "turn": None},
    }


async def test_wait_ends_turn(c):
    assert await wait.invoke({}, c.ctx) == "waiting for messages"
    assert c.ended == 1
    assert wait.spec.parameters["properties"] == {}


# --- delegate --------------------------------------------------------------------------------
async def test_delegate_refuses_tools_the_parent_lacks(services, c):
    with pytest.raises(ToolArgumentError) as info:
        await delegate.invoke({"name": "helper", "goal": "g", "tools": ["calculator", "shell", "send_message"]}, c.ctx)
    assert str(info.value) == "a child can only get tools you have; you lack ['shell', 'send_message']"
    assert info.value.fields == {"tool": "delegate"}
    assert services.spawned == [] and services.calls == []


@pytest.mark.parametrize("name", ["bad name", "a/b", "x" * 200, "héllo"])
async def test_delegate_invalid_child_name(services, c, name):
    with pytest.raises(ToolArgumentError) as info:
        await delegate.invoke({"name": name, "goal": "g"}, c.ctx)
    assert str(info.value).startswith(f"invalid child name {name!r}: ")
    assert "invalid agent id" in str(info.value)
    assert services.spawned == [] and services.calls == []


async def test_delegate_success(services):
    services.tasks.create("root", created_by="user", assignee="lead", task_id="t-root")
    c = Ctx(services, task_id=TaskId("t-root"))
    services.child_behaviour["lead.checker"] = ("done", "confirmed: 42", None)
    out = await asyncio.wait_for(
        delegate.invoke(
            {"name": "checker", "goal": "Confirm 6 * 7", "instructions": "Be brief.", "tools": ["calculator"]}, c.ctx
        ),
        2,
    )
    assert out == "confirmed: 42"

    [(child, parent)] = services.spawned
    assert parent == "lead"
    assert child.model_dump() == {
        "id": "lead.checker",
        "name": "checker",
        "role": "helper of lead",
        "model": "m",
        "instructions": "Be brief.",
        "tools": ["calculator"],
        "permissions": {"level": PermissionLevel.L2, "scopes": ["file:read"]},
        "memory": "none",
        "knowledge": [],
        "skills": [],
        "kind": "agent",
        "planner": {"max_replans": 3, "max_parallel": 8, "step_timeout_s": 300.0, "reflect": False},
        "a2a": None,
        "groups": [],
        "max_rounds": 5,
        "context_tokens": 4000,
        "subscriptions": [],
        "publish_results": False,
        "parallel_tool_calls": True,
    }
    [task] = [t for t in services.tasks.list() if t.id != "t-root"]
    assert (task.goal, task.assignee, task.created_by, task.parent_id, task.status) == (
        "Confirm 6 * 7", "lead.checker", "lead", "t-root", TaskStatus.DONE,
    )
    assert [(target, method) for target, method, _ in services.calls] == [(TASKS, "create"), (TASKS, "wait")]
    assert services.calls[0][2] == {"goal": "Confirm 6 * 7", "created_by": "lead", "assignee": "lead.checker",
                                    "parent_id": "t-root"}
    assert services.calls[1][2] == {"task_ids": [task.id], "timeout": 600.0}
    assert c.forgotten == [[task.id]]
    assert services.terminated == ["lead.checker"]
    assert "lead.checker" not in services.members()


async def test_delegate_child_failure_is_reported(services, c):
    services.child_behaviour["lead.helper"] = ("failed", None, "could not do it")
    out = await asyncio.wait_for(delegate.invoke({"name": "helper", "goal": "g"}, c.ctx), 2)
    [task] = services.tasks.list()
    assert out == f"child lead.helper ended task {task.id} as failed: could not do it"
    assert task.parent_id is None
    assert services.spawned[0][0].tools == []
    assert services.terminated == ["lead.helper"]


async def test_delegate_timeout_still_terminates_child():
    services = FakeServices(["lead"], clock=FakeClock())
    c = Ctx(services)
    services.child_behaviour["lead.slow"] = None  # never finishes
    with pytest.raises(ToolArgumentError) as info:
        await asyncio.wait_for(delegate.invoke({"name": "slow", "goal": "g", "timeout_s": 3}, c.ctx), 2)
    assert str(info.value) == "child lead.slow did not finish within 3s"
    assert services.terminated == ["lead.slow"]
    assert c.forgotten == []


async def test_delegate_terminates_child_when_task_creation_fails(services):
    # the parent's own task is already finished, so a subtask under it cannot be created
    services.tasks.create("root", created_by="user", task_id="t-root")
    services.tasks.update("t-root", by="user", status="done")
    c = Ctx(services, task_id=TaskId("t-root"))
    with pytest.raises(ModelVisibleError, match="cannot create a subtask under task 't-root'"):
        await delegate.invoke({"name": "h", "goal": "g"}, c.ctx)
    assert services.terminated == ["lead.h"]
