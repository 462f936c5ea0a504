"""MCP elicitations over HTTP, answered like approvals: list the pending ones (each with its form's
``requested_schema``) and answer one (``accept`` with the form's values, ``decline`` or ``cancel``).

A form that does not fit its schema (defaults filled in) is answered 422 with what is wrong; the request
stays pending, so the client can answer again before the MCP server's ``elicitation_timeout_s``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from troupe.runtime.errors import ConfigError
from troupe.runtime.server.auth import Principal, can_see, principal, require_role
from troupe.runtime.server.elicitation_models import (
    ElicitationAnswered,
    ElicitationAnswerRequest,
    ElicitationInfo,
    ElicitationMisfit,
)
from troupe.runtime.server.errors import ApiError
from troupe.runtime.server.relay import relay, session_op
from troupe.runtime.server.sessions import State, holding, visible
from troupe.runtime.server.state import ServerState
from troupe.tools.mcp.elicitation import apply_defaults, validation_errors

router = APIRouter(tags=["elicitations"])
Reader = Annotated[Principal, Depends(principal)]
Writer = Annotated[Principal, Depends(require_role("user"))]
MISFIT = "the answer does not fit the form"


def _info(session_id: str, raw: dict[str, Any]) -> ElicitationInfo:
    return ElicitationInfo(session_id=session_id, **{k: v for k, v in raw.items() if k in ElicitationInfo.model_fields})


async def _pending(state: ServerState, session_id: str) -> list[ElicitationInfo]:
    held = state.held.get(session_id)
    if held is None or held.info.status != "running":
        return []
    return [_info(session_id, raw) for raw in await held.session.elicitations()]


@session_op("elicitations", list[ElicitationInfo])
async def _pending_op(state: ServerState, sid: str, args: dict[str, Any], user: str) -> list[ElicitationInfo]:
    return await _pending(state, sid)


@router.get("/elicitations", response_model=list[ElicitationInfo])
async def list_elicitations(state: State, who: Reader, response: Response,
                            session: str | None = None) -> list[ElicitationInfo] | Response:
    """Pending elicitations of one session (``?session=``, wherever it is held), or of every session the caller
    may see that this server process holds."""
    if session is not None:
        info = await visible(state, who, session)
        return await relay(state, info, "elicitations", {}, who.user, response)
    targets = [sid for sid, h in state.held.items() if can_see(who, h.info.user)]
    return [info for sid in targets for info in await _pending(state, sid)]


@router.get("/sessions/{sid}/elicitations", response_model=list[ElicitationInfo])
async def session_elicitations(sid: str, state: State, who: Reader,
                               response: Response) -> list[ElicitationInfo] | Response:
    info = await visible(state, who, sid)
    return await relay(state, info, "elicitations", {}, who.user, response)


def _session_of(eid: str) -> str:
    sid, sep, _ = eid.rpartition(":")
    if not sep or not sid:
        raise ApiError(404, f"unknown elicitation {eid}", "list pending ones with GET /api/v1/elicitations")
    return sid


def _misfit(errors: list[str]) -> JSONResponse:
    body = ElicitationMisfit(error=MISFIT, reason="; ".join(errors), errors=errors)
    return JSONResponse(body.model_dump(), status_code=422)


@router.post("/elicitations/{eid}/answer", response_model=ElicitationAnswered,
             responses={422: {"model": ElicitationMisfit, "description": "the form does not fit its schema"}})
async def answer(eid: str, body: ElicitationAnswerRequest, state: State, who: Writer,
                 response: Response) -> ElicitationAnswered | Response:
    info = await visible(state, who, _session_of(eid))
    return await relay(state, info, "answer_elicitation", {"id": eid, **body.model_dump(mode="json")}, who.user,
                       response)


@session_op("answer_elicitation", ElicitationAnswered)
async def _answer(state: ServerState, sid: str, args: dict[str, Any], user: str) -> ElicitationAnswered | JSONResponse:
    held = await holding(state, sid)
    eid = str(args["id"])
    body = ElicitationAnswerRequest.model_validate({k: v for k, v in args.items() if k != "id"})
    pending = {e.id: e for e in await _pending(state, sid)}
    if eid not in pending:
        raise ApiError(404, f"elicitation {eid} is not pending", "it was answered, timed out, or never existed")
    req = pending[eid]
    if body.action == "accept" and req.mode == "form" and (
            errors := validation_errors(req.requested_schema, apply_defaults(req.requested_schema, body.content))):
        return _misfit(errors)
    why = body.reason or f"{body.action} by {user} over HTTP"
    try:
        out = await held.session.answer_elicitation(eid, body.action, body.content, why)
    except ConfigError as e:  # answered meanwhile, or the session's own check refused it
        if MISFIT in e.message:
            return _misfit([e.message.partition(f"{MISFIT}: ")[2] or e.message])
        raise ApiError(404, f"elicitation {eid} is not pending", e.message) from None
    return ElicitationAnswered(id=eid, session_id=sid, action=out.get("action", body.action), by=out.get("by", "client"),
                               reason=out.get("reason", why))


__all__ = ["router"]
