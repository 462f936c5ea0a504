"""The policy every tool call passes before it runs: permission level and scopes, its risk score
(:mod:`troupe.runtime.agent.risk`), then approval.

Levels are ordered, L0 < L1 < ... < L5; by convention L0 reads nothing outside the call (a
calculator), L1 reads and writes the session's own state (blackboard, tasks, workspace reads), L2
writes files or calls local servers, L3 runs commands, L4 reaches external networks, L5 is
administration. Scopes name what a tool touches (``file:read``, ``file:write``, ``shell:exec``,
``network:external``); a grant of ``file:*`` or ``*`` covers a family or everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from troupe.runtime.agent.risk import RiskAssessment
from troupe.runtime.config import AgentSpec, PermissionLevel
from troupe.runtime.errors import ApprovalDeniedError, PermissionDeniedError
from troupe.runtime.events import Emitter, GuardrailDeniedPayload
from troupe.runtime.ids import SUPERVISOR
from troupe.runtime.llm.types import ToolCall
from troupe.tools.spec import ToolSpec

if TYPE_CHECKING:
    from troupe.tools.context import ToolContext

_ORDER = list(PermissionLevel)


def _has_scope(granted: list[str], needed: str) -> bool:
    return any(g in (needed, "*") or (g.endswith(":*") and needed.startswith(g[:-1])) for g in granted)


def check_permission(agent: AgentSpec, tool: ToolSpec) -> None:
    """Raise a model-visible :class:`PermissionDeniedError` if ``agent`` may not call ``tool``."""
    have = agent.permissions.level
    if _ORDER.index(have) < _ORDER.index(tool.level):
        raise PermissionDeniedError(
            f"permission denied: tool {tool.name!r} needs level {tool.level} and agent {agent.id!r} has {have}",
            tool=tool.name,
            reason="level",
        )
    missing = [s for s in tool.scopes if not _has_scope(agent.permissions.scopes, s)]
    if missing:
        raise PermissionDeniedError(
            f"permission denied: tool {tool.name!r} needs scope(s) {missing} that agent {agent.id!r} was not granted",
            tool=tool.name,
            reason="scope",
        )


def refuse_risky(spec: ToolSpec, call: ToolCall, risk: RiskAssessment, *, deny_at: int | None, emit: Emitter) -> None:
    """Raise a model-visible :class:`PermissionDeniedError` (reason ``risk``) when ``risk`` says deny,
    after recording ``guardrail.denied`` whose error lists the reasons."""
    if risk.decision != "deny":
        return
    message = (f"tool {spec.name!r} refused: its risk score is {risk.score} (the team denies from {deny_at}): "
               f"{risk.explain()}. Do not try it again; carry on without it, or explain in your answer why it was refused")
    emit(GuardrailDeniedPayload(id=call.id, reason="risk", error=message), tool=spec.name, status="denied")
    raise PermissionDeniedError(message, tool=spec.name, reason="risk")


async def request_approval(ctx: ToolContext, spec: ToolSpec, call: ToolCall, *, timeout_s: float, emit: Emitter,
                           risk: RiskAssessment | None = None, recorded: BaseModel | None = None) -> None:
    """Ask the session's client to approve this call; raise :class:`ApprovalDeniedError` unless it does.

    The supervisor records ``approval.requested`` (with ``risk``, the call's score and reasons, when
    given) and ``approval.decided``; no answer within ``timeout_s`` is a denial. ``recorded``: a replay's
    recorded decision (:class:`~troupe.runtime.agent.recorded.RecordedApproval`), taken without asking anyone.
    """
    extra = {"risk": risk.event().model_dump()} if risk is not None else {}
    if recorded is not None:
        extra["recorded"] = recorded.model_dump()
    decision = await ctx.services.call(
        SUPERVISOR, "request_approval", agent=str(ctx.agent), tool=spec.name, arguments=call.arguments[:2000],
        call_id=call.id, timeout_s=timeout_s, **extra,
    )
    if decision.get("approved"):
        return
    reason = decision.get("reason") or "denied"
    emit(GuardrailDeniedPayload(id=call.id, reason="approval", error=reason, approval_id=decision.get("id")),
         tool=spec.name, status="denied")
    raise ApprovalDeniedError(
        f"tool {spec.name!r} needs the user's approval and did not get it ({reason}); "
        "carry on without it, or explain in your answer what you would have done",
        tool=spec.name, reason="approval",
    )


__all__ = ["check_permission", "refuse_risky", "request_approval"]
