"""Approvals (list, approve, deny), and a session's blackboard and task tree."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

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
from troupe.runtime.server.sessions import State, held_or_409, visible

router = APIRouter(tags=["session data"])
Reader = Annotated[Principal, Depends(principal)]
Writer = Annotated[Principal, Depends(require_role("user"))]


def _approval(session_id: str, raw: dict[str, Any]) -> ApprovalInfo:
    return ApprovalInfo(id=raw["id"], session_id=session_id, agent=raw["agent"], tool=raw["tool"],
                        arguments=raw.get("arguments", ""), risk=raw.get("risk"), created_at=raw.get("created_at"))


@router.get("/approvals", response_model=list[ApprovalInfo])
async def list_approvals(state: State, who: Reader, session: str | None = None) -> list[ApprovalInfo]:
    if session is not None:
        await visible(state, who, session)
        targets = [session] if session in state.held else []
    else:
        targets = [sid for sid, h in state.held.items() if can_see(who, h.info.user)]
    out: list[ApprovalInfo] = []
    for sid in targets:
        held = state.held[sid]
        if held.info.status != "running":
            continue
        out += [_approval(sid, a) for a in await held.session.approvals()]
    return out


def _session_of(approval_id: str) -> str:
    sid, sep, _ = approval_id.rpartition(":")
    if not sep:
        raise ApiError(404, f"unknown approval {approval_id}", "list pending approvals with GET /api/v1/approvals")
    return sid


async def _decide(state: Any, who: Principal, aid: str, approved: bool, reason: str) -> DecisionResponse:
    sid = _session_of(aid)
    info = await visible(state, who, sid)
    held_or_409(state, info)
    session = state.held[sid].session
    pending = {a["id"] for a in await session.approvals()}
    if aid not in pending:
        raise ApiError(404, f"approval {aid} is not pending", "it was decided already, timed out, or never existed")
    why = reason or f"{'approved' if approved else 'denied'} by {who.user} over HTTP"
    detail = await (session.approve(aid, why) if approved else session.deny(aid, why))
    return DecisionResponse(id=aid, session_id=sid, approved=approved, detail=detail or {})


@router.post("/approvals/{aid}/approve", response_model=DecisionResponse)
async def approve(aid: str, state: State, who: Writer, body: DecisionRequest | None = None) -> DecisionResponse:
    return await _decide(state, who, aid, True, body.reason if body else "")


@router.post("/approvals/{aid}/deny", response_model=DecisionResponse)
async def deny(aid: str, state: State, who: Writer, body: DecisionRequest | None = None) -> DecisionResponse:
    return await _decide(state, who, aid, False, body.reason if body else "")


@router.get("/sessions/{sid}/blackboard", response_model=BlackboardView)
async def blackboard(sid: str, state: State, who: Reader, prefix: str = "") -> BlackboardView:
    info = await visible(state, who, sid)
    held_or_409(state, info)
    entries = await state.held[sid].session.blackboard(prefix)
    return BlackboardView(entries=[BlackboardEntry(key=e.key, value=e.value, version=e.version, writer=str(e.author))
                                   for e in entries])


@router.get("/sessions/{sid}/tasks", response_model=TaskList)
async def tasks(sid: str, state: State, who: Reader) -> TaskList:
    info = await visible(state, who, sid)
    held_or_409(state, info)
    found = await state.held[sid].session.tasks()
    return TaskList(tasks=[TaskInfo(id=str(t.id), parent_id=str(t.parent_id) if t.parent_id else None, goal=t.goal,
                                    assignee=str(t.assignee) if t.assignee else None, status=str(t.status),
                                    output=t.output) for t in found])


__all__ = ["router"]
