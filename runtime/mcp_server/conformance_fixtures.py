"""``troupe mcp serve --conformance``: the fixtures the official MCP conformance suite
(``@modelcontextprotocol/conformance``) calls on a server under test, added beside Troupe's own.

The suite's server scenarios expect tools, resources and prompts named ``test_*`` / ``test://``
(content of every type, logging, progress, sampling, elicitation, a JSON Schema 2020-12 input
schema, a tool that closes its SSE stream mid-call, a resource template, a watched resource, and
prompts with arguments, an embedded resource and an image). They exercise the same server, the
same transport and the same protocol handlers as Troupe's tools; they touch no session or lake.
Off by default: a real deployment has no use for them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import warnings
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.server.mcpserver.tools.base import Tool
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    AudioContent,
    CallToolResult,
    Completion,
    CompletionArgument,
    CompletionContext,
    EmbeddedResource,
    ImageContent,
    PromptReference,
    ResourceTemplateReference,
    SamplingMessage,
    TextContent,
    TextResourceContents,
)

# A 1x1 red PNG and a 1-sample silent WAV.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")
WAV = base64.b64decode("UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQIAAAAAAA==")
PNG_B64 = base64.b64encode(PNG).decode()
WAV_B64 = base64.b64encode(WAV).decode()
STEP_S = 0.05
"""The pause between a fixture's log or progress notifications."""

SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}
SEP1034_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"],
                   "default": "active"},
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
}
SEP1330_SCHEMA = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {"type": "string", "oneOf": [{"const": "value1", "title": "First Option"},
                                                     {"const": "value2", "title": "Second Option"},
                                                     {"const": "value3", "title": "Third Option"}]},
        "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                       "enumNames": ["Option One", "Option Two", "Option Three"]},
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {"type": "array", "items": {"anyOf": [{"const": "value1", "title": "First Choice"},
                                                             {"const": "value2", "title": "Second Choice"},
                                                             {"const": "value3", "title": "Third Choice"}]}},
    },
}
ARG_SUGGESTIONS = ["paris", "park", "party", "test", "testing", "tested"]


def _text(text: str) -> TextContent:
    return TextContent(type="text", text=text)


async def _json_schema_2020_12_tool(name: str = "", address: dict[str, Any] | None = None) -> str:
    return f"received name={name!r} address={json.dumps(address)}"


def schema_tools() -> list[Tool]:
    """Tools whose input schema is given as is (not derived from a signature), for ``MCPServer(tools=...)``."""
    tool = Tool.from_function(_json_schema_2020_12_tool, name="json_schema_2020_12_tool",
                              description="Tool with JSON Schema 2020-12 features")
    tool.parameters = dict(SCHEMA_2020_12)
    return [tool]


def complete(ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument,
             context: CompletionContext | None) -> Completion | None:
    """Suggestions for the fixtures' arguments (``None``: not a fixture's)."""
    if isinstance(ref, PromptReference) and ref.name == "test_prompt_with_arguments":
        values = [v for v in ARG_SUGGESTIONS if v.startswith(argument.value)]
        return Completion(values=values, total=len(values), has_more=False)
    if isinstance(ref, ResourceTemplateReference) and ref.uri == "test://template/{id}/data":
        values = [v for v in ("123", "456", "789") if v.startswith(argument.value)]
        return Completion(values=values, total=len(values), has_more=False)
    return None


def install(server: MCPServer, *, log: Any) -> None:
    """Add the fixtures to ``server``. ``log(ctx, level, data)`` sends a log notification that
    honours the connection's ``logging/setLevel``."""
    _tools(server, log)
    _resources(server)
    _prompts(server)


def _tools(server: MCPServer, log: Any) -> None:
    @server.tool(description="Returns a simple text response")
    async def test_simple_text() -> CallToolResult:
        return CallToolResult(content=[_text("This is a simple text response for testing.")])

    @server.tool(description="Returns an image (a 1x1 PNG)")
    async def test_image_content() -> CallToolResult:
        return CallToolResult(content=[ImageContent(type="image", data=PNG_B64, mime_type="image/png")])

    @server.tool(description="Returns audio (a short WAV)")
    async def test_audio_content() -> CallToolResult:
        return CallToolResult(content=[AudioContent(type="audio", data=WAV_B64, mime_type="audio/wav")])

    @server.tool(description="Returns an embedded text resource")
    async def test_embedded_resource() -> CallToolResult:
        return CallToolResult(content=[EmbeddedResource(type="resource", resource=TextResourceContents(
            uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."))])

    @server.tool(description="Returns text, an image and an embedded resource")
    async def test_multiple_content_types() -> CallToolResult:
        return CallToolResult(content=[
            _text("Multiple content types test:"),
            ImageContent(type="image", data=PNG_B64, mime_type="image/png"),
            EmbeddedResource(type="resource", resource=TextResourceContents(
                uri="test://mixed-content-resource", mime_type="application/json", text='{"test":"data","value":123}')),
        ])

    @server.tool(description="Sends three info log notifications while it runs")
    async def test_tool_with_logging(ctx: Context) -> CallToolResult:
        for i, message in enumerate(("Tool execution started", "Tool processing data", "Tool execution completed")):
            if i:
                await asyncio.sleep(STEP_S)
            await log(ctx, "info", message)
        return CallToolResult(content=[_text("Tool with logging executed successfully")])

    @server.tool(description="Always fails")
    async def test_error_handling() -> CallToolResult:
        raise ToolError("This tool intentionally returns an error for testing")

    @server.tool(description="Reports progress 0, 50 and 100 of 100")
    async def test_tool_with_progress(ctx: Context) -> CallToolResult:
        for i, done in enumerate((0, 50, 100)):
            if i:
                await asyncio.sleep(STEP_S)
            await ctx.report_progress(done, 100, f"{done}%")
        return CallToolResult(content=[_text("Progress tool completed")])

    @server.tool(description="Asks the client's LLM (sampling/createMessage)")
    async def test_sampling(prompt: str, ctx: Context) -> CallToolResult:
        with warnings.catch_warnings():  # sampling is deprecated from 2026-07-28; the suite still tests it
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            result = await ctx.session.create_message(
                messages=[SamplingMessage(role="user", content=_text(prompt))], max_tokens=100,
                related_request_id=ctx.request_id)
        content = result.content
        text = content.text if isinstance(content, TextContent) else json.dumps(content.model_dump(mode="json"))
        return CallToolResult(content=[_text(f"LLM response: {text}")])

    async def elicit(ctx: Context, message: str, schema: dict[str, Any]) -> CallToolResult:
        answer = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
        return CallToolResult(content=[_text(
            f"Elicitation completed: action={answer.action}, content={json.dumps(answer.content)}")])

    @server.tool(description="Asks the user for a username and an email (elicitation/create)")
    async def test_elicitation(message: str, ctx: Context) -> CallToolResult:
        answer = await ctx.session.elicit_form(message, {
            "type": "object", "required": ["username", "email"],
            "properties": {"username": {"type": "string", "description": "User's response"},
                           "email": {"type": "string", "description": "User's email address"}},
        }, related_request_id=ctx.request_id)
        return CallToolResult(content=[_text(f"User response: action={answer.action}, "
                                             f"content={json.dumps(answer.content)}")])

    @server.tool(description="Elicitation whose fields have defaults (SEP-1034)")
    async def test_elicitation_sep1034_defaults(ctx: Context) -> CallToolResult:
        return await elicit(ctx, "Please review and update the form fields with defaults", SEP1034_SCHEMA)

    @server.tool(description="Elicitation with the five enum forms (SEP-1330)")
    async def test_elicitation_sep1330_enums(ctx: Context) -> CallToolResult:
        return await elicit(ctx, "Please select options from the enum fields", SEP1330_SCHEMA)

    @server.tool(description="Closes its SSE stream mid-call; the result comes after the client reconnects")
    async def test_reconnection(ctx: Context) -> CallToolResult:
        await asyncio.sleep(STEP_S * 2)
        await ctx.close_sse_stream()  # a no-op without an event store, or before protocol 2025-11-25
        await asyncio.sleep(STEP_S * 2)
        return CallToolResult(content=[_text("Reconnection test completed successfully")])


def _resources(server: MCPServer) -> None:
    @server.resource("test://static-text", name="static-text", description="A static text resource",
                     mime_type="text/plain")
    def static_text() -> str:
        return "This is the content of the static text resource."

    @server.resource("test://static-binary", name="static-binary", description="A static binary resource (PNG)",
                     mime_type="image/png")
    def static_binary() -> bytes:
        return PNG

    @server.resource("test://watched-resource", name="watched-resource", description="A resource to subscribe to",
                     mime_type="text/plain")
    def watched() -> str:
        return "Watched resource content"

    @server.resource("test://template/{id}/data", name="template-data", description="Data for an id",
                     mime_type="application/json")
    def template_data(id: str) -> str:
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


def _prompts(server: MCPServer) -> None:
    @server.prompt(description="A simple prompt without arguments")
    def test_simple_prompt() -> list[UserMessage]:
        return [UserMessage("This is a simple prompt for testing.")]

    @server.prompt(description="A prompt with two required arguments")
    def test_prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
        return [UserMessage(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'")]

    @server.prompt(description="A prompt that embeds a resource")
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
        return [UserMessage(EmbeddedResource(type="resource", resource=TextResourceContents(
                    uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."))),
                UserMessage("Please process the embedded resource above.")]

    @server.prompt(description="A prompt with an image")
    def test_prompt_with_image() -> list[UserMessage]:
        return [UserMessage(ImageContent(type="image", data=PNG_B64, mime_type="image/png")),
                UserMessage("Please analyze the image above.")]


__all__ = ["complete", "install", "schema_tools"]
