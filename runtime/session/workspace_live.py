"""Rolling back a live session's workspace where it lives: in the host that holds the session.

A session's folder is on the node of the host that runs it, so a rollback asked for by a client on
another machine (a CLI, a notebook) must run there, not in the client: the backend routes
``Troupe.workspace_rollback`` to the host of the session's supervisor (its only host when packed),
which calls :func:`rollback_here`. It runs under the same lock as the session's writing tool calls
(:func:`~troupe.runtime.session.workspace_history.locked`, exclusive: it waits for the calls under way,
and the next ones wait for it), and its ``workspace.snapshot`` and ``workspace.rollback`` events go
out through the host like the session's other events (a client streaming the session sees them).

A host that does not hold the session answers ``None``; the caller then restores the folder itself
(:func:`~troupe.runtime.session.workspace_history.rollback`, ``live`` false in the result).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from troupe.runtime.events import Emitter
from troupe.runtime.ids import SessionId
from troupe.runtime.session.workspace_history import (
    RollbackResult,
    WorkspaceBusyError,
    excluded,
    history_for,
    locked,
    roll_back,
    rollback_payload,
    snapshot_payload,
)


class _Host(Protocol):
    """What :func:`rollback_here` needs of a :class:`~troupe.runtime.session.host.HostCore`."""

    sessions: Any

    def emitter(self, spec: Any, agent: str) -> Callable[..., None]: ...


async def rollback_here(host: _Host, session_id: SessionId | str, to: str | None = None, *, by: str = "api",
                        timeout_s: float = 60.0) -> RollbackResult | None:
    """Roll back the workspace of a session this host holds (``None``: it holds none of that id, or
    the session keeps no snapshots: the caller then tries the lake itself)."""
    held = host.sessions.get(SessionId(str(session_id)))
    if held is None:
        return None
    emitter: Callable[[Any, str], Emitter] = host.emitter
    history = history_for(held.spec, emitter)
    if history is None or history.store is None:
        return None
    await history.ready()
    store = history.store
    async with locked(history.folder, exclusive=True, timeout=timeout_s) as got:
        if not got:
            raise WorkspaceBusyError(f"a tool call is still writing {history.folder} after {timeout_s:g}s; try "
                                     "again (or pause the session first)", folder=str(history.folder))
        result, made = await asyncio.to_thread(roll_back, store, history.session_id, history.folder, to,
                                               exclude=excluded(history.cfg), live=True)
    for manifest in made:
        history.emit(snapshot_payload(manifest), status="ok")
    history.emit(rollback_payload(result, by), status="ok")
    return result


__all__ = ["rollback_here"]
