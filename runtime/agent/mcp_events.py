"""The events of what an MCP server asked of the client during a tool call: each elicitation becomes an
``elicitation.requested`` and an ``elicitation.answered`` event, each log message an ``mcp.log`` event
(from the summaries on :class:`~troupe.tools.mcp.McpCallResult`). An elicitation the session answered live
(:func:`session_asker`) was recorded by its supervisor as it happened and is not recorded again."""

from __future__ import annotations

import logging
from typing import Any

from troupe.runtime.events import (
    ElicitationAnsweredPayload,
    ElicitationRequestedPayload,
    Emitter,
    McpLogPayload,
    McpResourceUpdatedPayload,
    McpSubscriptionPayload,
)
from troupe.runtime.ids import SUPERVISOR, AgentId
from troupe.runtime.messages import Envelope, MessageKind, Trace

logger = logging.getLogger(__name__)


def session_asker(ctx: Any, tool: str, call_id: str) -> Any:
    """An MCP call's ``on_elicit``: each elicitation request of the call goes to the session's supervisor
    (recorded, answered by the client, the approval policy or a timeout) and its answer back to the server."""

    async def ask(request: dict[str, Any]) -> dict[str, Any]:
        return await ctx.services.call(SUPERVISOR, "request_elicitation", agent=str(ctx.agent), tool=tool,
                                       call_id=call_id, request=request)

    return ask


def session_updater(emit: Emitter, ctx: Any) -> Any:
    """A ``subscribe_resource`` call's ``on_update``: each update of the resource becomes a notice in the calling
    agent's mailbox and an ``mcp.resource_updated`` event (the subscription outlives the call: until the agent
    unsubscribes or its session ends)."""

    async def update(note: dict[str, Any]) -> None:
        server, uri = str(note.get("server", "")), str(note.get("uri", ""))
        try:
            sender = AgentId(f"mcp:{server}")
        except ValueError:
            sender = AgentId("mcp")
        envelope = Envelope(session_id=ctx.session_id, sender=sender, recipient=AgentId(ctx.agent),
                            kind=MessageKind.NOTICE, trace=Trace(run_id=ctx.run_id),
                            content=f"Resource {uri} of MCP server {server!r} was updated (you subscribed to it); read "
                                    f"it with {server}__read_resource to see what changed.",
                            data={"mcp_server": server, "resource_uri": uri})
        delivered = True
        try:
            await ctx.services.send(envelope)
        except Exception as e:  # noqa: BLE001 - the agent is gone (its session is ending): recorded as undelivered
            delivered = False
            logger.info("notice of %s for %s not delivered: %s", uri, ctx.agent, e)
        emit(McpResourceUpdatedPayload(server=server, uri=uri, delivered=delivered),
             status="delivered" if delivered else "undelivered")

    return update


def emit_client_requests(emit: Emitter, call_id: str, tool: str, result: Any) -> None:
    """Record ``result.elicitations`` and ``result.logs`` of the MCP call ``call_id`` to ``tool``."""
    for i, asked in enumerate(getattr(result, "elicitations", None) or (), start=1):
        if asked.get("recorded"):
            continue
        eid = asked.get("id") or f"{call_id}:e{i}"
        emit(ElicitationRequestedPayload(id=eid, call_id=call_id, server=asked.get("server", ""),
                                         mode=asked.get("mode", "form"), message=asked.get("message", ""),
                                         fields=list(asked.get("fields") or ()), url=asked.get("url"),
                                         timeout_s=asked.get("timeout_s")),
             tool=tool, status="pending")
        emit(ElicitationAnsweredPayload(id=eid, call_id=call_id, action=asked.get("action", "decline"),
                                        by=asked.get("by", "nobody"), reason=asked.get("reason", ""),
                                        content_keys=list(asked.get("content_keys") or ()),
                                        duration_ms=asked.get("duration_ms")),
             tool=tool, status=asked.get("action", "decline"))
    if (sub := getattr(result, "subscription", None)) is not None:
        emit(McpSubscriptionPayload(server=sub.get("server", ""), uri=sub.get("uri", ""), action=sub["action"],
                                    changed=bool(sub.get("changed", True)), call_id=call_id),
             tool=tool, status=sub["action"])
    for record in getattr(result, "logs", None) or ():
        emit(McpLogPayload(server=record.get("server", ""), level=record.get("level", "info"),
                           logger=record.get("logger"), data=record.get("data"), call_id=call_id),
             tool=tool, status=record.get("level", "info"))


__all__ = ["emit_client_requests", "session_asker", "session_updater"]
