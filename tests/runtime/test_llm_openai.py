"""The OpenAI-compatible client against a real HTTP server on a loopback port, through the real SDK."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import openai
import pytest

from troupe.runtime.clock import FakeClock
from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ConfigError, ProviderError
from troupe.runtime.llm import BLOCK_REMOTE_ENV, ChatMessage, LLMRequest, OpenAIChatClient, ToolCall, ToolSchema, Usage
from troupe.runtime.llm.openai_client import ANSWER_NUDGE, is_loopback_url
from troupe.runtime.redact import REDACTED, redact_text

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # until pytest's `pythonpath` puts the repo root there
    sys.path.insert(0, _ROOT)

from benchmarks.support.openai_server import (  # noqa: E402
    Disconnect,
    OpenAICompatServer,
    TextReply,
    ToolCallSpec,
    free_port,
)

SEARCH = ToolSchema(
    name="search",
    description="Search the web",
    parameters={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
)
READ = ToolSchema(name="read_file", description="Read a file")
KEY = "sk-troupe-test-0123456789abcdef"

MakeClient = Callable[..., OpenAIChatClient]


@pytest.fixture(autouse=True)
def _guard_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BLOCK_REMOTE_ENV, raising=False)


@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as srv:
        yield srv


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_client(clock: FakeClock) -> AsyncIterator[MakeClient]:
    clients: list[OpenAIChatClient] = []

    def make(profile: ModelProfile, *, name: str = "main", fallbacks: list[tuple[str, ModelProfile]] | None = None) -> OpenAIChatClient:
        client = OpenAIChatClient(profile, profile_name=name, fallbacks=fallbacks or [], clock=clock)
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.aclose()


def _profile(base_url: str, **kw: object) -> ModelProfile:
    defaults: dict[str, object] = {"model": "test-model", "base_url": base_url, "timeout_s": 5.0, "backoff_s": 0.5}
    return ModelProfile(**{**defaults, **kw})


def _req(text: str = "hello", *, tools: list[ToolSchema] | None = None, more: list[ChatMessage] | None = None) -> LLMRequest:
    messages = [ChatMessage(role="system", content="You are terse."), ChatMessage(role="user", content=text), *(more or [])]
    return LLMRequest(messages=messages, tools=tools or [])


# --- streaming --------------------------------------------------------------------------------
async def test_streams_text_through_on_token_and_reads_usage(server: OpenAICompatServer, make_client: MakeClient) -> None:
    server.enqueue_text("Hello from the server!", chunk_size=5, prompt_tokens=21)
    client = make_client(_profile(server.base_url))
    tokens: list[str] = []

    resp = await client.complete(_req("hi there"), on_token=tokens.append)

    assert tokens == ["Hello", " from", " the ", "serve", "r!"]
    assert resp.model_dump() == {
        "text": "Hello from the server!",
        "tool_calls": [],
        "usage": {"tokens_in": 21, "tokens_out": 5},
        "model": "test-model",
        "finish_reason": "stop",
        "profile": "main",
    }
    (sent,) = server.chat_requests
    assert sent.body == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hi there"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_parallel_tool_call_deltas_are_reassembled(server: OpenAICompatServer, make_client: MakeClient) -> None:
    server.enqueue_tool_calls(
        ToolCallSpec("search", {"q": "ray actors and mailboxes", "limit": 3}, id="call_a"),
        ToolCallSpec("read_file", {"path": "/tmp/notes.md"}, id="call_b"),
        fragments=4,
        text="Checking.",
    )
    client = make_client(_profile(server.base_url))
    tokens: list[str] = []

    resp = await client.complete(_req("research", tools=[SEARCH, READ]), on_token=tokens.append)

    assert resp.tool_calls == [
        ToolCall(id="call_a", name="search", arguments='{"q": "ray actors and mailboxes", "limit": 3}'),
        ToolCall(id="call_b", name="read_file", arguments='{"path": "/tmp/notes.md"}'),
    ]
    assert (resp.text, "".join(tokens), resp.finish_reason) == ("Checking.", "Checking.", "tool_calls")
    assert resp.usage == Usage(tokens_in=11, tokens_out=7)
    assert server.chat_requests[0].body["tools"] == [SEARCH.to_openai(), READ.to_openai()]


async def test_parallel_tool_calls_false_is_sent_only_with_tools(server: OpenAICompatServer, make_client: MakeClient) -> None:
    server.enqueue_text("a")
    server.enqueue_text("b")
    server.enqueue_text("c")
    client = make_client(_profile(server.base_url))
    await client.complete(_req("one at a time", tools=[SEARCH]).model_copy(update={"parallel_tool_calls": False}))
    await client.complete(_req("no tools").model_copy(update={"parallel_tool_calls": False}))
    await client.complete(_req("default", tools=[SEARCH]))
    assert server.chat_requests[0].body["parallel_tool_calls"] is False
    assert "parallel_tool_calls" not in server.chat_requests[1].body
    assert "parallel_tool_calls" not in server.chat_requests[2].body


async def test_profile_sampling_settings_and_extra_body_are_sent(server: OpenAICompatServer, make_client: MakeClient) -> None:
    server.enqueue_text("a")
    server.enqueue_text("b")
    client = make_client(_profile(server.base_url, temperature=0.2, max_tokens=64, extra_body={"top_k": 5}))
    await client.complete(_req())
    await client.complete(LLMRequest(messages=_req().messages, temperature=0.9, max_tokens=8))
    first, second = (r.body for r in server.chat_requests)
    assert (first["temperature"], first["max_tokens"], first["top_k"]) == (0.2, 64, 5)
    assert (second["temperature"], second["max_tokens"]) == (0.9, 8)


async def test_tools_after_results_false_omits_tools_after_a_tool_result(
    server: OpenAICompatServer, make_client: MakeClient
) -> None:
    for _ in range(3):
        server.enqueue_text("ok")
    call = ToolCall(id="c1", name="search", arguments='{"q": "x"}')
    after = [
        ChatMessage(role="assistant", tool_calls=[call]),
        ChatMessage(role="tool", content="result", tool_call_id="c1"),
    ]
    strict = make_client(_profile(server.base_url, tools_after_results=False))
    default = make_client(_profile(server.base_url))

    failed = [after[0], ChatMessage(role="tool", content="Error: invalid arguments", tool_call_id="c1")]
    server.enqueue_text("ok")

    await strict.complete(_req(tools=[SEARCH]))
    await strict.complete(_req(tools=[SEARCH], more=after))
    await default.complete(_req(tools=[SEARCH], more=after))
    await strict.complete(_req(tools=[SEARCH], more=failed))  # a failed call keeps the tools: retry is possible

    has_tools = ["tools" in r.body for r in server.chat_requests]
    assert has_tools == [True, False, True, True]
    withheld = server.chat_requests[1].body["messages"]
    assert withheld[-3]["tool_calls"] == [call.to_openai()]
    assert withheld[-1] == {"role": "user", "content": ANSWER_NUDGE}
    assert server.chat_requests[2].body["messages"][-1]["role"] == "tool"  # no nudge while tools are offered


async def test_text_tool_calls_are_parsed_when_the_profile_asks(server: OpenAICompatServer, make_client: MakeClient) -> None:
    written = '<tool_call>{"name": "search", "arguments": {"q": "weather"}}</tool_call>'
    server.enqueue_text(written)
    server.enqueue_text(written)
    parsing = make_client(_profile(server.base_url, parse_text_tool_calls=True))
    plain = make_client(_profile(server.base_url))

    resp = await parsing.complete(_req(tools=[SEARCH]))
    assert resp.tool_calls == [ToolCall(id="call_text_0", name="search", arguments='{"q": "weather"}')]
    assert (resp.text, resp.finish_reason) == ("", "tool_calls")

    resp = await plain.complete(_req(tools=[SEARCH]))
    assert (resp.tool_calls, resp.text) == ([], written)


# --- retries ----------------------------------------------------------------------------------
async def test_429_with_retry_after_is_honoured(server: OpenAICompatServer, make_client: MakeClient, clock: FakeClock) -> None:
    server.enqueue_error(429, "slow down", retry_after=3)
    server.enqueue_text("done")
    resp = await make_client(_profile(server.base_url)).complete(_req())
    assert resp.text == "done"
    assert clock.slept == [3.0]
    assert len(server.chat_requests) == 2


async def test_429_without_retry_after_backs_off_exponentially(
    server: OpenAICompatServer, make_client: MakeClient, clock: FakeClock
) -> None:
    server.enqueue_error(429)
    server.enqueue_error(429)
    server.enqueue_text("done")
    resp = await make_client(_profile(server.base_url, backoff_s=0.5)).complete(_req())
    assert resp.text == "done"
    assert clock.slept == [0.5, 1.0]


async def test_500_then_success(server: OpenAICompatServer, make_client: MakeClient, clock: FakeClock) -> None:
    server.enqueue_error(500, "internal")
    server.enqueue_text("recovered")
    resp = await make_client(_profile(server.base_url)).complete(_req())
    assert (resp.text, resp.profile) == ("recovered", "main")
    assert clock.slept == [0.5]


async def test_backoff_is_capped_and_retries_run_out(
    server: OpenAICompatServer, make_client: MakeClient, clock: FakeClock
) -> None:
    for _ in range(4):
        server.enqueue_error(503, "overloaded", retry_after=100 if _ == 2 else None)
    client = make_client(_profile(server.base_url, max_retries=3, backoff_s=1.0, max_backoff_s=1.5))
    with pytest.raises(ProviderError) as ei:
        await client.complete(_req())
    assert clock.slept == [1.0, 1.5, 1.5]
    assert len(server.chat_requests) == 4
    assert "HTTP 503" in str(ei.value) and "overloaded" in str(ei.value)
    assert ei.value.fields["status"] == 503


async def test_400_is_not_retried(server: OpenAICompatServer, make_client: MakeClient, clock: FakeClock) -> None:
    server.enqueue_error(400, "context length exceeded")
    server.enqueue_text("never sent")
    with pytest.raises(ProviderError) as ei:
        await make_client(_profile(server.base_url)).complete(_req())
    assert len(server.chat_requests) == 1 and clock.slept == []
    assert "HTTP 400" in str(ei.value) and "context length exceeded" in str(ei.value)
    assert server.pending == 1


async def test_timeout_is_retried_then_fails(server: OpenAICompatServer, make_client: MakeClient, clock: FakeClock) -> None:
    server.enqueue(TextReply("late", delay_s=3), TextReply("late again", delay_s=3))
    client = make_client(_profile(server.base_url, timeout_s=0.2, max_retries=1))
    started = time.monotonic()
    with pytest.raises(ProviderError) as ei:
        await client.complete(_req())
    assert time.monotonic() - started < 2.0
    assert "timed out after 0.2s" in str(ei.value)
    assert clock.slept == [0.5] and len(server.chat_requests) == 2


async def test_timeout_then_success(server: OpenAICompatServer, make_client: MakeClient) -> None:
    server.enqueue(TextReply("late", delay_s=3), TextReply("on time"))
    resp = await make_client(_profile(server.base_url, timeout_s=0.2)).complete(_req())
    assert resp.text == "on time"


async def test_dropped_connection_is_retried(server: OpenAICompatServer, make_client: MakeClient, clock: FakeClock) -> None:
    server.enqueue(Disconnect(), TextReply("second try"))
    resp = await make_client(_profile(server.base_url)).complete(_req())
    assert resp.text == "second try" and clock.slept == [0.5]


async def test_connection_refused_fails_after_retries(make_client: MakeClient, clock: FakeClock) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    client = make_client(_profile(url, max_retries=2))
    with pytest.raises(ProviderError) as ei:
        await client.complete(_req())
    assert clock.slept == [0.5, 1.0]
    assert f"cannot connect to test-model at {url}" in str(ei.value)
    assert "ConnectError" in str(ei.value)


# --- failover ---------------------------------------------------------------------------------
async def test_fails_over_to_the_fallback_profile(server: OpenAICompatServer, make_client: MakeClient, clock: FakeClock) -> None:
    with OpenAICompatServer() as backup_server:
        server.enqueue_error(500)
        server.enqueue_error(502)
        backup_server.enqueue_text("from the backup")
        client = make_client(
            _profile(server.base_url, max_retries=1),
            fallbacks=[("backup", _profile(backup_server.base_url, model="backup-model"))],
        )
        resp = await client.complete(_req())
        assert (resp.text, resp.profile, resp.model) == ("from the backup", "backup", "backup-model")
        assert len(server.chat_requests) == 2
        assert [r.body["model"] for r in backup_server.chat_requests] == ["backup-model"]
        assert clock.slept == [0.5]


async def test_every_profile_failing_names_them_all(server: OpenAICompatServer, make_client: MakeClient) -> None:
    server.enqueue_error(503, "backup is overloaded")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    client = make_client(
        _profile(dead, max_retries=0),
        fallbacks=[("backup", _profile(server.base_url, max_retries=0))],
    )
    with pytest.raises(ProviderError) as ei:
        await client.complete(_req())
    msg = str(ei.value)
    assert "'main': cannot connect" in msg and "'backup': HTTP 503" in msg
    assert msg.endswith("Last error: HTTP 503 from test-model at " + server.base_url + ": backup is overloaded")
    assert ei.value.fields["profiles"] == ["main", "backup"]


# --- keys and the remote-model guard ----------------------------------------------------------
async def test_api_key_is_sent_as_bearer_but_never_in_errors(
    server: OpenAICompatServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TROUPE_TEST_API_KEY", KEY)
    # Real providers echo (part of) a bad key back; the error text must still not carry it.
    server.enqueue_error(401, f"Incorrect API key provided: {KEY}")
    server.enqueue_text("authorised")
    client = make_client(_profile(server.base_url, api_key_env="TROUPE_TEST_API_KEY"))

    with pytest.raises(ProviderError) as ei:
        await client.complete(_req())
    resp = await client.complete(_req())

    assert [r.headers["authorization"] for r in server.chat_requests] == [f"Bearer {KEY}"] * 2
    assert KEY not in str(ei.value) and KEY not in repr(ei.value.fields)
    assert "HTTP 401" in str(ei.value) and REDACTED in str(ei.value)
    assert KEY not in resp.model_dump_json()
    # The SDK's exception (whose text holds the raw body) is not chained into tracebacks.
    assert ei.value.__cause__ is None and ei.value.__suppress_context__
    assert redact_text(f"key={KEY}") == f"key={REDACTED}"


async def test_profile_without_key_env_sends_a_placeholder(server: OpenAICompatServer, make_client: MakeClient) -> None:
    server.enqueue_text("ok")
    await make_client(_profile(server.base_url)).complete(_req())
    assert server.chat_requests[0].headers["authorization"] == "Bearer not-needed"


def test_missing_api_key_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TROUPE_TEST_MISSING_KEY", raising=False)
    with pytest.raises(ConfigError) as ei:
        OpenAIChatClient(_profile("http://127.0.0.1:9/v1", api_key_env="TROUPE_TEST_MISSING_KEY"), profile_name="main")
    assert "TROUPE_TEST_MISSING_KEY" in str(ei.value) and "'main'" in str(ei.value)
    assert ei.value.fields["variable"] == "TROUPE_TEST_MISSING_KEY"


@pytest.mark.parametrize("base_url", ["https://api.example.com/v1", "http://10.0.0.5:8000/v1", None])
def test_remote_guard_refuses_remote_endpoints(monkeypatch: pytest.MonkeyPatch, base_url: str | None) -> None:
    monkeypatch.setenv(BLOCK_REMOTE_ENV, "1")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    profile = ModelProfile(model="gpt-4o-mini", base_url=base_url)
    with pytest.raises(ConfigError) as ei:
        OpenAIChatClient(profile, profile_name="cloud")
    assert BLOCK_REMOTE_ENV in str(ei.value) and "'cloud'" in str(ei.value)


async def test_remote_guard_refuses_a_remote_fallback(server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BLOCK_REMOTE_ENV, "1")
    with pytest.raises(ConfigError, match="'cloud' points at https://api.example.com/v1"):
        OpenAIChatClient(
            _profile(server.base_url),
            fallbacks=[("cloud", ModelProfile(model="gpt", base_url="https://api.example.com/v1"))],
        )


async def test_remote_guard_allows_loopback_and_applies_at_request_time(
    server: OpenAICompatServer, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = make_client(ModelProfile(model="gpt", base_url="https://api.example.com/v1"))
    monkeypatch.setenv(BLOCK_REMOTE_ENV, "1")
    server.enqueue_text("local is fine")
    local = make_client(_profile(f"http://localhost:{server.port}/v1"))
    assert (await local.complete(_req())).text == "local is fine"
    with pytest.raises(ConfigError, match=BLOCK_REMOTE_ENV):
        await remote.complete(_req())


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000/v1", True),
        ("http://127.9.8.7/v1", True),
        ("http://localhost:11434/v1", True),
        ("http://[::1]:8080/v1", True),
        ("http://0.0.0.0:8000/v1", False),
        ("http://192.168.1.10/v1", False),
        ("https://localhost.example.com/v1", False),
        ("https://api.openai.com/v1", False),
    ],
)
def test_is_loopback_url(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


# --- the test server itself -------------------------------------------------------------------
async def test_support_server_answers_non_streaming_requests(server: OpenAICompatServer) -> None:
    server.enqueue_tool_calls(("search", {"q": "a"}))
    async with openai.AsyncOpenAI(api_key="x", base_url=server.base_url, max_retries=0) as sdk:
        completion = await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        models = await sdk.models.list()
    call = completion.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("search", {"q": "a"})
    assert [m.id for m in models.data] == ["test-model"]
