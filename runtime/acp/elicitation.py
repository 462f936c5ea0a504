"""An MCP server's request for input (``elicitation.requested``) put to the ACP client.

A client that advertised ``clientCapabilities.elicitation.form`` (or ``.url`` for a URL request) gets ACP's
own ``elicitation/create``, scoped to the session and the tool call, with the MCP form's schema: its
accept/decline/cancel and content go back to the MCP server (a misfit form is declined, with why). Any
other client gets a ``session/request_permission`` titled with the server's question: *allow* accepts
the form with its schema's defaults (a form with a required field and no default is then declined by
the session's validation), *reject* or a cancelled request declines. A client that fails to answer
declines. The MCP server's ``elicitation_timeout_s`` still applies (docs/acp.md).
"""

from __future__ import annotations

import logging
from typing import Any

from acp.schema import AllowedOutcome, ElicitationFormSessionMode, ElicitationSchema, ElicitationUrlSessionMode

from troupe.runtime.events import Event

log = logging.getLogger("troupe.acp")


def client_modes(client_capabilities: Any) -> set[str]:
    """The elicitation modes (``form``, ``url``) the client advertised at ``initialize``."""
    caps = getattr(client_capabilities, "elicitation", None)
    return {m for m in ("form", "url") if caps is not None and getattr(caps, m, None) is not None}


async def ask(client: Any, acp_id: str, session: Any, event: Event, tool_call: Any, modes: set[str],
              options: list[Any], allow: str) -> None:
    """Ask the client (see the module) and answer the session's pending elicitation."""
    data = event.data
    eid, mode = str(data.get("id")), str(data.get("mode") or "form")
    message = f"MCP server {data.get('server')!r} asks: {data.get('message')}"
    content: dict[str, Any] | None = None
    try:
        if mode in modes:
            scope = {"session_id": acp_id, "tool_call_id": tool_call.tool_call_id}
            how = (ElicitationFormSessionMode(requested_schema=ElicitationSchema.model_validate(
                       data.get("requested_schema") or {"type": "object"}), **scope) if mode == "form"
                   else ElicitationUrlSessionMode(elicitation_id=eid, url=data.get("url"), **scope))
            answer = await client.create_elicitation(message=message, mode=how)
            action, content = str(answer.action), getattr(answer, "content", None)
            reason = f"{action} by the ACP client (elicitation/create)"
        else:
            asked = tool_call.model_copy(update={"title": message})
            answer = await client.request_permission(session_id=acp_id, tool_call=asked, options=options)
            allowed = isinstance(answer.outcome, AllowedOutcome) and answer.outcome.option_id == allow
            action, content = ("accept", {}) if allowed else ("decline", None)
            reason = ("allowed by the ACP client: the form's defaults (session/request_permission)" if allowed
                      else "rejected or cancelled by the ACP client (session/request_permission)")
    except Exception as e:  # the client failed to answer: declined, never silently accepted
        action, reason = "decline", f"the ACP client did not answer ({type(e).__name__}: {e})"
    if action not in ("accept", "decline", "cancel"):
        action = "decline"
    try:
        await session.answer_elicitation(eid, action, content, reason)
    except Exception as e:  # a misfit form, or answered meanwhile (timeout, the session ended)
        log.info("elicitation %s: the client's answer was not taken: %s", eid, e)
        if action == "accept":
            try:
                await session.answer_elicitation(eid, "decline", None, f"the ACP client's answer does not fit: {e}")
            except Exception:
                pass


__all__ = ["ask", "client_modes"]
