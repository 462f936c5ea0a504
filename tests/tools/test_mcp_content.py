"""Rendering MCP results for the model, and the sampling conversions (pure functions, no server)."""

from __future__ import annotations

import base64
import json

import pytest
from mcp import types as mt

from troupe.runtime.config import McpServerConfig
from troupe.runtime.llm.types import LLMResponse, Usage
from troupe.tools.mcp import CallerInfo, split_tool_name
from troupe.tools.mcp.content import MAX_TEXT_CHARS, b64_size, render_call_result
from troupe.tools.mcp.sampling import USAGE_META_KEY, answer, llm_sampler, pick_profile, to_llm_request
from troupe.tools.mcp.specs import strip_titles

CFG = McpServerConfig(command="x", sampling=True, sampling_max_tokens=50)


def text(t: str) -> mt.TextContent:
    return mt.TextContent(type="text", text=t)


def test_b64_size() -> None:
    for n in range(10):
        assert b64_size(base64.b64encode(b"x" * n).decode()) == n


def test_structured_only_becomes_json() -> None:
    r = render_call_result(mt.CallToolResult(content=[], structured_content={"a": [1, 2], "b": "ü"}))
    assert r.text == '{"a":[1,2],"b":"ü"}' and r.structured == {"a": [1, 2], "b": "ü"}


def test_structured_is_appended_unless_the_text_carries_it() -> None:
    carried = [
        ([text(json.dumps({"sum": 3}, indent=2))], {"sum": 3}),
        ([text("done")], {"result": "done"}),
        ([text("Successfully wrote")], {"content": "Successfully wrote"}),
        ([text('[{"name": "Ada"}]')], {"entities": [{"name": "Ada"}]}),
    ]
    for content, structured in carried:
        r = render_call_result(mt.CallToolResult(content=content, structured_content=structured))
        assert r.text == content[0].text, structured
    r = render_call_result(mt.CallToolResult(content=[text("see data")], structured_content={"rows": 2}))
    assert r.text == 'see data\n{"rows":2}'
    scalar = render_call_result(mt.CallToolResult(content=[], structured_content=7))
    assert scalar.structured == {"result": 7} and scalar.text == "7"


def test_every_block_kind() -> None:
    blob = base64.b64encode(b"\x00" * 1234).decode()
    result = mt.CallToolResult(content=[
        text("first"),
        mt.AudioContent(type="audio", data=blob, mime_type="audio/wav"),
        mt.EmbeddedResource(type="resource", resource=mt.BlobResourceContents(uri="file:///a.bin", blob=blob,
                                                                             mime_type="application/octet-stream")),
        mt.ResourceLink(type="resource_link", uri="file:///b.txt", name="b.txt", description="the b file"),
    ])
    r = render_call_result(result)
    assert r.text.splitlines() == [
        "first",
        "[audio audio/wav, 1,234 bytes]",
        "[resource file:///a.bin (application/octet-stream)]",
        "[blob 1,234 bytes]",
        "[resource link file:///b.txt] b.txt: the b file",
    ]
    assert [b["type"] for b in r.blocks] == ["text", "audio", "resource", "resource_link"]
    assert r.blocks[1] == {"type": "audio", "mime_type": "audio/wav", "bytes": 1234}
    assert all(blob not in json.dumps(b) for b in r.blocks)


def test_long_text_is_capped_with_a_note() -> None:
    r = render_call_result(mt.CallToolResult(content=[text("x" * (MAX_TEXT_CHARS + 500))]))
    assert r.text.endswith("\n[truncated: 500 more characters]")
    assert len(r.text) < MAX_TEXT_CHARS + 50


def test_error_without_text_still_says_something() -> None:
    r = render_call_result(mt.CallToolResult(content=[], is_error=True))
    assert r.is_error and r.text


def test_strip_titles_keeps_a_property_named_title() -> None:
    schema = {"title": "Args", "type": "object", "properties": {"title": {"title": "Title", "type": "string"}},
              "$defs": {"X": {"title": "X", "type": "integer"}}}
    assert strip_titles(schema) == {"type": "object", "properties": {"title": {"type": "string"}},
                                    "$defs": {"X": {"type": "integer"}}}


def test_split_tool_name() -> None:
    assert split_tool_name("fs__read__file") == ("fs", "read__file")
    with pytest.raises(ValueError):
        split_tool_name("plain")


# --- sampling ---------------------------------------------------------------------------------
PARAMS = mt.CreateMessageRequestParams(
    messages=[
        mt.SamplingMessage(role="user", content=text("hi")),
        mt.SamplingMessage(role="assistant", content=text("hello")),
        mt.SamplingMessage(role="user", content=[text("look:"), mt.ImageContent(type="image", data="AAAA",
                                                                                  mime_type="image/png")]),
    ],
    system_prompt="Be brief.",
    max_tokens=500,
    temperature=0.3,
)


def test_to_llm_request() -> None:
    request = to_llm_request(PARAMS, CFG)
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."), ("user", "hi"), ("assistant", "hello"), ("user", "look:\n[image image/png, 3 bytes]")]
    assert request.max_tokens == 50 and request.temperature == 0.3


def test_pick_profile_order() -> None:
    caller = CallerInfo(sampling_profile="agent-model")
    assert pick_profile(CFG.model_copy(update={"sampling": "judge"}), caller, "d") == "judge"
    assert pick_profile(CFG, caller, "d") == "agent-model"
    assert pick_profile(CFG, CallerInfo(), "d") == "d"
    assert pick_profile(CFG, None, None) is None


class _Model:
    model_name = "m"

    async def complete(self, request, *, on_token=None):  # type: ignore[no-untyped-def]
        return LLMResponse(text="ok", model="m-1", usage=Usage(tokens_in=3, tokens_out=1), finish_reason="length")

    async def aclose(self) -> None:
        return None


async def test_answer_strips_usage_and_summarizes() -> None:
    result, summary = await answer(llm_sampler(lambda p: _Model(), "p"), "srv", CFG, PARAMS, CallerInfo(agent="a"))
    assert isinstance(result, mt.CreateMessageResult)
    assert result.meta is None or USAGE_META_KEY not in result.meta
    assert result.content.text == "ok" and result.model == "m-1" and result.stop_reason == "maxTokens"  # type: ignore[union-attr]
    assert summary["ok"] and summary["tokens_in"] == 3 and summary["tokens_out"] == 1 and summary["agent"] == "a"


async def test_answer_refuses_or_reports_failures() -> None:
    refused, summary = await answer(llm_sampler(lambda p: _Model()), "srv", CFG.model_copy(update={"sampling": False}),
                                    PARAMS, None)
    assert isinstance(refused, mt.ErrorData) and "set sampling: true" in refused.message and not summary["ok"]
    no_profile, summary = await answer(llm_sampler(lambda p: _Model()), "srv", CFG, PARAMS, None)
    assert isinstance(no_profile, mt.ErrorData) and "no model profile" in no_profile.message
    assert "no model profile" in summary["error"]


def test_model_names_are_valid_function_names():
    from troupe.tools.mcp import model_tool_name

    assert model_tool_name("fs", "read_file") == "fs__read_file"
    assert model_tool_name("git", "log.show") == "git__log_show"
    long = model_tool_name("server", "x" * 80)
    assert len(long) == 64 and long != model_tool_name("server", "x" * 81)
