"""Approvals: a tool call that needs one waits here until the session's client decides.

Held by the session supervisor. ``request`` records ``approval.requested`` and waits;
``decide`` (from the Python API or the CLI prompt) answers it; a timeout or the end of the session
denies it. With an :class:`~troupe.runtime.approval_policy.ApprovalPolicy` (the team's
``approval_policy``; ``troupe eval run --approve``) the policy decides at once unless it says ``ask``;
it sees the call's risk score (``risk_at_least`` / ``risk_below`` rules) when the call was scored.
Either way ``approval.decided`` says who decided (``client``, ``timeout``, ``session``, ``policy``) and why.
A replay (``troupe replay``) decides each request as its record did, asking nobody.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from pydantic import BaseModel

from troupe.runtime.approval_policy import ApprovalPolicy
from troupe.runtime.errors import ConfigError
from troupe.runtime.events import ApprovalDecidedPayload, ApprovalRequestedPayload, Emitter
from troupe.runtime.events.tool import RiskScore


class ApprovalRequest(BaseModel):
    id: str
    agent: str
    tool: str
    arguments: str
    call_id: str
    timeout_s: float
    risk: RiskScore | None = None
    """The call's risk score and reasons (``risk:`` in the team file), when it was scored."""


class ApprovalDecision(BaseModel):
    id: str
    approved: bool
    by: str
    """``client``, ``timeout``, ``session`` or ``policy``."""
    reason: str = ""


class Approvals:
    def __init__(self, *, session_id: str, emit: Emitter, policy: ApprovalPolicy | None = None) -> None:
        self.session_id = session_id
        self.emit = emit
        self.policy = policy
        """Decides requests by rules before anyone is asked (set by the session's host from the team)."""
        self._pending: dict[str, tuple[ApprovalRequest, asyncio.Future[ApprovalDecision]]] = {}
        self._ids = itertools.count(1)
        self.decided: list[ApprovalDecision] = []

    async def request(self, *, agent: str, tool: str, arguments: str, call_id: str, timeout_s: float,
                      risk: dict[str, Any] | None = None, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record the request and wait for its decision; ``recorded`` (a replay's recorded decision:
        ``approved``, ``by``, ``reason``) decides it at once, without asking anyone."""
        req = ApprovalRequest(id=f"{self.session_id}:a{next(self._ids)}", agent=agent, tool=tool, arguments=arguments,
                              call_id=call_id, timeout_s=timeout_s,
                              risk=RiskScore.model_validate(risk) if risk is not None else None)
        future: asyncio.Future[ApprovalDecision] = asyncio.get_running_loop().create_future()
        self._pending[req.id] = (req, future)
        self.emit(ApprovalRequestedPayload(**req.model_dump(exclude_none=True)), agent=agent, tool=tool, status="pending")
        if recorded is not None:
            return self._record(req, approved=bool(recorded.get("approved")), by=str(recorded.get("by") or "client"),
                                reason=str(recorded.get("reason") or "")).model_dump()
        score = req.risk.score if req.risk is not None else None
        ruled = self.policy.decide(tool, arguments, score) if self.policy is not None else None
        if ruled is not None:
            self._pending.pop(req.id, None)
            return self._record(req, approved=ruled[0], by="policy", reason=ruled[1]).model_dump()
        try:
            decision = await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            decision = self._record(req, approved=False, by="timeout", reason=f"no answer within {timeout_s:g}s")
        except asyncio.CancelledError:  # the asking call was stopped (its turn cancelled): the request ends, denied
            if req.id in self._pending:
                self._record(req, approved=False, by="session", reason="the call was cancelled")
            raise
        finally:
            self._pending.pop(req.id, None)
        return decision.model_dump()

    def decide(self, approval_id: str, *, approved: bool, reason: str = "", by: str = "client") -> dict[str, Any]:
        try:
            req, future = self._pending[approval_id]
        except KeyError:
            known = ", ".join(self._pending) or "none"
            raise ConfigError(f"no pending approval {approval_id!r} (it was decided, timed out, or never existed); "
                              f"pending: {known}", approval=approval_id) from None
        decision = self._record(req, approved=approved, by=by, reason=reason)
        if not future.done():
            future.set_result(decision)
        return decision.model_dump()

    def _record(self, req: ApprovalRequest, *, approved: bool, by: str, reason: str) -> ApprovalDecision:
        self._pending.pop(req.id, None)
        decision = ApprovalDecision(id=req.id, approved=approved, by=by, reason=reason)
        self.decided.append(decision)
        self.emit(ApprovalDecidedPayload(**decision.model_dump(), call_id=req.call_id),
                  agent=req.agent, tool=req.tool, status="approved" if approved else "denied")
        return decision

    def pending(self) -> list[dict[str, Any]]:
        return [req.model_dump() for req, _ in self._pending.values()]

    def deny_all(self, reason: str) -> None:
        """The session ended: nobody is left to approve."""
        for approval_id in list(self._pending):
            self.decide(approval_id, approved=False, reason=reason, by="session")


__all__ = ["ApprovalDecision", "ApprovalRequest", "Approvals"]
