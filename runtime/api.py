"""The public Python API: start a runtime, open sessions for a team, run them.

    troupe = await Troupe.connect()                 # Ray: local, or address="ray://..." / "auto"
    async with await troupe.open("examples/research_team") as session:
        await session.send("...")
        async for event in session.events(): ...
        result = await session.result()
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from troupe.runtime.config import Placement, TeamConfig, load_team
from troupe.runtime.errors import TroupeError, UnknownToolError
from troupe.runtime.eventlog.lake import default_lake
from troupe.runtime.ids import SUPERVISOR, RunId, SessionId
from troupe.runtime.llm.preflight import check_models
from troupe.runtime.session import workspace_history
from troupe.runtime.session.handle import Backend, Session
from troupe.runtime.session.spec import SessionSpec
from troupe.runtime.session.supervisor import SessionResult
from troupe.runtime.session.workspace_history import RollbackResult
from troupe.runtime.sessiondiff import SessionDiff, diff_sessions
from troupe.runtime.skills import check_team_skills
from troupe.runtime.storage.checkpoint import (
    ActorCheckpoint,
    CheckpointError,
    CheckpointStore,
    SessionManifest,
    SessionSummary,
    store_at,
)
from troupe.runtime.storage.location import normalize
from troupe.runtime.storage.snapshots import Diff, SnapshotManifest
from troupe.tools.builtins import default_registry
from troupe.tools.registry import ToolNameClashError, ToolRegistry


def validate_team(team: TeamConfig, registry: ToolRegistry) -> None:
    """Fail before any actor starts (and before a checkpoint is written) if an agent names a tool
    that does not exist or a model profile its client could not be built from (an API key variable
    that is not set, a remote endpoint while they are blocked, a script missing for an agent).

    MCP tools (``<server>__<tool>``) are checked when the server is first reached.
    """
    check_models(team)
    check_team_skills(team.agents)  # every skill folder and its SKILL.md, before anything starts
    declared = {d.name for d in team.declared_tools}
    for agent in team.agents:
        for name in agent.tools:
            if name in declared or any(name.startswith(f"{server}__") for server in team.mcp_servers):
                continue
            try:
                registry.resolve([name])
            except (UnknownToolError, ToolNameClashError) as e:
                raise type(e)(f"agent {agent.id!r}: {e.message}", agent=agent.id, tool=name) from None


def check_resumable(store: CheckpointStore, session_id: str) -> tuple[SessionManifest, ActorCheckpoint | None]:
    """The session's manifest and supervisor checkpoint, or a :class:`CheckpointError` saying why
    there is nothing to resume (it ended, or failed while it was created). No actor is needed: the
    CLI asks before it starts Ray."""
    manifest = store.load_manifest(session_id)
    if manifest.start_error is not None:
        raise CheckpointError(f"session {session_id} failed when it was created ({manifest.start_error}); "
                              "nothing to resume: fix that and run the team again",
                              session=session_id, status="failed")
    supervisor = store.load_actors(session_id, names=[str(SUPERVISOR)]).get(str(SUPERVISOR))
    status = supervisor.state.get("status", "running") if supervisor else "running"
    if status != "running":
        raise CheckpointError(f"session {session_id} already ended ({status}); nothing to resume "
                              f"(its events are in the lake: troupe events sql ... where session_id='{session_id}')",
                              session=session_id, status=status)
    return manifest, supervisor


def as_team(team: TeamConfig | str | Path) -> TeamConfig:
    return team if isinstance(team, TeamConfig) else load_team(team)


class Troupe:
    def __init__(self, backend: Backend, *, placement: Placement = Placement.DEDICATED,
                 registry: ToolRegistry | None = None) -> None:
        self.backend = backend
        self.placement = placement
        self.registry = registry or default_registry()
        self._validated: dict[int, TeamConfig] = {}

    @property
    def lake(self) -> str:
        return self.backend.lake

    @property
    def checkpoints(self) -> str | None:
        """Where sessions are checkpointed (``None``: they are not)."""
        return self.backend.checkpoints

    @classmethod
    def local(cls, *, lake: str | Path | None = None, checkpoints: bool | str = False) -> Troupe:
        """Everything in this process, no Ray (tests, quick experiments). ``checkpoints`` (True:
        ``<lake>/checkpoints``, or a location) makes sessions resumable after this process dies."""
        from troupe.runtime.session.local_backend import LocalBackend

        registry = default_registry()
        return cls(LocalBackend(lake or default_lake(), registry=registry, checkpoints=checkpoints),
                   placement=Placement.PACKED, registry=registry)

    @classmethod
    async def start(cls, *, local: bool, lake: str | Path | None = None, address: str | None = None,
                    placement: Placement | str | None = None, checkpoints: bool | str | None = None,
                    scope: str | None = None) -> Troupe:
        """The runtime an interface (``troupe chat``, ``serve``, ``mcp serve``, ``a2a serve``, ``acp``) serves
        from: in this process when ``local`` (:meth:`local`), else on Ray (:meth:`connect`, with Ray's own logging
        at WARNING), on ``lake`` (default: :func:`default_lake`; ``~`` and relative paths resolved).
        ``checkpoints``: None keeps each one's default (off in this process, on under Ray)."""
        where = normalize(lake or default_lake())
        if local:
            return cls.local(lake=where, checkpoints=False if checkpoints is None else checkpoints)
        return await cls.connect(address=address, lake=where, placement=placement, scope=scope,
                                 checkpoints=True if checkpoints is None else checkpoints,
                                 logging_level=logging.WARNING)

    @classmethod
    async def connect(
        cls, *, address: str | None = None, lake: str | Path | None = None,
        placement: Placement | str | None = None, pool_size: int | None = None, tool_concurrency: int = 256,
        checkpoints: bool | str = True, scope: str | None = None, **ray_init: Any,
    ) -> Troupe:
        """Connect to Ray (start a local instance when ``address`` is None and none is running).

        ``tool_concurrency`` caps the tool calls running at once across the cluster (each tool
        may set a lower cap of its own). ``checkpoints``: where dedicated sessions are checkpointed
        so that they survive actor crashes and can be resumed after the cluster stopped (True:
        ``<lake>/checkpoints``; a directory or ``pyarrow.fs`` URI; False: off). ``ray_init``
        options go to ``ray.init`` when this call starts or joins Ray. ``scope`` names this runtime among others
        in the same Ray job (a Ray Serve replica's), so that each has its own event log, scheduler and pool:
        by default there is one per job and lake, shared by every ``connect`` in that job.
        """
        from troupe.actors.backend import RayBackend

        backend = await RayBackend.create(address=address, lake=str(lake or default_lake()), pool_size=pool_size,
                                          tool_concurrency=tool_concurrency, checkpoints=checkpoints, scope=scope,
                                          **ray_init)
        return cls(backend, placement=Placement(placement or Placement.DEDICATED))

    def _specs(
        self, team: TeamConfig | str | Path, n: int, *, placement: Placement | str | None, model: str | None,
        stream_tokens: bool, run_id: str | None, session_id: str | None, conversation: bool = False,
        owner: str | None = None,
    ) -> list[SessionSpec]:
        cfg = as_team(team)
        if model is not None:
            cfg = cfg.with_model(model)
        if self._validated.get(id(cfg)) is not cfg:  # a sweep passes one team object many times
            validate_team(cfg, self.registry)
            if len(self._validated) > 10_000:
                self._validated.clear()
            self._validated[id(cfg)] = cfg
        run = RunId(run_id) if run_id else RunId.new()
        where = Placement(placement) if placement else self.placement
        ids = [SessionId(session_id)] if session_id and n == 1 else [SessionId.new() for _ in range(n)]
        durable = self.backend.checkpoints_for(where)
        return [SessionSpec(session_id=sid, run_id=run, team=cfg, placement=where, stream_tokens=stream_tokens,
                            checkpoints=durable, conversation=conversation, lake=self.lake, owner=owner)
                for sid in ids]

    async def open(
        self, team: TeamConfig | str | Path, *, placement: Placement | str | None = None, model: str | None = None,
        stream_tokens: bool = False, run_id: str | None = None, session_id: str | None = None,
        subscribe: bool = True, conversation: bool = False, owner: str | None = None,
    ) -> Session:
        """Start a session for ``team``; its events can be streamed with ``session.events()``
        (unless ``subscribe`` is false: sweeps read the lake afterwards instead). ``conversation``:
        the entry agent's reply ends a turn, not the session (``send`` again, then ``end()``;
        docs/conversations.md). ``owner``: the user it belongs to (``troupe serve``), in ``session.started``
        and the checkpoint manifest."""
        [spec] = self._specs(team, 1, placement=placement, model=model, stream_tokens=stream_tokens,
                             run_id=run_id, session_id=session_id, conversation=conversation, owner=owner)
        if subscribe:
            await self.backend.subscribe(spec.session_id)
        if spec.checkpoints:
            manifest = SessionManifest(session_id=spec.session_id, run_id=spec.run_id, team=spec.team,
                                       placement=spec.placement, stream_tokens=stream_tokens, lake=self.lake,
                                       conversation=spec.conversation, owner=owner)
            await asyncio.to_thread(store_at(spec.checkpoints).save_manifest, manifest)
        try:
            await self.backend.start_session(spec)
        except Exception as e:
            if spec.checkpoints:  # never listed as running, never resumed: it has nothing to go on with
                why = e.message if isinstance(e, TroupeError) else f"{type(e).__name__}: {e}"
                failed = manifest.model_copy(update={"start_error": why})
                await asyncio.to_thread(store_at(spec.checkpoints).save_manifest, failed)
            raise
        return Session(self.backend, spec)

    def _store(self) -> CheckpointStore:
        if self.checkpoints is None:
            raise CheckpointError("checkpoints are off in this runtime: connect with checkpoints=True "
                                  "(Troupe.local(checkpoints=True) without Ray) to resume or list sessions")
        return store_at(self.checkpoints)

    async def sessions(self) -> list[SessionSummary]:
        """Every checkpointed session of this runtime's store, newest first, with its status."""
        return await asyncio.to_thread(self._store().summaries)

    async def resume(self, session_id: str, *, subscribe: bool = True, stream_tokens: bool | None = None) -> Session:
        """Continue a session from its checkpoints (after its actors or the whole cluster stopped):
        its agents come back with their context and unread messages, and a turn that was under way
        runs again, taking the model responses and tool results it already had from its journal.
        Returns its handle; ``await session.result()`` waits for it as usual."""
        manifest, supervisor = await asyncio.to_thread(check_resumable, self._store(), session_id)
        spec = SessionSpec(session_id=manifest.session_id, run_id=manifest.run_id, team=manifest.team,
                           placement=manifest.placement, checkpoints=self.checkpoints,
                           conversation=manifest.conversation, lake=self.lake, owner=manifest.owner,
                           stream_tokens=manifest.stream_tokens if stream_tokens is None else stream_tokens)
        if subscribe:
            await self.backend.subscribe(spec.session_id)
        await self.backend.start_session(spec, restore=True)
        session = Session(self.backend, spec)
        session._started = bool(supervisor and supervisor.state.get("started_at"))
        await self.backend.call(spec.session_id, SUPERVISOR, "resumed", {})
        return session

    async def open_many(
        self, team: TeamConfig | str | Path, n: int, *, placement: Placement | str | None = None,
        model: str | None = None, run_id: str | None = None,
    ) -> list[Session]:
        """Start ``n`` sessions of one team under one run id (sweeps), in one round trip per host.

        They are not streamed live; their events go to the lake as usual.
        """
        specs = self._specs(team, n, placement=placement, model=model, stream_tokens=False, run_id=run_id,
                            session_id=None)
        await self.backend.start_sessions(specs)
        return [Session(self.backend, spec) for spec in specs]

    async def run(self, team: TeamConfig | str | Path, input: str, *, timeout: float | None = None,
                  **options: Any) -> SessionResult:
        """Open a session, send ``input``, wait for the result, close it."""
        session = await self.open(team, **options)
        try:
            return await session.run(input, timeout=timeout)
        finally:
            await session.close()

    async def run_packed(self, team: TeamConfig | str | Path, input: str, *, timeout: float | None = None,
                         run_id: str | None = None, model: str | None = None,
                         labels: dict[str, str] | None = None, owner: str | None = None) -> SessionResult:
        """Run one session on packed placement start to finish in a single call to its host (no
        session handle, no live events; the events reach the lake with the next flush). What
        sweeps use: one round trip per sample instead of one per step. ``labels``: what the session is a
        sample of (``case_id``, ``sample``: for its environment's ``${case_id}``/``${sample}`` and hooks).
        ``owner``: the user it belongs to (a sweep started over ``troupe serve``)."""
        [spec] = self._specs(team, 1, placement=Placement.PACKED, model=model, stream_tokens=False,
                             run_id=run_id, session_id=None, owner=owner)
        if labels:
            spec = spec.model_copy(update={"labels": dict(labels)})
        return await self.backend.run_session(spec, input, timeout)

    # --- replay and fork (docs/replay.md) -----------------------------------------------------
    async def replay(self, session_id: str, lake: str | Path | None = None, *, timeout: float | None = 300.0) -> Any:
        """Run a recorded session again from ``lake`` (default: this runtime's) with zero model calls and
        zero tool side effects; returns a :class:`~troupe.runtime.replay.run.ReplayReport`."""
        from troupe.runtime.replay.run import replay_session

        return await replay_session(self, session_id, lake=lake, timeout=timeout)

    async def fork(self, session_id: str, at: str | int | None = None, *, model: str | None = None,
                   set: dict[str, Any] | None = None, tool_results: dict[str, str] | None = None,  # noqa: A002
                   input: str | None = None, lake: str | Path | None = None,  # noqa: A002
                   timeout: float | None = 300.0) -> SessionResult:
        """Replay a recorded session up to ``at`` (an event id or a user turn), then go on live with the
        changes; the fork is a new session whose ``session.started`` names ``forked_from`` and ``fork_point``."""
        from troupe.runtime.replay.run import fork_session

        return await fork_session(self, session_id, at=at, model=model, set=set, tool_results=tool_results,
                                  input=input, lake=lake, timeout=timeout)

    # --- workspaces (docs/workspaces.md) ------------------------------------------------------
    async def workspace_log(self, session_id: str) -> list[SnapshotManifest]:
        """The snapshots of a session's workspace in this runtime's lake, oldest first."""
        return await asyncio.to_thread(workspace_history.log_of, self.lake, session_id)

    async def workspace_diff(self, session_id: str, a: str | None = None, b: str | None = None) -> Diff:
        """What changed from snapshot ``a`` (default: the latest) to snapshot ``b`` (default: the folder now)."""
        return await asyncio.to_thread(workspace_history.diff_of, self.lake, session_id, a, b)

    async def workspace_rollback(self, session_id: str, to: str | None = None, *, by: str = "api",
                                 timeout_s: float = 60.0) -> RollbackResult:
        """Restore a session's workspace to snapshot ``to`` (default: the latest that differs from the
        folder now); its state before is snapshotted first and a ``workspace.rollback`` event recorded.
        A live session's host does it, on the node holding the folder, under the lock of its tool calls
        (it waits for writing calls under way, up to ``timeout_s``; the next ones wait for it); a
        session no host holds is restored here, in this process (``result.live`` says which)."""
        live = await self.backend.workspace_rollback(SessionId(session_id), to, by=by, timeout_s=timeout_s)
        if live is not None:
            return live
        return await asyncio.to_thread(workspace_history.rollback, self.lake, session_id, to, by=by, timeout_s=timeout_s)

    async def diff(self, session_a: str, session_b: str) -> SessionDiff:
        """Two recorded sessions of this runtime's lake compared (``troupe diff``): ``.first_divergence``,
        per-agent deltas, differing tool calls, ``.table()`` (the aligned timeline as Arrow), ``.text()``, ``.html()``."""
        return await asyncio.to_thread(diff_sessions, self.lake, session_a, session_b)

    async def close_idle_mcp(self) -> int:
        """Close now the node-scoped MCP connections with no call in flight, on every node (their stdio
        servers exit instead of waiting ``idle_close_s``; a sweep does this at its end). Returns how many."""
        return await self.backend.close_idle_mcp()

    async def shutdown(self) -> None:
        """Close open sessions and release the runtime's actors (once; later calls do nothing)."""
        if not getattr(self, "_shut_down", False):
            self._shut_down = True
            await self.backend.shutdown()


__all__ = ["Troupe", "as_team", "check_resumable", "validate_team"]
