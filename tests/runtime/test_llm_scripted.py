"""Deterministic models (scripted, function) and picking a client from model profiles."""

from __future__ import annotations

import json
import sys
import types

import pytest

from troupe.runtime.config import ModelProfile, ScriptStep, ScriptToolCall
from troupe.runtime.errors import ConfigError, ScriptExhaustedError, UnknownModelError
from troupe.runtime.llm import (
    PROVIDERS,
    ChatMessage,
    FunctionModel,
    LLMClient,
    LLMRequest,
    LLMResponse,
    OpenAIChatClient,
    ProviderContext,
    ScriptedModel,
    ToolCall,
    Usage,
    build_client,
    load_function,
)
from troupe.runtime.llm.scripted import text_chunks


def _req(text: str = "hi", *more: ChatMessage) -> LLMRequest:
    return LLMRequest(messages=[ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content=text), *more])


STEPS = [
    ScriptStep(
        text="Let me look that up.",
        tool_calls=[
            ScriptToolCall(name="search", arguments={"q": "ray actors"}),
            ScriptToolCall(name="read_file", arguments={"path": "notes.md"}),
        ],
    ),
    ScriptStep(text="Ray actors are stateful workers with a mailbox and an address."),
]


# --- scripted ---------------------------------------------------------------------------------
async def test_scripted_plays_steps_in_order_and_streams_text() -> None:
    model = ScriptedModel(STEPS, agent="writer", name="fake")
    assert isinstance(model, LLMClient)
    tokens: list[str] = []

    first = await model.complete(_req("what are ray actors?"), on_token=tokens.append)
    assert first.model_dump(exclude={"usage"}) == {
        "text": "Let me look that up.",
        "tool_calls": [
            {"id": "call_writer_0_0", "name": "search", "arguments": '{"q": "ray actors"}'},
            {"id": "call_writer_0_1", "name": "read_file", "arguments": '{"path": "notes.md"}'},
        ],
        "model": "scripted",
        "finish_reason": "tool_calls",
        "profile": "fake",
    }
    assert "".join(tokens) == "Let me look that up." and len(tokens) > 1
    assert first.usage.tokens_in >= 1 and first.usage.tokens_out >= 1

    tokens.clear()
    second = await model.complete(_req("go on"), on_token=tokens.append)
    assert (second.text, second.tool_calls, second.finish_reason) == (STEPS[1].text, [], "stop")
    assert "".join(tokens) == STEPS[1].text
    assert second.usage.tokens_out == len(STEPS[1].text) // 4
    assert model.remaining == 0


async def test_scripted_exhaustion_names_agent_steps_and_last_message() -> None:
    model = ScriptedModel(STEPS, agent="writer", name="fake")
    await model.complete(_req())
    await model.complete(_req())
    tool_result = ChatMessage(role="tool", content="42 results found " + "x" * 500, tool_call_id="call_writer_0_0")
    with pytest.raises(ScriptExhaustedError) as ei:
        await model.complete(_req("hi", tool_result))
    msg = str(ei.value)
    assert "'writer'" in msg and "2 step(s)" in msg and "call 3" in msg
    assert "tool: '42 results found" in msg and "..." in msg and "x" * 300 not in msg
    assert "models.fake.scripts.writer" in msg
    assert ei.value.fields == {"agent": "writer", "profile": "fake", "steps": 2}


async def test_scripted_empty_script_fails_on_first_call() -> None:
    with pytest.raises(ScriptExhaustedError, match=r"0 step\(s\)"):
        await ScriptedModel([]).complete(_req())


async def test_scripted_accepts_dict_steps_and_star_agent_ids() -> None:
    model = ScriptedModel([{"tool_calls": [{"name": "search", "arguments": {"q": 1}}]}])
    resp = await model.complete(_req())
    assert resp.tool_calls == [ToolCall(id="call_any_0_0", name="search", arguments='{"q": 1}')]
    assert resp.text == "" and resp.profile == "scripted"


@pytest.mark.parametrize(
    ("text", "n_chunks"),
    [("one", 1), ("a few words in a sentence here", 3), ("  leading\n\nand trailing  ", 2), ("", 0)],
)
def test_text_chunks_join_back_exactly(text: str, n_chunks: int) -> None:
    chunks = text_chunks(text)
    assert "".join(chunks) == text
    assert all(chunks) and len(chunks) == n_chunks


# --- function ---------------------------------------------------------------------------------
async def test_function_model_sync_str() -> None:
    seen: list[tuple[str, str]] = []

    def fn(request: LLMRequest, agent: str) -> str:
        seen.append((agent, request.messages[-1].content or ""))
        return f"echo: {request.messages[-1].content}"

    model = FunctionModel(fn, agent="critic", name="fn")
    tokens: list[str] = []
    resp = await model.complete(_req("hello world"), on_token=tokens.append)
    assert seen == [("critic", "hello world")]
    assert (resp.text, resp.model, resp.profile, resp.finish_reason) == ("echo: hello world", "function", "fn", "stop")
    assert "".join(tokens) == "echo: hello world"
    assert resp.usage.tokens_in >= 1 and resp.usage.tokens_out >= 1


async def test_function_model_async_response_with_tool_calls_keeps_usage() -> None:
    async def fn(request: LLMRequest, agent: str) -> LLMResponse:
        call = ToolCall(id=f"c_{agent}", name="search", arguments=json.dumps({"q": request.messages[-1].content}))
        return LLMResponse(tool_calls=[call], usage=Usage(tokens_in=100, tokens_out=5))

    resp = await FunctionModel(fn, agent="a1").complete(_req("find me"))
    assert resp.tool_calls == [ToolCall(id="c_a1", name="search", arguments='{"q": "find me"}')]
    assert (resp.finish_reason, resp.usage, resp.profile) == ("tool_calls", Usage(tokens_in=100, tokens_out=5), "function")


async def test_function_model_sync_callable_returning_awaitable_str() -> None:
    async def later(text: str) -> str:
        return text.upper()

    resp = await FunctionModel(lambda req, agent: later(agent), agent="loud").complete(_req())
    assert resp.text == "LOUD"


async def test_function_model_rejects_other_return_types() -> None:
    with pytest.raises(ConfigError, match="returned int; return an LLMResponse or a str"):
        await FunctionModel(lambda req, agent: 3, agent="a").complete(_req())


def test_load_function_resolves_module_and_dotted_attribute() -> None:
    assert load_function("json:dumps") is json.dumps
    assert load_function("collections:OrderedDict.fromkeys") == __import__("collections").OrderedDict.fromkeys


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("json.dumps", "package.module:callable"),
        (":dumps", "package.module:callable"),
        ("troupe_no_such_module_xyz:fn", "cannot import module 'troupe_no_such_module_xyz'"),
        ("json:no_such_fn", "has no attribute 'no_such_fn'"),
        ("json:__doc__", "not callable"),
    ],
)
def test_load_function_errors_name_what_failed(spec: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as ei:
        load_function(spec)
    assert fragment in str(ei.value)


# --- registry ---------------------------------------------------------------------------------
PROFILES = {
    "fake": ModelProfile(
        provider="scripted",
        scripts={"writer": [ScriptStep(text="from writer script")], "*": [ScriptStep(text="from star script")]},
    ),
    "writer_only": ModelProfile(provider="scripted", scripts={"writer": [ScriptStep(text="w")]}),
    "local": ModelProfile(provider="local", model="default"),
}


async def test_build_client_scripted_picks_agent_script_then_star() -> None:
    writer = build_client("fake", PROFILES, agent="writer")
    other = build_client("fake", PROFILES, agent="critic")
    assert isinstance(writer, ScriptedModel) and writer.agent == "writer"
    assert (await writer.complete(_req())).text == "from writer script"
    assert (await other.complete(_req())).text == "from star script"
    assert writer.remaining == 0 and other.remaining == 0


def test_build_client_scripted_without_script_for_agent() -> None:
    with pytest.raises(ConfigError) as ei:
        build_client("writer_only", PROFILES, agent="critic")
    assert "'critic'" in str(ei.value) and "'writer_only'" in str(ei.value)


def test_build_client_unknown_profile_lists_known_ones() -> None:
    with pytest.raises(UnknownModelError) as ei:
        build_client("gpt-9", PROFILES, agent="writer")
    assert "'gpt-9'" in str(ei.value) and "['fake', 'local', 'writer_only']" in str(ei.value)


def test_build_client_local_is_lazy_and_names_its_model() -> None:
    from troupe.runtime.llm.local.provider import LocalModelClient

    client = build_client("local", PROFILES, agent="writer")  # starts nothing until the first request
    assert isinstance(client, LocalModelClient) and client.model_name == "qwen2.5-coder-0.5b"


def test_build_client_local_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    with pytest.raises(ConfigError, match=r"pip install 'troupe-runtime\[local\]'"):
        build_client("local", PROFILES, agent="writer")


async def test_build_client_function_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("troupe_test_model_fns")
    module.reply = lambda request, agent: f"{agent} says hi"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "troupe_test_model_fns", module)
    profiles = {"fn": ModelProfile(provider="function", function="troupe_test_model_fns:reply")}
    client = build_client("fn", profiles, agent="bob")
    resp = await client.complete(_req())
    assert (resp.text, resp.profile) == ("bob says hi", "fn")


def test_build_client_function_profile_bad_spec() -> None:
    profiles = {"fn": ModelProfile(provider="function", function="troupe_no_such_module_xyz:reply")}
    with pytest.raises(ConfigError, match="troupe_no_such_module_xyz"):
        build_client("fn", profiles, agent="bob")


async def test_register_provider_replaces_a_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ProviderContext] = []

    def factory(ctx: ProviderContext) -> LLMClient:
        seen.append(ctx)
        return ScriptedModel([ScriptStep(text="local stand-in")], agent=ctx.agent, name=ctx.profile_name)

    monkeypatch.setitem(PROVIDERS, "local", factory)
    client = build_client("local", PROFILES, agent="writer")
    assert (await client.complete(_req())).text == "local stand-in"
    assert [(c.profile_name, c.agent, c.profile.provider) for c in seen] == [("local", "writer", "local")]


async def test_build_client_openai_resolves_fallbacks() -> None:
    profiles = {
        "main": ModelProfile(model="m1", base_url="http://127.0.0.1:9/v1", fallbacks=["backup", "main", "backup"]),
        "backup": ModelProfile(model="m2", base_url="http://127.0.0.1:9/v1"),
    }
    client = build_client("main", profiles, agent="writer")
    try:
        assert isinstance(client, OpenAIChatClient)
        assert client.profiles == ["main", "backup"] and client.model_name == "m1"
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("fallback", "error", "fragment"),
    [
        ("ghost", UnknownModelError, "falls back to unknown profile 'ghost'"),
        ("fake", ConfigError, "fallbacks must be OpenAI-compatible"),
    ],
)
def test_build_client_openai_bad_fallbacks(fallback: str, error: type[Exception], fragment: str) -> None:
    profiles = {**PROFILES, "main": ModelProfile(model="m1", base_url="http://127.0.0.1:9/v1", fallbacks=[fallback])}
    with pytest.raises(error) as ei:
        build_client("main", profiles, agent="writer")
    assert fragment in str(ei.value)
