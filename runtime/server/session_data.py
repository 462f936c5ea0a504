"""Approvals (list, approve, deny), and a session's blackboard and task tree."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from troupe.runtime.server.auth import Principal, can_see, principal, require_role
from troupe.runtime.server.errors import ApiError
from troupe.runtime.server.models import (
    ApprovalInfo,
    BlackboardEntry,
    BlackboardView,
    DecisionRequest,
    DecisionResponse,
    TaskInfo,
    TaskList,
)
from troupe.runtime.server.relay import relay, session_op
from troupe.runtime.server.sessions import State, holding, visible
from troupe.runtime.server.state import ServerState

router = APIRouter(tags=["session data"])
Reader = Annotated[Principal, Depends(principal)]
Writer = Annotated[Principal, Depends(require_role("user"))]


def _approval(session_id: str, raw: dict[str, Any]) -> ApprovalInfo:
    return ApprovalInfo(id=raw["id"], session_id=session_id, agent=raw["agent"], tool=raw["tool"],
                        arguments=raw.get("arguments", ""), risk=raw.get("risk"), created_at=raw.get("created_at"))


@router.get("/approvals", response_model=list[ApprovalInfo])
async def list_approvals(state: State, who: Reader, response: Response,
                         session: str | None = None) -> list[ApprovalInfo] | Response:
    """Pending approvals of one session (``?session=``, wherever it is held), or of the sessions the caller may
    see that this server process holds."""
    if session is not None:
        info = await visible(state, who, session)
        return await relay(state, info, "approvals", {}, who.user, response)
    out: list[ApprovalInfo] = []
    for sid in [sid for sid, h in state.held.items() if can_see(who, h.info.user)]:
        out += await _approvals(state, sid, {}, who.user)
    return out


@session_op("approvals", list[ApprovalInfo])
async def _approvals(state: ServerState, sid: str, args: dict[str, Any], user: str) -> list[ApprovalInfo]:
    held = state.held.get(sid)
    if held is None or held.info.status != "running":
        return []
    return [_approval(sid, a) for a in await held.session.approvals()]


def _session_of(approval_id: str) -> str:
    sid, sep, _ = approval_id.rpartition(":")
    if not sep:
        raise ApiError(404, f"unknown approval {approval_id}", "list pending approvals with GET /api/v1/approvals")
    return sid


async def _relay_decision(state: ServerState, who: Principal, aid: str, approved: bool, reason: str,
                          response: Response) -> DecisionResponse | Response:
    sid = _session_of(aid)
    info = await visible(state, who, sid)
    return await relay(state, info, "decide", {"id": aid, "approved": approved, "reason": reason}, who.user, response)


@session_op("decide", DecisionResponse)
async def _decide(state: ServerState, sid: str, args: dict[str, Any], user: str) -> DecisionResponse:
    session = (await holding(state, sid)).session
    aid, approved = str(args["id"]), bool(args["approved"])
    pending = {a["id"] for a in await session.approvals()}
    if aid not in pending:
        raise ApiError(404, f"approval {aid} is not pending", "it was decided already, timed out, or never existed")
    why = args.get("reason") or f"{'approved' if approved else 'denied'} by {user} over HTTP"
    detail = await (session.approve(aid, why) if approved else session.deny(aid, why))
    return DecisionResponse(id=aid, session_id=sid, approved=approved, detail=detail or {})


@router.post("/approvals/{aid}/approve", response_model=DecisionResponse)
async def approve(aid: str, state: State, who: Writer, response: Response,
                  body: DecisionRequest | None = None) -> DecisionResponse | Response:
    return await _relay_decision(state, who, aid, True, body.reason if body else "", response)


@router.post("/approvals/{aid}/deny", response_model=DecisionResponse)
async def deny(aid: str, state: State, who: Writer, response: Response,
               body: DecisionRequest | None = None) -> DecisionResponse | Response:
    return await _relay_decision(state, who, aid, False, body.reason if body else "", response)


@router.get("/sessions/{sid}/blackboard", response_model=BlackboardView)
async def blackboard(sid: str, state: State, who: Reader, response: Response,
                     prefix: str = "") -> BlackboardView | Response:
    info = await visible(state, who, sid)
    return await relay(state, info, "blackboard", {"prefix": prefix}, who.user, response)


@session_op("blackboard", BlackboardView)
async def _blackboard(state: ServerState, sid: str, args: dict[str, Any], user: str) -> BlackboardView:
    entries = await (await holding(state, sid)).session.blackboard(str(args.get("prefix", "")))
    return BlackboardView(entries=[BlackboardEntry(key=e.key, value=e.value, version=e.version, writer=str(e.author))
                                   for e in entries])


@router.get("/sessions/{sid}/tasks", response_model=TaskList)
async def tasks(sid: str, state: State, who: Reader, response: Response) -> TaskList | Response:
    info = await visible(state, who, sid)
    return await relay(state, info, "tasks", {}, who.user, response)


@session_op("tasks", TaskList)
async def _tasks(state: ServerState, sid: str, args: dict[str, Any], user: str) -> TaskList:
    found = await (await holding(state, sid)).session.tasks()
    return TaskList(tasks=[TaskInfo(id=str(t.id), parent_id=str(t.parent_id) if t.parent_id else None, goal=t.goal,
                                    assignee=str(t.assignee) if t.assignee else None, status=str(t.status),
                                    output=t.output) for t in found])


__all__ = ["router"]
