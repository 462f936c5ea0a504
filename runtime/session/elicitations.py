"""Elicitations: an MCP server asks the session's user for input during a tool call, answered like an approval.

Held by the session supervisor, beside :mod:`troupe.runtime.session.approvals`. The MCP connection (in this
process, or in a node's MCP actor) hands the request to the calling agent's tool call, which asks the supervisor
(:meth:`Elicitations.request`): it records ``elicitation.requested`` (with the form's schema, for a client to
show), then the team's :class:`~troupe.runtime.approval_policy.ApprovalPolicy` ``elicitation`` rules (or its
``default``) answer at once, or the session's client does (:meth:`Elicitations.answer`: ``Session.answer_elicitation``,
the CLI prompt), or nobody does within the server's ``elicitation_timeout_s`` and it is declined
(``by: timeout``); the session's end declines what is pending (``by: session``). ``elicitation.answered`` says
who answered; the values given go back to the server, never into the events (only the fields they filled).
An accepted form gets its schema's defaults and is validated: a client's misfit answer is refused (the request
stays pending, so it can answer again); a policy's is declined (``by: invalid``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any, Literal

from pydantic import BaseModel

from troupe.runtime.approval_policy import ApprovalPolicy
from troupe.runtime.errors import ConfigError
from troupe.runtime.events import ElicitationAnsweredPayload, ElicitationRequestedPayload, Emitter
from troupe.tools.mcp.elicitation import apply_defaults, validation_errors

Action = Literal["accept", "decline", "cancel"]


class ElicitationRequest(BaseModel):
    """A pending request, as :meth:`Elicitations.pending` lists it."""

    id: str
    agent: str
    tool: str
    call_id: str
    server: str
    mode: Literal["form", "url"] = "form"
    message: str
    requested_schema: dict[str, Any] | None = None
    url: str | None = None
    elicitation_id: str | None = None
    timeout_s: float


class ElicitationAnswer(BaseModel):
    """What goes back to the MCP server (``content`` never reaches the events)."""

    id: str
    action: Action
    content: dict[str, Any] | None = None
    by: str
    reason: str = ""


class Elicitations:
    def __init__(self, *, session_id: str, emit: Emitter, policy: ApprovalPolicy | None = None) -> None:
        self.session_id = session_id
        self.emit = emit
        self.policy = policy
        """The team's approval policy; its ``elicitation`` rules (and ``default``) answer before anyone is asked."""
        self._pending: dict[str, tuple[ElicitationRequest, asyncio.Future[ElicitationAnswer], float]] = {}
        self._ids = itertools.count(1)

    async def request(self, *, agent: str, tool: str, call_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Record the request and wait for its answer (see the module); returns an :class:`ElicitationAnswer`'s dump."""
        req = ElicitationRequest(id=f"{self.session_id}:el{next(self._ids)}", agent=agent, tool=tool, call_id=call_id,
                                 server=str(request.get("server", "")), mode=request.get("mode") or "form",
                                 message=str(request.get("message", "")), requested_schema=request.get("requested_schema"),
                                 url=request.get("url"), elicitation_id=request.get("elicitation_id"),
                                 timeout_s=float(request.get("timeout_s") or 300.0))
        future: asyncio.Future[ElicitationAnswer] = asyncio.get_running_loop().create_future()
        self._pending[req.id] = (req, future, time.monotonic())
        fields = sorted((req.requested_schema or {}).get("properties") or {})
        self.emit(ElicitationRequestedPayload(id=req.id, call_id=call_id, server=req.server, mode=req.mode,
                                              message=req.message[:500], fields=fields, url=req.url,
                                              timeout_s=req.timeout_s, requested_schema=req.requested_schema),
                  agent=agent, tool=tool, status="pending")
        ruled = self.policy.elicit(req.server, req.message) if self.policy is not None else None
        if ruled is not None:
            action, content, reason = ruled
            if action == "accept" and (errors := self._misfit(req, content)):
                return self._record(req, "decline", None, "invalid", f"the policy's answer does not fit: {errors}")
            return self._record(req, action, content, "policy", reason)  # type: ignore[arg-type]
        try:
            answer = await asyncio.wait_for(asyncio.shield(future), req.timeout_s)
        except TimeoutError:
            return self._record(req, "decline", None, "timeout", f"no answer within {req.timeout_s:g}s")
        finally:
            self._pending.pop(req.id, None)
        return answer.model_dump()

    def answer(self, elicitation_id: str, *, action: Action, content: dict[str, Any] | None = None,
               reason: str = "", by: str = "client") -> dict[str, Any]:
        """Answer a pending request; an accepted form that does not fit its schema (defaults filled in) is
        refused with what is wrong, and the request stays pending."""
        try:
            req, future, _ = self._pending[elicitation_id]
        except KeyError:
            known = ", ".join(self._pending) or "none"
            raise ConfigError(f"no pending elicitation {elicitation_id!r} (it was answered, timed out, or never "
                              f"existed); pending: {known}", elicitation=elicitation_id) from None
        if action == "accept" and (errors := self._misfit(req, content or {})):
            raise ConfigError(f"elicitation {elicitation_id!r}: the answer does not fit the form: {errors}",
                              elicitation=elicitation_id)
        out = self._record(req, action, content, by, reason)
        if not future.done():
            future.set_result(ElicitationAnswer.model_validate(out))
        return {k: v for k, v in out.items() if k != "content"}

    @staticmethod
    def _misfit(req: ElicitationRequest, content: dict[str, Any]) -> str:
        if req.mode == "url":
            return ""
        return "; ".join(validation_errors(req.requested_schema, apply_defaults(req.requested_schema, content)))

    def _record(self, req: ElicitationRequest, action: Action, content: dict[str, Any] | None, by: str,
                reason: str) -> dict[str, Any]:
        entry = self._pending.pop(req.id, None)
        started = entry[2] if entry is not None else time.monotonic()
        if action == "accept" and req.mode == "form":
            content = apply_defaults(req.requested_schema, content)
        else:
            content = None
        self.emit(ElicitationAnsweredPayload(id=req.id, call_id=req.call_id, action=action, by=by, reason=reason,
                                             content_keys=sorted(content or {}),
                                             duration_ms=round((time.monotonic() - started) * 1000, 1)),
                  agent=req.agent, tool=req.tool, status=action)
        return ElicitationAnswer(id=req.id, action=action, content=content, by=by, reason=reason).model_dump()

    def pending(self) -> list[dict[str, Any]]:
        return [req.model_dump() for req, _, _ in self._pending.values()]

    def decline_all(self, reason: str) -> None:
        """The session ended: nobody is left to answer."""
        for elicitation_id in list(self._pending):
            self.answer(elicitation_id, action="decline", reason=reason, by="session")


__all__ = ["ElicitationAnswer", "ElicitationRequest", "Elicitations"]
