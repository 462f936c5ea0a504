"""The agent loop, driven directly: one agent on a function model, tools run in this process, fake
session services (tests/support/agents.py). No Ray, no session, no lake."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from tests.support.agents import RID, SID, Events, FakeServices, ask, make_agent
from troupe.runtime.agent.core import AgentCore, control_message, user_message
from troupe.runtime.errors import ProviderError
from troupe.runtime.llm.types import TOOL_ERROR_PREFIX, LLMRequest, LLMResponse, ToolCall, Usage
from troupe.runtime.messages import ControlOp
from troupe.tools.spec import tool

Step = str | LLMResponse | BaseException | Callable[[LLMRequest], str | LLMResponse]


class Script:
    """A model function that answers from a list of steps (a step may look at the request, or
    raise) and keeps every request it was sent."""

    def __init__(self, *steps: Step, then: Step | None = None) -> None:
        self.steps = list(steps)
        self.then = then
        self.requests: list[LLMRequest] = []

    def __call__(self, request: LLMRequest, agent: str) -> str | LLMResponse:
        self.requests.append(request.model_copy(deep=True))
        if self.steps:
            step = self.steps.pop(0)
        else:
            assert self.then is not None, "the script ran out"
            step = self.then
        if isinstance(step, BaseException):
            raise step
        if callable(step):
            return step(request)
        return step


def calls(*named: tuple[str, dict[str, Any] | str], usage: Usage | None = None) -> LLMResponse:
    """A response that calls tools (``c0``, ``c1``, ... in order); string arguments are sent as written."""
    return LLMResponse(tool_calls=[ToolCall(id=f"c{i}", name=name, arguments=args if isinstance(args, str)
                                            else json.dumps(args)) for i, (name, args) in enumerate(named)],
                       usage=usage or Usage())


def tool_messages(request: LLMRequest) -> list[tuple[str | None, str]]:
    """The tool results the model was shown after its last tool calls: ``(call id, content)`` in order."""
    trailing = []
    for m in reversed(request.messages):
        if m.role != "tool":
            break
        trailing.append((m.tool_call_id, m.content or ""))
    return trailing[::-1]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def broken() -> str:
    """Always fails."""
    raise ValueError("boom")


async def test_a_reply_without_tool_calls_ends_the_turn_in_one_round() -> None:
    script, services, events = Script("hello there"), FakeServices(), Events()
    agent = make_agent(script, tools=[add], services=services, events=events)
    assert await ask(agent, "hi") == "hello there"
    assert len(script.requests) == 1
    first = script.requests[0]
    assert [m.role for m in first.messages] == ["system", "user"] and first.messages[-1].content == "hi"
    assert [t.name for t in first.tools] == ["add"]
    assert [t for t in events.types() if not t.startswith(("agent.", "message."))] == [
        "llm.request", "llm.response"]
    assert services.usage["llm_calls"] == 1 and "tool_calls" not in services.usage
    reply = services.sent[-1]
    assert reply.recipient == "user" and reply.data.get("is_reply") is True


async def test_a_tool_round_feeds_the_result_back_then_the_model_replies() -> None:
    script = Script(calls(("add", {"a": 2, "b": 3})), lambda req: f"the sum is {tool_messages(req)[0][1]}")
    events = Events()
    agent = make_agent(script, tools=[add], events=events)
    assert await ask(agent, "2+3?") == "the sum is 5"
    assert tool_messages(script.requests[1]) == [("c0", "5")]
    assert [m.role for m in script.requests[1].messages] == ["system", "user", "assistant", "tool"]
    assert [t for t in events.types() if not t.startswith(("agent.", "message."))] == [
        "llm.request", "llm.response", "tool.call", "tool.result", "llm.request", "llm.response"]
    (response, response_fields), _ = events.of("llm.response")
    (_, call_fields), = events.of("tool.call")
    (result, result_fields), = events.of("tool.result")
    assert call_fields["tool"] == "add" and result["result"] == "5"
    # the tool events point at the model response that asked for them
    assert call_fields["parent_event_id"] == result_fields["parent_event_id"] == response_fields["event_id"]
    assert response["round"] == 1 and response["tool_calls"] == [{"id": "c0", "name": "add", "arguments": '{"a": 2, "b": 3}'}]


async def test_tool_failures_bad_arguments_and_unknown_tools_are_shown_to_the_model() -> None:
    script = Script(calls(("broken", {}), ("add", {"a": "two"}), ("nope", {}), ("add", "{not json")),
                    lambda req: "I saw the errors")
    events = Events()
    agent = make_agent(script, tools=[add, broken], events=events)
    assert await ask(agent, "go") == "I saw the errors"
    shown = tool_messages(script.requests[1])
    assert [cid for cid, _ in shown] == ["c0", "c1", "c2", "c3"]
    assert all(text.startswith(TOOL_ERROR_PREFIX) for _, text in shown)
    assert "tool 'broken' raised ValueError: boom" in shown[0][1]
    assert "invalid arguments for tool 'add': a: Input should be a valid integer" in shown[1][1]
    assert "b: Field required" in shown[1][1]
    assert "there is no tool 'nope'; your tools are: add, broken" in shown[2][1]
    assert "arguments for tool 'add' are not valid JSON" in shown[3][1]
    errors = {p["id"]: (f["tool"], p["error_type"]) for p, f in events.of("tool.error")}  # in the order they ended
    assert errors == {"c0": ("broken", "ValueError"), "c1": ("add", "ToolArgumentError"),
                      "c2": ("nope", "UnknownToolCallError"), "c3": ("add", "ToolArgumentError")}
    assert "agent.error" not in events.types()  # the model's mistakes are not the agent's failure


async def test_the_round_cap_stops_a_model_that_never_answers() -> None:
    script = Script(then=calls(("add", {"a": 1, "b": 1})))
    events, services = Events(), FakeServices()
    agent = make_agent(script, tools=[add], events=events, services=services, max_rounds=3)
    assert await ask(agent, "loop forever") == "[a stopped after 3 LLM rounds without a final answer]"
    assert len(script.requests) == 3
    (payload, fields), = events.of("agent.error")
    assert fields["status"] == "max_rounds" and "3 LLM rounds" in payload["error"]
    assert services.usage["llm_calls"] == 3 and services.usage["tool_calls"] == 3


async def test_calls_of_one_round_run_concurrently_and_return_in_call_order() -> None:
    released = asyncio.Event()

    @tool
    async def waits() -> str:
        """Waits until the other call of its round has run."""
        await asyncio.wait_for(released.wait(), 5)  # run one after the other, this would time out
        return "waited"

    @tool
    async def releases() -> str:
        """Lets the other call go on."""
        await asyncio.sleep(0.05)
        released.set()
        return "released"

    script = Script(calls(("waits", {}), ("releases", {}), ("add", {"a": 1, "b": 2})), lambda req: "done")
    agent = make_agent(script, tools=[waits, releases, add])
    assert await ask(agent, "go") == "done"
    # the model sees the results in the order it asked, although "waits" finished last
    assert tool_messages(script.requests[1]) == [("c0", "waited"), ("c1", "released"), ("c2", "3")]


async def test_cancelling_the_turn_stops_its_running_tool_and_the_agent_takes_the_next_message() -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    @tool(timeout_s=60)
    async def slow() -> str:
        """Takes a minute."""
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return "finished"

    script = Script(calls(("slow", {})), "second answer")
    events, services = Events(), FakeServices()
    agent = make_agent(script, tools=[slow], events=events, services=services)
    runner = agent.start()
    try:
        agent.deliver(user_message(SID, RID, agent.id, "first"))
        await asyncio.wait_for(started.wait(), 10)
        agent.deliver(control_message(SID, agent.id, ControlOp.CANCEL))
        await asyncio.wait_for(stopped.wait(), 10)
        assert not services.sent  # a cancelled turn does not answer
        agent.deliver(user_message(SID, RID, agent.id, "second"))
        await asyncio.wait_for(services.replied.wait(), 10)
    finally:
        agent.terminate()
        await asyncio.wait_for(runner, 10)
    assert services.reply() == "second answer"
    assert [p for p, f in events.of("agent.state") if f.get("status") == "cancelled"] == [{"turn": 1}]
    assert "tool.result" not in events.types() and "agent.error" not in events.types()
    assert [m.content for m in script.requests[1].messages if m.role == "user"][-1] == "second"


async def test_usage_is_charged_per_round_and_a_budget_stop_fails_the_turn_before_its_tools_run() -> None:
    ran: list[str] = []

    @tool
    def record(tag: str) -> str:
        """Records that it ran."""
        ran.append(tag)
        return tag

    script = Script(calls(("record", {"tag": "x"}), usage=Usage(tokens_in=10, tokens_out=5)),
                    calls(("record", {"tag": "y"}), ("record", {"tag": "z"}), usage=Usage(tokens_in=20, tokens_out=5)),
                    then="never")
    events, services = Events(), FakeServices(max_tool_calls=2)
    agent = make_agent(script, tools=[record], events=events, services=services)
    assert await ask(agent, "go") == ""  # the agent failed instead of answering
    assert ran == ["x"]  # the second round's calls went over the budget and never ran
    assert services.usage == {"tokens": 40, "llm_calls": 2, "tool_calls": 3}
    assert [(f["tokens_in"], f["tokens_out"]) for _, f in events.of("llm.response")] == [(10, 5), (20, 5)]
    (payload, fields), = events.of("agent.error")
    assert fields["status"] == "budget_exceeded" and payload["type"] == "BudgetExceededError"
    failed = [kw for target, method, kw in services.calls if method == "agent_failed"]
    assert failed == [{"agent": "a", "error_type": "BudgetExceededError", "message": payload["error"],
                       "status": "budget_exceeded"}]


async def test_an_old_turn_is_compacted_when_the_context_is_over_budget() -> None:
    script = Script("first answer", "second answer")
    events = Events()
    agent = make_agent(script, events=events, context_tokens=256)
    runner = agent.start()
    services = agent.services
    assert isinstance(services, FakeServices)
    try:
        agent.deliver(user_message(SID, RID, agent.id, "long question " * 150))  # ~2,100 chars: over 256 tokens
        await asyncio.wait_for(services.replied.wait(), 10)
        assert "context.compacted" not in events.types()  # the current turn is never folded
        services.replied.clear()
        agent.deliver(user_message(SID, RID, agent.id, "short one"))
        await asyncio.wait_for(services.replied.wait(), 10)
    finally:
        agent.terminate()
        await asyncio.wait_for(runner, 10)
    (compaction, _), = events.of("context.compacted")
    assert compaction["removed_messages"] == 2 and compaction["tokens_after"] < compaction["tokens_before"]
    second = script.requests[1].messages
    assert [m.role for m in second] == ["system", "user", "user"]
    assert second[1].content.startswith("[compacted 2 earlier messages]") and second[2].content == "short one"
    assert types_before(events, "context.compacted", "llm.request") == 1  # compaction comes before the round's request


def types_before(events: Events, first: str, then: str) -> int:
    """How many ``then`` events were emitted before the first ``first`` event."""
    kinds = events.types()
    return kinds[:kinds.index(first)].count(then)


async def test_a_context_length_error_shrinks_the_context_and_retries_the_round() -> None:
    script = Script(ProviderError("prompt too long", reason="context_length"), "fits now")
    events = Events()
    agent = make_agent(script, events=events)
    assert await ask(agent, "x" * 4_000) == "fits now"
    retried = script.requests[1].messages[-1].content or ""
    assert len(retried) < 4_000 and "[cut to fit the model's context window" in retried
    (error, error_fields), = events.of("llm.error")
    assert error_fields["status"] == "context_length" and error["reason"] == "context_length"
    (compaction, _), = events.of("context.compacted")
    assert compaction["reason"] == "context_length" and compaction["clipped_messages"] >= 1


async def test_a_context_that_cannot_shrink_enough_fails_the_turn_after_its_retries() -> None:
    too_long = ProviderError("prompt too long", reason="context_length")
    script = Script(then=too_long)
    events, services = Events(), FakeServices()
    agent = make_agent(script, events=events, services=services, context_retries=2)
    assert await ask(agent, "y" * 20_000) == ""
    assert len(script.requests) == 3  # the first try and two retries
    (payload, fields), = events.of("agent.error")
    assert "still too long after shrinking the context 2 time(s)" in payload["error"]
    assert payload["type"] == "ProviderError" and fields["status"] == "failed"


async def test_a_model_client_bug_is_reported_as_a_provider_failure() -> None:
    script = Script(RuntimeError("socket exploded"))
    events, services = Events(), FakeServices()
    agent = make_agent(script, events=events, services=services)
    assert await ask(agent, "hi") == ""
    (error, error_fields), = events.of("llm.error")
    assert error_fields["status"] == "error" and error["type"] == "RuntimeError"
    (payload, _), = events.of("agent.error")
    assert payload["type"] == "ProviderError" and "RuntimeError: socket exploded" in payload["error"]


async def test_the_agent_answers_every_message_of_a_batch_with_one_turn() -> None:
    script = Script(lambda req: " + ".join(m.content or "" for m in req.messages if m.role == "user"))
    services = FakeServices()
    agent: AgentCore = make_agent(script, services=services)
    agent.deliver(user_message(SID, RID, agent.id, "one"))
    agent.deliver(user_message(SID, RID, agent.id, "two"))  # both queued before the agent runs
    runner = agent.start()
    try:
        for _ in range(100):
            if len(services.sent) == 2:
                break
            await asyncio.sleep(0.02)
    finally:
        agent.terminate()
        await asyncio.wait_for(runner, 10)
    assert len(script.requests) == 1
    assert [e.content for e in services.sent] == ["one + two", "one + two"]
    assert len({e.reply_to for e in services.sent}) == 2  # each message gets its own reply
