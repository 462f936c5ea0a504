"""Elicitation, roots, logging and annotations in the MCP client's plain-Python parts (no server)."""

from __future__ import annotations

import asyncio
from typing import Any

from mcp import types as mt

from troupe.runtime.config import McpServerConfig
from troupe.tools.mcp.content import SUCCESS_NOTE, render_call_result
from troupe.tools.mcp.elicitation import answer, apply_defaults, policy_elicitor
from troupe.tools.mcp.mcp_log import MAX_DATA_CHARS, log_record
from troupe.tools.mcp.roots import roots_for

CFG = McpServerConfig(command="x", elicitation_timeout_s=0.05)
SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "name": {"type": "string", "default": "John Doe"}, "age": {"type": "integer", "default": 30},
    "status": {"type": "string", "enum": ["active", "inactive"], "default": "active"}, "email": {"type": "string"}},
    "required": ["email"]}


def form(schema: dict[str, Any] = SCHEMA) -> mt.ElicitRequestFormParams:
    return mt.ElicitRequestFormParams(message="Who are you?", requested_schema=schema)


def test_defaults_fill_the_omitted_fields_only() -> None:
    assert apply_defaults(SCHEMA, {"name": "Ann"}) == {"name": "Ann", "age": 30, "status": "active"}


async def test_an_accepted_form_gets_defaults_and_is_validated() -> None:
    result, summary = await answer(policy_elicitor("accept", {"email": "a@b.c"}), "s", CFG, form(), None)
    assert result.action == "accept" and result.content == {"email": "a@b.c", "name": "John Doe", "age": 30,
                                                             "status": "active"}
    assert summary["by"] == "policy" and summary["content_keys"] == ["age", "email", "name", "status"]
    bad, summary = await answer(policy_elicitor("accept", {"age": "old"}), "s", CFG, form(), None)
    assert bad.action == "decline" and summary["by"] == "invalid" and "email" in summary["reason"]


async def test_no_answer_within_the_timeout_declines() -> None:
    async def never(*_: Any) -> mt.ElicitResult:
        await asyncio.sleep(10)
        raise AssertionError

    result, summary = await answer(never, "s", CFG, form(), None)
    assert result.action == "decline" and summary["by"] == "timeout"
    result, summary = await answer(None, "s", CFG, form(), None)
    assert result.action == "decline" and summary["by"] == "nobody"


async def test_url_mode_passes_no_content() -> None:
    params = mt.ElicitRequestURLParams(message="Sign in", url="https://example.com/login", elicitation_id="e1")
    result, summary = await answer(policy_elicitor("accept"), "s", CFG, params, None)
    assert result.action == "accept" and result.content is None and summary["url"] == "https://example.com/login"


def test_roots_are_the_workspace_then_the_declared_ones(tmp_path: Any) -> None:
    cfg = McpServerConfig(command="x", roots=[str(tmp_path), "file:///data"])
    roots = roots_for(cfg, ["/work/ws", str(tmp_path)])
    assert [str(r.uri) for r in roots] == ["file:///work/ws", tmp_path.as_uri(), "file:///data"]
    assert roots[0].name == "workspace"


def test_a_log_message_is_bounded() -> None:
    record = log_record("s", mt.LoggingMessageNotificationParams(level="error", logger="db", data="x" * 5000))
    assert record["level"] == "error" and len(record["data"]) < MAX_DATA_CHARS + 50


def test_annotations_are_kept_and_a_successful_error_text_is_marked() -> None:
    user_only = mt.TextContent(type="text", text="secret for the user", annotations=mt.Annotations(audience=["user"]))
    result = render_call_result(mt.CallToolResult(content=[mt.TextContent(type="text", text="Error: disk 91% full"),
                                                           user_only]))
    assert result.text.startswith(SUCCESS_NOTE) and "secret for the user" not in result.text
    assert result.blocks[1]["annotations"] == {"audience": ["user"]}
    failed = render_call_result(mt.CallToolResult(content=[mt.TextContent(type="text", text="Error: no")], is_error=True))
    assert failed.text == "Error: no"
