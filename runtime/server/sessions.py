"""Session routes: create, list, show, send a turn, result, cancel (the session or its turn), resume, timeline (and the SSE stream)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from troupe.runtime.errors import ConfigError, TroupeError
from troupe.runtime.events import Event
from troupe.runtime.server import lakeview
from troupe.runtime.server.auth import Principal, can_see, principal, require_role
from troupe.runtime.server.errors import ApiError
from troupe.runtime.server.forward import FORWARD_TIMEOUT_S
from troupe.runtime.server.models import (
    Accepted,
    CreateSession,
    RunInfo,
    SessionInfo,
    SessionResultBody,
    TurnRequest,
)
from troupe.runtime.server.relay import relay, session_op
from troupe.runtime.server.state import Held, ServerBusyError, ServerState
from troupe.runtime.server.stream import lake_frames, parse_last_event_id
from troupe.runtime.server.sweeps import sweep_runs
from troupe.runtime.session.turn_cancel import TurnCancel
from troupe.runtime.storage.checkpoint import CheckpointError

router = APIRouter(tags=["sessions"])
MAX_WAIT_S = 300.0


def state_of(request: Request) -> ServerState:
    return request.app.state.server


State = Annotated[ServerState, Depends(state_of)]
Reader = Annotated[Principal, Depends(principal)]
Writer = Annotated[Principal, Depends(require_role("user"))]


def _why(e: BaseException) -> str:
    return e.message if isinstance(e, TroupeError) else str(e)


async def visible(state: ServerState, who: Principal, session_id: str) -> SessionInfo:
    """The session, if ``who`` may see it: 404 when unknown, 403 when another user's."""
    info = await state.info(session_id)
    if info is None:
        raise ApiError(404, f"unknown session {session_id}", "list your sessions with GET /api/v1/sessions")
    if not can_see(who, info.user):
        raise ApiError(403, f"session {session_id} belongs to another user",
                       "a user sees only their own sessions; an admin key sees all")
    return info


async def holding(state: ServerState, session_id: str) -> Held:
    """The running session this process holds (an operation :func:`relay` runs here); 409 when it has ended,
    or when no live server process holds it (it was interrupted)."""
    held = state.held.get(session_id)
    if held is not None and held.info.status == "running":
        return held
    info = held.info if held is not None else await state.info(session_id)
    status = info.status if info is not None else "unknown"
    if status == "running":
        raise ApiError(409, f"session {session_id} is not held by a live server process",
                       f"it was interrupted (the process that ran it stopped): POST /api/v1/sessions/{session_id}/resume "
                       "to continue it (docs/server.md, 'Replicas')")
    raise ApiError(409, f"session {session_id} has ended ({status})", "start a new session")


@router.post("/sessions", status_code=201, response_model=SessionInfo)
async def create_session(body: CreateSession, state: State, who: Writer) -> SessionInfo:
    if not body.input.strip():
        raise ApiError(422, "input is empty", "pass the message for the team's entry agent")
    try:
        return await state.open(user=who.user, team=body.team, text=body.input, placement=body.placement,
                                stream_tokens=body.stream_tokens, conversation=body.conversation, model=body.model)
    except ServerBusyError as e:
        raise ApiError(503, str(e), "wait for sessions to end, or raise max_sessions") from None
    except ConfigError as e:
        raise ApiError(400, f"team {body.team!r} cannot be run", _why(e)) from None


@router.get("/sessions", response_model=list[SessionInfo])
async def list_sessions(state: State, who: Reader, status: str | None = None, team: str | None = None,
                        user: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[SessionInfo]:
    infos = [i for i in await state.infos(limit) if can_see(who, i.user)]
    if user is not None:
        infos = [i for i in infos if i.user == user]
    if status is not None:
        infos = [i for i in infos if i.status == status]
    if team is not None:
        infos = [i for i in infos if i.team == team]
    return infos[:limit]


@router.get("/runs", response_model=list[RunInfo])
async def list_runs(state: State, who: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[RunInfo]:
    """Sessions and sweeps recorded in the lake, newest first (a user's own; an admin's all)."""
    await state.troupe.backend.flush()
    found = await asyncio.to_thread(lakeview.runs, state.lake, limit=limit,
                                    user=None if who.role == "admin" else who.user)
    found += await asyncio.to_thread(sweep_runs, state.lake, None if who.role == "admin" else who.user, limit)
    found.sort(key=lambda r: r.started_at or datetime.min.replace(tzinfo=UTC), reverse=True)
    return [r for r in found if can_see(who, r.user)][:limit]


@router.get("/sessions/{sid}", response_model=SessionInfo)
async def get_session(sid: str, state: State, who: Reader) -> SessionInfo:
    return await visible(state, who, sid)


@router.post("/sessions/{sid}/turns", status_code=202, response_model=Accepted)
async def send_turn(sid: str, body: TurnRequest, state: State, who: Writer, response: Response) -> Accepted | Response:
    info = await visible(state, who, sid)
    return await relay(state, info, "send", body.model_dump(mode="json"), who.user, response)


@session_op("send", Accepted)
async def _send(state: ServerState, sid: str, args: dict[str, Any], user: str) -> Accepted:
    await holding(state, sid)
    body = TurnRequest.model_validate(args)
    try:
        await state.send(sid, body.input, body.to)
    except TroupeError as e:
        raise ApiError(400, "the turn was refused", _why(e)) from None
    return Accepted(session_id=sid)


@router.get("/sessions/{sid}/result", response_model=SessionResultBody)
async def get_result(sid: str, state: State, who: Reader, response: Response,
                     wait_s: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0.0) -> SessionResultBody | Response:
    info = await visible(state, who, sid)
    return await relay(state, info, "result", {"wait_s": wait_s}, who.user, response,
                       timeout_s=wait_s + FORWARD_TIMEOUT_S)


@session_op("result", SessionResultBody)
async def _result(state: ServerState, sid: str, args: dict[str, Any], user: str) -> SessionResultBody:
    held = state.held.get(sid)
    if held is None or held.info.status != "running":
        info = held.info if held is not None else await state.info(sid)
        if info is None:
            raise ApiError(404, f"unknown session {sid}", "list your sessions with GET /api/v1/sessions")
        return info.result or SessionResultBody(status=info.status)
    try:
        r = await held.session.result(timeout=float(args.get("wait_s", 0.0)))
    except TimeoutError:
        return SessionResultBody(status="running")
    return SessionResultBody(status=str(r.status), output=r.reply, error=r.error)


@router.post("/sessions/{sid}/cancel", status_code=202, response_model=Accepted)
async def cancel_session(sid: str, state: State, who: Writer, response: Response) -> Accepted | Response:
    info = await visible(state, who, sid)
    return await relay(state, info, "cancel", {}, who.user, response)


@session_op("cancel", Accepted)
async def _cancel(state: ServerState, sid: str, args: dict[str, Any], user: str) -> Accepted:
    await (await holding(state, sid)).session.cancel(f"cancelled by {user} over HTTP")
    return Accepted(session_id=sid)


@router.post("/sessions/{sid}/turns/current/cancel", response_model=TurnCancel)
async def cancel_turn(sid: str, state: State, who: Writer, response: Response) -> TurnCancel | Response:
    """Cancel the turn under way of a conversation: its model and tool calls stop, its approvals are denied,
    its open tasks cancelled; the session stays running and takes the next turn (``cancelled`` false: no turn
    was under way)."""
    info = await visible(state, who, sid)
    return await relay(state, info, "cancel_turn", {}, who.user, response)


@session_op("cancel_turn", TurnCancel)
async def _cancel_turn(state: ServerState, sid: str, args: dict[str, Any], user: str) -> TurnCancel:
    held = await holding(state, sid)
    try:
        return await held.session.cancel_turn(f"cancelled by {user} over HTTP")
    except TroupeError as e:
        raise ApiError(409, f"session {sid} has no turn to cancel", _why(e)) from None


@router.post("/sessions/{sid}/resume", response_model=SessionInfo)
async def resume_session(sid: str, state: State, who: Writer, response: Response) -> SessionInfo | Response:
    """Resume an interrupted session here (a session a live replica still runs is answered by that replica: 409)."""
    info = await visible(state, who, sid)
    return await relay(state, info, "resume", {}, who.user, response)


@session_op("resume", SessionInfo)
async def _resume(state: ServerState, sid: str, args: dict[str, Any], user: str) -> SessionInfo:
    held = state.held.get(sid)
    if held is not None and not held.stream.done:
        if held.info.status != "running":  # ended; its last events are still being read back
            raise ApiError(409, f"session {sid} cannot be resumed", f"it has already ended ({held.info.status})")
        raise ApiError(409, f"session {sid} is running already (server process {state.holder_id})",
                       "nothing to resume")
    try:
        return await state.resume(sid)
    except CheckpointError as e:
        raise ApiError(409, f"session {sid} cannot be resumed", _why(e)) from None


@router.get("/sessions/{sid}/timeline", response_model=list[Event])
async def timeline(sid: str, state: State, who: Reader) -> list[Event]:
    await visible(state, who, sid)
    held = state.held.get(sid)
    if held is not None and not held.closed.is_set():
        await state.troupe.backend.flush()
    return await asyncio.to_thread(lakeview.session_events, state.lake, sid)


@router.get("/sessions/{sid}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def events(sid: str, state: State, who: Reader, after: int | None = None,
                 last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    info = await visible(state, who, sid)
    start = parse_last_event_id(last_event_id, after)
    held = state.held.get(sid)
    if held is not None:
        frames = held.stream.frames(start, heartbeat_s=state.settings.heartbeat_s)
    else:
        async def load() -> list[Event]:
            return await asyncio.to_thread(lakeview.session_events, state.lake, sid)

        async def finished() -> str | None:
            now = await state.info(sid)
            status = now.status if now is not None else info.status
            if status == "running" and (await state.directory.get(sid)) is None:
                return "interrupted"  # no process runs it: it was interrupted (resume it to go on)
            return None if status == "running" else status

        frames = lake_frames(load, finished, start, heartbeat_s=state.settings.heartbeat_s)
    return StreamingResponse(frames, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


__all__ = ["holding", "router", "state_of", "visible"]
