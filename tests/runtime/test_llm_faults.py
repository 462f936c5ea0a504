"""Model endpoint faults, driven through whole in-process sessions against the fault-injecting
OpenAI-compatible server: each fault is retried and survived, failed over, compacted-and-retried, or
fails the session cleanly with a reason in its error and in an ``llm.error`` event."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.support.openai_server import (
    CutStream,
    Disconnect,
    ErrorReply,
    MalformedChunk,
    OpenAICompatServer,
    StreamError,
    TextReply,
    ToolCallSpec,
    ToolCallsReply,
    context_length_error,
    free_port,
)
from tests.support.lakes import rows
from troupe.runtime.agent.context import Context
from troupe.runtime.agent.loop import history_message
from troupe.runtime.api import Troupe
from troupe.runtime.config import TeamConfig, parse_team
from troupe.runtime.llm.openai_client import repair_arguments
from troupe.runtime.llm.types import ChatMessage, LLMResponse, ToolCall
from troupe.runtime.session.supervisor import SessionResult, SessionStatus


@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as srv:
        yield srv


@pytest.fixture
def backup() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as srv:
        yield srv


def remote_team(base_url: str, *, tools: list[str] | None = None, fallback: str | None = None,
                **profile: Any) -> TeamConfig:
    """One agent on an OpenAI-compatible profile ``main`` (fast retries), optionally failing over to ``backup``."""
    main: dict[str, Any] = {"provider": "openai", "model": "test-model", "base_url": base_url, "max_retries": 2,
                            "backoff_s": 0.01, "timeout_s": 2.0, **profile}
    models: dict[str, Any] = {"main": main}
    if fallback:
        main["fallbacks"] = ["backup"]
        models["backup"] = {"provider": "openai", "model": "backup-model", "base_url": fallback, "max_retries": 0}
    return parse_team({"name": "faults", "entry": "a", "default_model": "main", "models": models,
                       "agents": [{"id": "a", "tools": tools or []}]})


async def run(troupe: Troupe, cfg: TeamConfig, text: str = "go") -> SessionResult:
    return await troupe.run(cfg, text, timeout=30)


def events(lake: Path, session_id: str, *types: str) -> list[dict[str, Any]]:
    kinds = ", ".join(f"'{t}'" for t in types)
    sql = (f"select type, status, payload from events where session_id='{session_id}' and type in ({kinds}) "
           "order by ts, seq")
    return [{**json.loads(r["payload"]), "event": r["type"], "status": r["status"]} for r in rows(lake, sql)]


def assert_failed(result: SessionResult, lake: Path, reason: str) -> dict[str, Any]:
    """The session failed, its error starts with the reason, and one ``llm.error`` says it too."""
    assert result.status is SessionStatus.FAILED, result
    # The reason is the error's first word (docs/recovery.md), then who failed, then what happened.
    assert (result.error or "").startswith(f"{reason}: agent 'a': model request failed"), result.error
    assert ".." not in (result.error or "")
    [error] = events(lake, result.session_id, "llm.error")
    assert error["status"] == reason and error["reason"] == reason
    [finished] = events(lake, result.session_id, "session.finished")
    assert finished["status"] == "failed" and f"{reason}: " in finished["error"]
    return error


# --- retried and survived ----------------------------------------------------------------------
@pytest.mark.parametrize("hint", [{"retry_after": 0.3}, {"retry_after_ms": 300}, {}], ids=["retry-after", "retry-after-ms", "none"])
async def test_429_is_retried_after_the_servers_hint(troupe: Troupe, lake: Path, server: OpenAICompatServer,
                                                     hint: dict[str, float]) -> None:
    server.enqueue(ErrorReply(429, "slow down", **hint), TextReply("made it"))
    started = time.monotonic()
    result = await run(troupe, remote_team(server.base_url))
    assert (result.status, result.reply) == (SessionStatus.COMPLETED, "made it")
    assert len(server.chat_requests) == 2
    gap = server.chat_requests[1].received_at - server.chat_requests[0].received_at
    assert gap >= (0.28 if hint else 0.0) and time.monotonic() - started < 10
    assert events(lake, result.session_id, "llm.error") == []  # a retry that worked is not an error


@pytest.mark.parametrize(
    "fault",
    [
        ErrorReply(503, "overloaded"),
        ErrorReply(500, "internal"),
        TextReply("too late", delay_s=3),
        Disconnect(),
        CutStream(TextReply("half an answer that never ends", chunk_size=3), after_chunks=3),
        CutStream(TextReply("half an answer that ends politely", chunk_size=3), after_chunks=3, graceful=True),
        CutStream(ToolCallsReply([ToolCallSpec("calculator", {"expression": "6*7"})], fragments=4), after_chunks=3),
        MalformedChunk(TextReply("garbled"), after_chunks=1),
        StreamError(TextReply("crashed"), after_chunks=2),
    ],
    ids=["503", "500", "timeout", "disconnect", "cut", "cut-graceful", "cut-tool-call", "malformed-chunk", "stream-error"],
)
async def test_a_transient_fault_is_retried_and_the_session_completes(
    troupe: Troupe, lake: Path, server: OpenAICompatServer, fault: Any
) -> None:
    server.enqueue(fault, TextReply("the whole answer"))
    result = await run(troupe, remote_team(server.base_url, timeout_s=0.5, tools=["calculator"]))
    assert (result.status, result.reply) == (SessionStatus.COMPLETED, "the whole answer"), result.error
    assert len(server.chat_requests) == 2
    # Only the complete answer was recorded: nothing of the half one reached the context or the lake.
    [response] = events(lake, result.session_id, "llm.response")
    assert (response["text"], response["tool_calls"]) == ("the whole answer", [])
    assert events(lake, result.session_id, "tool.call") == []


# --- failed over ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dead", ["refused", "5xx", "429"])
async def test_a_dead_endpoint_fails_over_to_the_fallback_profile(
    troupe: Troupe, lake: Path, server: OpenAICompatServer, backup: OpenAICompatServer, dead: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1" if dead == "refused" else server.base_url
    for _ in range(3):
        server.enqueue(ErrorReply(502, "bad gateway") if dead == "5xx" else ErrorReply(429, "slow down", retry_after=0.01))
    backup.enqueue(TextReply("from the backup"))
    result = await run(troupe, remote_team(url, fallback=backup.base_url))
    assert (result.status, result.reply) == (SessionStatus.COMPLETED, "from the backup"), result.error
    [response] = events(lake, result.session_id, "llm.response")
    assert response["profile"] == "backup"
    assert len(server.chat_requests) == (0 if dead == "refused" else 3)
    assert [r.body["model"] for r in backup.chat_requests] == ["backup-model"]


# --- failed cleanly, with the reason -------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "reason", "attempts"),
    [
        (ErrorReply(429, "Rate limit reached for requests", retry_after=0.01, code="rate_limit_exceeded"), "rate_limited", 3),
        (ErrorReply(429, "You exceeded your current quota", code="insufficient_quota"), "quota_exceeded", 1),
        (TextReply("never in time", delay_s=3), "timeout", 3),
        (ErrorReply(503, "overloaded"), "server_error", 3),
        (CutStream(TextReply("cut again and again", chunk_size=2), after_chunks=2), "interrupted", 3),
        (MalformedChunk(TextReply("garbled")), "malformed_response", 3),
        (ErrorReply(401, "Incorrect API key provided"), "auth", 1),
        (ErrorReply(400, "Invalid value for 'temperature'"), "bad_request", 1),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_a_persistent_fault_fails_the_session_with_its_reason(
    troupe: Troupe, lake: Path, server: OpenAICompatServer, fault: Any, reason: str, attempts: int
) -> None:
    server.default = fault
    result = await run(troupe, remote_team(server.base_url, timeout_s=0.3))
    error = assert_failed(result, lake, reason)
    assert len(server.chat_requests) == attempts  # retried (2 retries) only when retrying can help
    assert error["event"] == "llm.error" and error["type"] == "ProviderError"


async def test_connection_refused_fails_as_unreachable(troupe: Troupe, lake: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = await run(troupe, remote_team(url))
    assert_failed(result, lake, "unreachable")
    assert f"cannot connect to test-model at {url}" in (result.error or "")


# --- context length: compact and retry -----------------------------------------------------------
def test_context_length_error_is_the_one_openai_sends() -> None:
    err = context_length_error()
    assert (err.status, err.code, err.error_type) == (400, "context_length_exceeded", "invalid_request_error")


async def test_context_length_compacts_and_retries_the_round(troupe: Troupe, lake: Path,
                                                             server: OpenAICompatServer) -> None:
    from troupe.tools.spec import tool

    @tool(name="dump")
    async def dump() -> str:
        return "line of a long log\n" * 800  # ~15k characters: most of the request

    troupe.registry.register(dump)
    server.enqueue(ToolCallsReply([ToolCallSpec("dump", {})]), context_length_error(), TextReply("summarised"))
    result = await run(troupe, remote_team(server.base_url, tools=["dump"]))
    assert (result.status, result.reply) == (SessionStatus.COMPLETED, "summarised"), result.error

    _, refused, retried = server.chat_requests
    assert refused.body["messages"] != retried.body["messages"]
    sizes = [len(json.dumps(r.body["messages"])) for r in (refused, retried)]
    assert sizes[1] < sizes[0] * 0.75
    tool_message = retried.body["messages"][-1]
    assert tool_message["role"] == "tool" and "cut to fit the model's context window" in tool_message["content"]

    kinds = [(e["event"], e["status"]) for e in events(lake, result.session_id, "llm.error", "context.compacted",
                                                         "llm.request")]
    assert kinds == [("llm.request", None), ("llm.request", None), ("llm.error", "context_length"),
                     ("context.compacted", None), ("llm.request", None)]
    [compacted] = events(lake, result.session_id, "context.compacted")
    assert compacted["reason"] == "context_length" and compacted["clipped_messages"] >= 1
    assert compacted["tokens_after"] <= compacted["tokens_before"] * 3 // 4


@pytest.mark.parametrize("retries", [0, 2])
async def test_context_length_that_compaction_cannot_fix_fails_cleanly(
    troupe: Troupe, lake: Path, server: OpenAICompatServer, retries: int
) -> None:
    server.default = context_length_error()
    result = await run(troupe, remote_team(server.base_url, context_retries=retries), text="summarise this: " + "x" * 9000)
    assert result.status is SessionStatus.FAILED
    assert (result.error or "").startswith("context_length: agent 'a': ")
    assert len(server.chat_requests) == retries + 1  # never retried without shrinking first
    errors = events(lake, result.session_id, "llm.error")
    assert [e["status"] for e in errors] == ["context_length"] * (retries + 1)
    assert len(events(lake, result.session_id, "context.compacted")) == retries
    if retries:
        assert f"after shrinking the context {retries} time(s)" in (result.error or "")


def test_shrink_folds_old_turns_then_cuts_the_longest_tool_results() -> None:
    ctx = Context(system="sys", budget_tokens=100_000)
    for i in range(4):
        ctx.add(ChatMessage(role="user", content=f"question {i} " + "q" * 2000))
        ctx.add(ChatMessage(role="assistant", content=f"answer {i}"))
    ctx.add(ChatMessage(role="user", content="now this"))
    ctx.add(ChatMessage(role="assistant", tool_calls=[ToolCall(id="c1", name="read", arguments="{}")]))
    ctx.add(ChatMessage(role="tool", content="r" * 30_000, tool_call_id="c1"))
    before = ctx.tokens()

    shrunk = ctx.shrink()

    assert shrunk is not None and shrunk.reason == "context_length"
    assert shrunk.removed_messages == 8 and shrunk.clipped_messages >= 1
    assert ctx.tokens() <= before * 3 // 4 == ctx.budget_tokens  # and compaction keeps it there from now on
    assert ctx.messages[0].content.startswith("[compacted 8 earlier messages]")
    assert ctx.messages[1].content == "now this"  # the current turn's question is whole
    assert "cut to fit the model's context window" in (ctx.messages[-1].content or "")
    # Shrinking again keeps going; a context of short messages has nothing left to give.
    assert ctx.shrink() is not None
    small = Context(system="sys", budget_tokens=1000)
    small.add(ChatMessage(role="user", content="hi"))
    assert small.shrink() is None


# --- malformed tool-call JSON --------------------------------------------------------------------
async def test_malformed_tool_call_json_is_a_model_visible_error_and_the_session_goes_on(
    troupe: Troupe, lake: Path, server: OpenAICompatServer
) -> None:
    server.enqueue(
        ToolCallsReply([ToolCallSpec("calculator", '{"expression": "6*7"', id="bad"),
                        ToolCallSpec("calculator", "```json\n{\"expression\": \"1+1\"}\n```", id="fenced")]),
        ToolCallsReply([ToolCallSpec("calculator", {"expression": "6*7"}, id="good")]),
        TextReply("42"),
    )
    result = await run(troupe, remote_team(server.base_url, tools=["calculator"]))
    assert (result.status, result.reply) == (SessionStatus.COMPLETED, "42"), result.error

    outcomes = {e["id"]: e for e in events(lake, result.session_id, "tool.result", "tool.error")}
    assert outcomes["bad"]["event"] == "tool.error" and "are not valid JSON" in outcomes["bad"]["result"]
    assert outcomes["fenced"]["event"] == "tool.result" and outcomes["fenced"]["result"] == "2"  # repaired
    assert outcomes["good"]["result"] == "42"
    # The model read the error; its own broken call went back as JSON (servers that parse it don't choke).
    second = server.chat_requests[1].body["messages"]
    assistant = next(m for m in second if m["role"] == "assistant")
    sent = {c["id"]: json.loads(c["function"]["arguments"]) for c in assistant["tool_calls"]}
    assert sent == {"bad": {"invalid_arguments": '{"expression": "6*7"'}, "fenced": {"expression": "1+1"}}
    tool_results = {m["tool_call_id"]: m["content"] for m in second if m["role"] == "tool"}
    assert tool_results["bad"].startswith("Error: arguments for tool 'calculator' are not valid JSON")


@pytest.mark.parametrize(
    ("raw", "repaired"),
    [
        ("", "{}"),
        ("  ", "{}"),
        ('{"a": 1}', '{"a": 1}'),
        ('```json\n{"a": 1}\n```', '{"a": 1}'),
        ('{"a": 1}}', '{"a": 1}'),
        ('{"a": 1} trailing words', '{"a": 1} trailing words'),
        ("{'a': True, 'b': None}", '{"a": true, "b": null}'),
        ('{"a": "cut of', '{"a": "cut of'),  # cut-off JSON is not guessed at
        ("[1, 2]", "[1, 2]"),
    ],
)
def test_repair_arguments(raw: str, repaired: str) -> None:
    assert repair_arguments(raw) == repaired


def test_history_message_keeps_valid_calls_as_they_are() -> None:
    ok = LLMResponse(tool_calls=[ToolCall(id="c", name="t", arguments='{"x": 1}')])
    assert history_message(ok) == ok.to_message()
    bad = LLMResponse(text="hm", tool_calls=[ToolCall(id="c", name="t", arguments="[1]")])
    assert json.loads(history_message(bad).tool_calls[0].arguments) == {"invalid_arguments": "[1]"}


async def test_an_error_text_ending_in_a_full_stop_is_not_doubled(troupe: Troupe, lake: Path,
                                                                  server: OpenAICompatServer) -> None:
    server.default = ErrorReply(429, "Rate limit reached for requests.", retry_after=0.01)
    result = await run(troupe, remote_team(server.base_url, max_retries=0))
    assert_failed(result, lake, "rate_limited")
    assert "Rate limit reached for requests. Last error: " in (result.error or "")


def test_failure_text_puts_a_model_failures_reason_first() -> None:
    from troupe.runtime.session.supervisor import failure_text

    assert failure_text("w", "ProviderError", "timeout: model request failed; 'main': slow.") == \
        "timeout: agent 'w': model request failed; 'main': slow."
    assert failure_text("w", "ProviderError", "model call failed: KeyError: 'x'") == \
        "error: agent 'w': model call failed: KeyError: 'x'"
    assert failure_text("w", "ScriptExhaustedError", "ran out of script") == \
        "agent 'w' failed: ScriptExhaustedError: ran out of script"
