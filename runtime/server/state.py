"""The sessions a server runs: the runtime, the handles this process holds, and a directory of
owners and statuses that every replica can read (``LocalDirectory`` in one process; behind Ray
Serve, :mod:`troupe.runtime.server.deploy` passes one backed by a named Ray actor)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from troupe.runtime.api import Troupe
from troupe.runtime.events import Event
from troupe.runtime.ids import SUPERVISOR
from troupe.runtime.mcp_server.teams import TeamResolver
from troupe.runtime.server import lakeview, relay
from troupe.runtime.server.forward import ForwardChannel, ForwardedOp, ForwardQueue, ForwardStats, HolderLoop, OpOutcome
from troupe.runtime.server.models import SessionInfo, SessionResultBody
from troupe.runtime.server.settings import ServerSettings
from troupe.runtime.server.stream import Numbered, SessionStream, numbered, pump
from troupe.runtime.session.handle import Session
from troupe.runtime.storage.checkpoint import CheckpointError, store_at

log = logging.getLogger("troupe.server")
CLOSE_WAIT_S = 30.0
QUIET_S = 30.0
"""A live session's tail quiet this long: the server asks whether the session is still there."""
KEEP_FINISHED_S = 120.0
"""How long a finished session's stream stays in memory (then it is read from the lake)."""


class Directory(ForwardChannel, Protocol):
    """Session id -> its :class:`SessionInfo` (owner, team, status), shared by every replica; and the channel
    that forwards an operation on a session to the replica holding it (:mod:`troupe.runtime.server.forward`)."""

    async def put(self, info: SessionInfo) -> None: ...

    async def get(self, session_id: str) -> SessionInfo | None: ...

    async def all(self) -> list[SessionInfo]: ...

    async def hold(self, holder: str, session_id: str) -> None: ...

    async def release(self, holder: str, session_id: str) -> None: ...

    async def submit(self, op: ForwardedOp, timeout_s: float) -> OpOutcome: ...

    async def forward_stats(self) -> ForwardStats: ...


class LocalDirectory:
    """The directory of one event loop (one process, or apps sharing a loop)."""

    def __init__(self, forward: ForwardQueue | None = None) -> None:
        self._infos: dict[str, SessionInfo] = {}
        self.forward = forward or ForwardQueue()

    async def put(self, info: SessionInfo) -> None:
        self._infos[info.id] = info.model_copy(update={"live": False})

    async def get(self, session_id: str) -> SessionInfo | None:
        return self._infos.get(session_id)

    async def all(self) -> list[SessionInfo]:
        return list(self._infos.values())

    async def register(self, holder: str) -> None:
        self.forward.register(holder)

    async def unregister(self, holder: str) -> None:
        self.forward.unregister(holder)

    async def hold(self, holder: str, session_id: str) -> None:
        self.forward.hold(holder, session_id)

    async def release(self, holder: str, session_id: str) -> None:
        self.forward.release(holder, session_id)

    async def submit(self, op: ForwardedOp, timeout_s: float) -> OpOutcome:
        return await self.forward.submit(op, timeout_s)

    async def poll(self, holder: str, wait_s: float) -> list[ForwardedOp]:
        return await self.forward.poll(holder, wait_s)

    async def complete(self, op_id: str, outcome: OpOutcome) -> None:
        self.forward.complete(op_id, outcome)

    async def forward_stats(self) -> ForwardStats:
        return self.forward.snapshot()


@dataclass
class Held:
    """A session this process holds: its handle, what it is, its stream, the task that follows it."""

    session: Session
    info: SessionInfo
    stream: SessionStream
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    finished_at: float | None = None


class ServerState:
    def __init__(self, settings: ServerSettings, *, directory: Directory | None = None,
                 troupe: Troupe | None = None) -> None:
        self.settings = settings
        self.directory: Directory = directory or LocalDirectory()
        self.teams = TeamResolver(settings.teams)
        self._troupe = troupe
        self._owns = troupe is None
        self.held: dict[str, Held] = {}
        self.holder_id = uuid.uuid4().hex[:12]
        """This process's id as a holder of sessions (operations on them are forwarded to it)."""
        self._holding: HolderLoop | None = None

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        if self._troupe is not None:
            return
        # Serve runs every replica in one Ray job: each needs its own event log, scheduler and pool (one
        # replica's stop must not end another's), hence the scope
        self._troupe = await Troupe.start(local=self.settings.local, lake=self.settings.lake,
                                          address=self.settings.address, placement=self.settings.placement,
                                          checkpoints=self.settings.checkpoints, scope=f"serve-{self.holder_id}")

    @property
    def troupe(self) -> Troupe:
        if self._troupe is None:
            raise RuntimeError("the server's runtime is not started")
        return self._troupe

    @property
    def lake(self) -> str:
        return str(self.troupe.lake)

    async def shutdown(self) -> None:
        if self._holding is not None:
            await self._holding.stop()  # unregisters: what other replicas forward here fails at once
            self._holding = None
        for held in list(self.held.values()):
            try:
                if held.info.status == "running":
                    await held.session.cancel("the server is shutting down")
            except Exception:
                log.debug("cancelling %s", held.info.id, exc_info=True)
            await self._close(held)
        if self._troupe is not None and self._owns:
            await self._troupe.shutdown()
            self._troupe = None

    # --- sessions ---------------------------------------------------------------------------
    async def open(self, *, user: str, team: str, text: str, placement: str | None, stream_tokens: bool,
                   conversation: bool, model: str | None) -> SessionInfo:
        self._evict()
        live = sum(1 for h in self.held.values() if h.info.status == "running")
        if live >= self.settings.max_sessions:
            raise ServerBusyError(f"{live} sessions are running on this server (max_sessions); try later")
        cfg, _ = self.teams.load(team)
        session = await self.troupe.open(cfg, placement=placement, model=model, stream_tokens=stream_tokens,
                                         conversation=conversation, owner=user)
        info = SessionInfo(id=str(session.id), user=user, team=cfg.name, status="running",
                           created_at=datetime.now(UTC), turns=0, run_id=str(session.run_id), live=True)
        self._hold(session, info)
        await self._claim(info.id)
        await self.send(info.id, text)
        return self.held[info.id].info

    def _evict(self) -> None:
        """Forget sessions that ended over ``KEEP_FINISHED_S`` ago (the lake and the directory answer for them)."""
        edge = time.monotonic() - KEEP_FINISHED_S
        for sid in [s for s, h in self.held.items() if h.finished_at is not None and h.finished_at < edge]:
            del self.held[sid]

    def _hold(self, session: Session, info: SessionInfo, recorded: list[Event] | None = None) -> Held:
        held = Held(session=session, info=info, stream=SessionStream(gap_s=self.settings.stream_gap_s))
        held.stream.catch_up(numbered(recorded or []))
        self.held[info.id] = held
        held.tasks.append(asyncio.create_task(self._follow(held)))
        return held

    async def _claim(self, session_id: str) -> None:
        """Record this process as the session's holder, polling for what other replicas forward here."""
        if self._holding is None:
            self._holding = HolderLoop(self.directory, self.holder_id, self._execute)
            self._holding.start()
        try:
            await self.directory.hold(self.holder_id, session_id)
        except Exception as e:  # the session runs; only what other replicas receive for it cannot reach it
            log.warning("recording this process as holder of %s: %s", session_id, e)

    async def _execute(self, op: ForwardedOp) -> OpOutcome:
        return await relay.execute(self, op)

    async def send(self, session_id: str, text: str, to: str | None = None) -> None:
        held = self.held[session_id]
        await held.session.send(text, to=to)
        held.info = held.info.model_copy(update={"turns": held.info.turns + 1})
        await self.directory.put(held.info)

    async def _follow(self, held: Held) -> None:
        """Wait for the session's end (its stream's ``session.finished``), then close it (its events
        reach the lake) and record the result in the directory. Whatever fails on the way, the
        stream ends (with an error when its session's end was not seen): no reader waits forever."""
        streamed: str | None = None
        error: str | None = None
        status = "failed"
        try:
            try:
                streamed = await pump(held.stream, held.session.backend.tail(held.session.id),
                                      alive=lambda: self._ended(held), quiet_s=QUIET_S,
                                      fill=lambda: self._recorded(held))
            except Exception as e:
                error = f"lost the session's events: {e}"
                log.warning("following session %s: %s", held.info.id, e)
            result = None
            try:
                r = await asyncio.wait_for(held.session.backend.call(
                    held.session.id, SUPERVISOR, "wait", {"timeout": CLOSE_WAIT_S}), CLOSE_WAIT_S + 5)
                result = SessionResultBody(status=str(r.status), output=r.reply, error=r.error)
            except Exception as e:  # the result is in the lake too
                log.debug("result of %s: %s", held.info.id, e)
            status = result.status if result else (streamed or "failed")
            held.info = held.info.model_copy(update={"status": status, "result": result})
            await asyncio.wait_for(self._close(held, finish=False), CLOSE_WAIT_S)
            try:
                held.stream.catch_up(numbered(await asyncio.to_thread(
                    lakeview.session_events, self.lake, held.info.id, run_id=held.info.run_id)))
            except Exception as e:
                log.warning("reading session %s back from the lake: %s", held.info.id, e)
                error = error or f"the session's last events could not be read from the lake: {e}"
        except Exception as e:
            log.warning("closing session %s: %s", held.info.id, e)
            error = error or f"closing the session failed: {e}"
        finally:
            held.stream.finish(status, error)
            held.finished_at = time.monotonic()
        await self.directory.put(held.info)
        try:
            await self.directory.release(self.holder_id, held.info.id)
        except Exception as e:
            log.debug("releasing %s: %s", held.info.id, e)

    async def _recorded(self, held: Held) -> list[Numbered]:
        """What the lake has of a live session, every event the log accepted flushed first (a gap in
        its stream's positions is filled from it)."""
        await held.session.backend.flush()
        return numbered(await asyncio.to_thread(lakeview.session_events, self.lake, held.info.id,
                                                run_id=held.info.run_id))

    async def _ended(self, held: Held) -> str | None:
        """``None`` while the session runs; the status it ended with (its ``session.finished`` unseen); raises
        when it cannot be reached (its process is gone)."""
        found = await held.session.backend.call(held.session.id, SUPERVISOR, "describe", {})
        status = str(found.get("status", "running"))
        return None if status == "running" else status

    async def _close(self, held: Held, *, finish: bool = True) -> None:
        if held.closed.is_set():
            return
        try:
            await held.session.close()
        except Exception:
            log.warning("closing session %s", held.info.id, exc_info=True)
        held.closed.set()
        if finish and not held.stream.done:
            held.stream.finish(held.info.status)

    async def resume(self, session_id: str) -> SessionInfo:
        # What it recorded before (in the lake) keeps its stream positions; the resumed run's events follow.
        recorded = await asyncio.to_thread(lakeview.session_events, self.lake, session_id)
        session = await self.troupe.resume(session_id)
        manifest = await asyncio.to_thread(store_at(self.troupe.checkpoints or "").load_manifest, session_id) \
            if self.troupe.checkpoints else None
        old = self.held.pop(session_id, None)
        if old is not None:
            for t in old.tasks:
                t.cancel()
        info = SessionInfo(id=session_id, user=manifest.owner if manifest else None,
                           team=session.spec.team.name, status="running",
                           created_at=manifest.created_at if manifest else datetime.now(UTC),
                           run_id=str(session.run_id), live=True, turns=1)
        self._hold(session, info, recorded)
        await self._claim(session_id)
        await self.directory.put(info)
        return info

    # --- lookups ----------------------------------------------------------------------------
    async def info(self, session_id: str) -> SessionInfo | None:
        """What is known of a session: held here, another replica's, checkpointed, or in the lake."""
        held = self.held.get(session_id)
        if held is not None:
            return held.info.model_copy(update={"live": True})
        found = await self.directory.get(session_id)
        if found is not None:
            return found
        run = await asyncio.to_thread(lakeview.run_of, self.lake, session_id)
        if run is not None:
            result = SessionResultBody(status=run.status, output=run.reply, error=run.error) \
                if run.finished_at else None
            return SessionInfo(id=run.session_id, user=run.user, team=run.team or "", status=run.status,
                               created_at=run.started_at or datetime.now(UTC), run_id=run.run_id, result=result,
                               turns=1)
        return await asyncio.to_thread(self._checkpointed, session_id)

    def _checkpointed(self, session_id: str) -> SessionInfo | None:
        if not self.troupe.checkpoints:
            return None
        for s in store_at(self.troupe.checkpoints).summaries():
            if s.session_id == session_id:
                return SessionInfo(id=s.session_id, user=s.owner, team=s.team, status=s.status,
                                   created_at=s.created_at, run_id=str(s.run_id))
        return None

    async def infos(self, limit: int) -> list[SessionInfo]:
        seen: dict[str, SessionInfo] = {h.info.id: h.info.model_copy(update={"live": True}) for h in self.held.values()}
        for i in await self.directory.all():
            seen.setdefault(i.id, i)
        for run in await asyncio.to_thread(lakeview.runs, self.lake, limit=limit):
            if run.session_id not in seen:
                result = SessionResultBody(status=run.status, output=run.reply, error=run.error) \
                    if run.finished_at else None
                seen[run.session_id] = SessionInfo(id=run.session_id, user=run.user, team=run.team or "",
                                                   status=run.status, created_at=run.started_at or datetime.now(UTC),
                                                   run_id=run.run_id, result=result, turns=1)
        try:
            checkpointed = await asyncio.to_thread(
                store_at(self.troupe.checkpoints).summaries) if self.troupe.checkpoints else []
        except CheckpointError:
            checkpointed = []
        for s in checkpointed:
            if s.session_id not in seen:
                seen[s.session_id] = SessionInfo(id=s.session_id, user=s.owner, team=s.team, status=s.status,
                                                 created_at=s.created_at, run_id=str(s.run_id))
        return sorted(seen.values(), key=lambda i: i.created_at, reverse=True)


class ServerBusyError(RuntimeError):
    """The server holds ``max_sessions`` running sessions."""


__all__ = ["Directory", "Held", "LocalDirectory", "ServerBusyError", "ServerState"]
