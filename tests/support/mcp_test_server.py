"""Troupe's own MCP test server: one tool per behaviour the client layer must handle.

Run it as ``python -m tests.support.mcp_test_server --stdio`` or ``--http PORT`` (streamable HTTP
on 127.0.0.1, endpoint ``/mcp``). Built on the SDK's ``MCPServer``, so it speaks whatever protocol
revision the client negotiates; nothing is written to stdout in stdio mode (the SDK logs to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
from typing import Annotated

from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    Elicit,
    ElicitationResult,
    Image,
    ListRoots,
    MCPServer,
    Resolve,
    Sample,
)
from mcp.types import (
    CallToolResult,
    CreateMessageResult,
    EmbeddedResource,
    ListRootsResult,
    SamplingMessage,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
)
from pydantic import BaseModel

# A 1x1 transparent PNG: small, valid, and its size is known to the tests.
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
NOTES_TEXT = "Standup at 10:00. Ship the MCP layer."
SAMPLING_MAX_TOKENS = 5000
"""What ``ask`` requests; the client caps it with ``sampling_max_tokens``."""

server: MCPServer = MCPServer("troupe-test", version="1.0", log_level="WARNING")


class Sum(BaseModel):
    sum: int


@server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> Sum:
    """Add two integers (structured result)."""
    return Sum(sum=a + b)


@server.tool()
def image() -> Image:
    """A 1x1 PNG."""
    return Image(data=PNG_1X1, format="png")


@server.tool()
def resource() -> CallToolResult:
    """An embedded text resource."""
    contents = TextResourceContents(uri="notes://today", mime_type="text/plain", text=NOTES_TEXT)
    return CallToolResult(content=[EmbeddedResource(type="resource", resource=contents)])


@server.tool()
async def slow(seconds: float, ctx: Context) -> str:
    """Sleep for ``seconds``, reporting progress four times."""
    steps = 4
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
        await asyncio.sleep(seconds / steps)
    return f"slept {seconds}s"


@server.tool()
def fail() -> CallToolResult:
    """Always fails (an error result, not a protocol error)."""
    return CallToolResult(content=[TextContent(type="text", text="this tool always fails")], is_error=True)


class Booking(BaseModel):
    name: str
    seats: int = 2


def _ask_booking() -> Elicit[Booking]:
    return Elicit("Who is the booking for?", Booking)


@server.tool()
def book(got: Annotated[ElicitationResult[Booking], Resolve(_ask_booking)]) -> str:
    """Ask the user who the booking is for (MCP elicitation: a form with a default)."""
    if not isinstance(got, AcceptedElicitation):
        return f"not booked ({got.action})"
    return f"booked {got.data.seats} seats for {got.data.name}"


def _roots() -> ListRoots:
    return ListRoots()


@server.tool()
def roots(got: Annotated[ListRootsResult, Resolve(_roots)]) -> str:
    """The client's roots (``roots/list``), one URI a line."""
    return "\n".join(str(r.uri) for r in got.roots)


def _sample(question: str) -> Sample:
    return Sample(
        [SamplingMessage(role="user", content=TextContent(type="text", text=question))],
        max_tokens=SAMPLING_MAX_TOKENS,
        system_prompt="Answer in one short sentence.",
        temperature=0.0,
    )


@server.tool()
def ask(question: str, answer: Annotated[CreateMessageResult, Resolve(_sample)]) -> str:
    """Ask the client's model a question (MCP sampling) and return its answer."""
    content = answer.content
    text = content.text if isinstance(content, TextContent) else str(content)
    return f"model {answer.model} says: {text}"


@server.tool()
def crash() -> str:
    """Kill the server process on the spot."""
    os._exit(3)


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def getenv(name: str) -> str:
    """An environment variable of the server process ("<unset>" if it has none)."""
    return os.environ.get(name, "<unset>")


@server.tool()
def cwd() -> str:
    """The server's working directory."""
    return os.getcwd()


@server.tool()
def header(name: str, ctx: Context) -> str:
    """A header of the HTTP request that carried this call ("<none>" over stdio or if absent)."""
    headers = ctx.headers or {}
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "<none>")


@server.resource("notes://today", mime_type="text/plain", description="Today's notes")
def notes() -> str:
    return NOTES_TEXT


@server.prompt()
def greet(name: str) -> str:
    """Greet someone by name."""
    return f"Please greet {name} warmly."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--stdio", action="store_true")
    mode.add_argument("--http", type=int, metavar="PORT")
    args = parser.parse_args()
    if args.stdio:
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=args.http)


if __name__ == "__main__":
    main()
