"""The protocol methods the SDK's ``MCPServer`` leaves to the application, registered on its
request table: ``logging/setLevel`` (and the log notifications that honour it), ``completion/complete``,
``resources/subscribe`` / ``unsubscribe``, and the spec's error codes where the SDK answers
otherwise (``prompts/get`` or ``tools/call`` for an unknown name: -32602 Invalid params).

State is per client connection (the SDK makes a ``ServerSession`` per request; the connection
behind it is what stays), so two clients set their own log levels and hold their own subscriptions.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, get_args

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CompleteRequestParams,
    CompleteResult,
    Completion,
    CompletionArgument,
    CompletionContext,
    EmptyResult,
    GetPromptRequestParams,
    LoggingLevel,
    LoggingMessageNotification,
    LoggingMessageNotificationParams,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from troupe.runtime.mcp_server.subscriptions import Subscriptions

log = logging.getLogger("troupe.mcp")

LEVELS: tuple[str, ...] = get_args(LoggingLevel)
"""Least to most severe: debug, info, notice, warning, error, critical, alert, emergency."""
DEFAULT_LEVEL = "info"
"""What a client that never called ``logging/setLevel`` receives (this level and above)."""

Completer = Callable[[PromptReference | ResourceTemplateReference, CompletionArgument, CompletionContext | None],
                     Awaitable[Completion | None]]


def connection_of(session: Any) -> object:
    """The client connection behind a per-request ``ServerSession`` (the object that lives as long
    as the client does); the SDK keeps it private, so fall back to the session itself."""
    return getattr(session, "_connection", session)


class ClientLogs:
    """Each connection's ``logging/setLevel``, and log notifications filtered by it."""

    def __init__(self, default: str = DEFAULT_LEVEL) -> None:
        self.default = default
        self._levels: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()

    def set_level(self, session: Any, level: str) -> None:
        self._levels[connection_of(session)] = level

    def level(self, session: Any) -> str:
        return self._levels.get(connection_of(session), self.default)

    def allows(self, session: Any, level: str) -> bool:
        return LEVELS.index(level) >= LEVELS.index(self.level(session))

    async def send(self, ctx: Context, level: LoggingLevel, data: Any, *, logger: str = "troupe") -> bool:
        """Send a ``notifications/message`` on the request's stream if the client's level lets it
        through; returns whether it was sent. (On 2026-07-28+ connections, which have no setLevel and
        opt in per request, nothing is sent.)"""
        session = ctx.session
        if session.protocol_version in MODERN_PROTOCOL_VERSIONS or not self.allows(session, level):
            return False
        try:
            await session.send_notification(LoggingMessageNotification(
                params=LoggingMessageNotificationParams(level=level, data=data, logger=logger)),
                related_request_id=ctx.request_id)
        except Exception:  # a client gone mid-call: the call's own outcome says what happened
            log.debug("could not send a log notification", exc_info=True)
            return False
        return True


def install(server: MCPServer, *, logs: ClientLogs, subscriptions: Subscriptions,
            completers: list[Completer], known_uri: Callable[[str], Awaitable[bool]]) -> None:
    """Register the handlers on ``server``'s request table (the SDK's low-level ``Server``)."""
    low = server._lowlevel_server  # noqa: SLF001 (MCPServer has no public hook for these methods)

    async def set_level(ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
        logs.set_level(ctx.session, params.level)
        return EmptyResult()

    async def complete(ctx: ServerRequestContext[Any], params: CompleteRequestParams) -> CompleteResult:
        for completer in completers:
            found = await completer(params.ref, params.argument, params.context)
            if found is not None:
                return CompleteResult(completion=found)
        return CompleteResult(completion=Completion(values=[], total=0, has_more=False))

    async def subscribe(ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        uri = str(params.uri)
        if not await known_uri(uri):
            raise MCPError(code=INVALID_PARAMS, message=f"Resource not found: {uri} (resources/list and "
                                                        "resources/templates/list show what there is)",
                           data={"uri": uri})
        await subscriptions.subscribe(uri, connection_of(ctx.session), ctx.session)
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        subscriptions.unsubscribe(str(params.uri), connection_of(ctx.session))
        return EmptyResult()

    sdk_get_prompt = low.get_request_handler("prompts/get")
    sdk_call_tool = low.get_request_handler("tools/call")
    assert sdk_get_prompt is not None and sdk_call_tool is not None

    async def get_prompt(ctx: ServerRequestContext[Any], params: GetPromptRequestParams) -> Any:
        names = [p.name for p in await server.list_prompts()]
        if params.name not in names:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {params.name} (prompts: {', '.join(names)})",
                           data={"name": params.name})
        missing = [a.name for p in await server.list_prompts() if p.name == params.name for a in p.arguments or []
                   if a.required and a.name not in (params.arguments or {})]
        if missing:
            raise MCPError(code=INVALID_PARAMS, message=f"prompt {params.name} needs the arguments "
                                                        f"{', '.join(missing)}", data={"missing": missing})
        return await sdk_get_prompt.handler(ctx, params)

    async def call_tool(ctx: ServerRequestContext[Any], params: CallToolRequestParams) -> Any:
        tools = [t.name for t in await server.list_tools()]
        if params.name not in tools:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {params.name} (tools: {', '.join(tools)})",
                           data={"name": params.name})
        return await sdk_call_tool.handler(ctx, params)

    low.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    low.add_request_handler("completion/complete", CompleteRequestParams, complete)
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    low.add_request_handler("prompts/get", GetPromptRequestParams, get_prompt)
    low.add_request_handler("tools/call", CallToolRequestParams, call_tool)


__all__ = ["DEFAULT_LEVEL", "LEVELS", "ClientLogs", "Completer", "connection_of", "install"]
