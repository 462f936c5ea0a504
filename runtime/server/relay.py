"""Operations on a live session that run in the server process holding it, whichever replica got the request.

A route checks access (``visible``), then calls :func:`relay` with a registered operation's name and its
arguments. Held here (or held nowhere): the operation runs here. Held by another live replica: it is
forwarded there through the shared directory (:mod:`troupe.runtime.server.forward`); the holder runs the
same operation (:func:`execute`) and its status and body are answered as they are. Each answer says which
process received it and which holds the session (``X-Troupe-Replica``, ``X-Troupe-Holder``).

An operation is registered with :func:`session_op`: ``async (state, session_id, args, user)`` returning its
result model (or a ``JSONResponse``), raising :class:`ApiError` to refuse.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Response
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from troupe.runtime.server.errors import ApiError
from troupe.runtime.server.forward import FORWARD_TIMEOUT_S, ForwardedOp, OpOutcome, refusal
from troupe.runtime.server.models import SessionInfo

if TYPE_CHECKING:
    from troupe.runtime.server.state import ServerState

REPLICA_HEADER = "X-Troupe-Replica"
"""The holder id of the server process that received the request."""
HOLDER_HEADER = "X-Troupe-Holder"
"""The holder id of the server process that ran the operation (differs from the replica's: forwarded)."""
Handler = Callable[["ServerState", str, dict[str, Any], str], Awaitable[Any]]


@dataclass(frozen=True)
class SessionOp:
    name: str
    handler: Handler
    result: TypeAdapter[Any]


OPS: dict[str, SessionOp] = {}


def session_op(name: str, result: Any) -> Callable[[Handler], Handler]:
    """Register ``handler`` as operation ``name`` whose success body is a ``result`` (a model or ``list[...]``)."""
    def register(handler: Handler) -> Handler:
        OPS[name] = SessionOp(name, handler, TypeAdapter(result))
        return handler
    return register


async def relay(state: ServerState, info: SessionInfo, name: str, args: dict[str, Any], user: str,
                response: Response, *, timeout_s: float = FORWARD_TIMEOUT_S) -> Any:
    """Run operation ``name`` on session ``info`` where it is held (``user`` passed the access checks)."""
    op = OPS[name]
    here = state.holder_id
    response.headers[REPLICA_HEADER] = here
    if info.id not in state.held and info.status == "running":
        outcome = await state.directory.submit(
            ForwardedOp(session_id=info.id, op=name, args=args, user=user, sender=here), timeout_s)
        if outcome.sent:
            headers = {REPLICA_HEADER: here, HOLDER_HEADER: outcome.holder or ""}
            if outcome.status >= 400:
                return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)
            response.headers.update(headers)
            return op.result.validate_python(outcome.body)
    response.headers[HOLDER_HEADER] = here
    try:
        return await op.handler(state, info.id, args, user)
    except ApiError as e:  # answered here: the same body, with the headers
        return JSONResponse({"error": e.error, "reason": e.reason}, status_code=e.status,
                            headers={REPLICA_HEADER: here, HOLDER_HEADER: here})


async def execute(state: ServerState, op: ForwardedOp) -> OpOutcome:
    """Run a forwarded operation here, as a request received here would (its access was checked)."""
    found = OPS.get(op.op)
    if found is None:
        return refusal(501, f"unknown session operation {op.op!r}", "the replicas run different versions",
                       state.holder_id)
    try:
        out = await found.handler(state, op.session_id, op.args, op.user)
    except ApiError as e:
        return refusal(e.status, e.error, e.reason, state.holder_id)
    if isinstance(out, Response):
        return OpOutcome(status=out.status_code, body=json.loads(bytes(out.body)), holder=state.holder_id)
    return OpOutcome(status=200, body=found.result.dump_python(out, mode="json"), holder=state.holder_id)


__all__ = ["HOLDER_HEADER", "OPS", "REPLICA_HEADER", "execute", "relay", "session_op"]
