"""The MCP server's bookkeeping, as plain Python: one Troupe runtime, the sessions it keeps open,
and the answers the tools return. Nothing here knows about MCP (the tools in
:mod:`troupe.runtime.mcp_server.tools` are thin wrappers), so it is unit-tested directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from troupe.runtime.access import LOCAL_ADMIN, AccessDenied, Principal
from troupe.runtime.api import Troupe
from troupe.runtime.config import TeamConfig
from troupe.runtime.errors import TroupeError
from troupe.runtime.mcp_server import lake_query, lake_scope
from troupe.runtime.mcp_server.models import (
    BlackboardItem,
    BlackboardView,
    LakeRows,
    RunOutcome,
    SessionInfo,
    SessionList,
    TaskNode,
    TaskTree,
    TeamInfo,
    TeamList,
)
from troupe.runtime.mcp_server.teams import TeamResolver, find_teams
from troupe.runtime.session.handle import Session
from troupe.runtime.session.supervisor import SessionResult, SessionStatus, Usage

log = logging.getLogger("troupe.mcp")
T = TypeVar("T")

MAX_WAIT_S = 3600.0
CLOSE_WAIT_S = 30.0
PROGRESS_S = 1.0
"""How often a waiting ``run_team`` / ``wait_result`` reports progress (when the client asked for it)."""

Progress = Callable[[float, float | None, str], Awaitable[None]]
"""``(seconds waited, timeout, what the session has done so far)``, called every :data:`PROGRESS_S`."""


class ServiceError(TroupeError):
    """A request the server refused; the message says what was wrong and how to fix it."""


def other_users_session(who: Principal, session_id: str) -> AccessDenied:
    """The refusal of ``who`` touching session ``session_id`` of another user (says nothing else about it)."""
    return AccessDenied(403, "other_user_session", f"session {session_id} belongs to another user: a key sees and "
                        "drives only its own user's sessions (list_sessions shows yours; start_session or run_team "
                        "opens one), an admin key sees all", principal=who, session_id=session_id)


@dataclass
class ServiceOptions:
    address: str | None = None
    """Ray address (``None``: a running cluster, else a new local one; ``"local"``: always a new one)."""
    local: bool = False
    """Run everything in this process, without Ray."""
    placement: str | None = None
    """On Ray: ``dedicated`` (an actor per agent, the default) or ``packed`` (pooled host actors)."""
    lake: str | None = None
    model: str | None = None
    """Model profile for sessions whose request names none (``None``: each team's own default)."""
    teams_dirs: list[str] = field(default_factory=list)
    """Folders teams may be loaded from (default: the working directory)."""
    max_sessions: int = 32
    """Sessions open at once (``start_session`` ones plus ``run_team`` ones in progress)."""
    query_timeout_s: float = 30.0
    conformance: bool = False
    """Add the MCP conformance suite's ``test_*`` fixtures (:mod:`troupe.runtime.mcp_server.conformance_fixtures`)."""


@dataclass
class _Open:
    session: Session
    team: TeamConfig
    team_path: Path
    opened_at: datetime
    owner: str
    """The user it belongs to (``session.started.user``)."""
    messages: int = 0
    result: SessionResult | None = None
    usage: Usage = field(default_factory=Usage)
    closed: bool = False


async def _finish(aw: Awaitable[T]) -> T:
    """Await ``aw`` to the end even if the caller is cancelled meanwhile (closing a session must
    not stop half way: it writes the session's events to the lake)."""
    task = asyncio.ensure_future(aw)
    return await asyncio.shield(task)


async def _wait(session: Session, timeout: float, progress: Progress | None) -> SessionResult:
    """``session.result(timeout=...)``, calling ``progress`` every :data:`PROGRESS_S` meanwhile. If the
    caller is cancelled, so is the wait (the session itself is the caller's to cancel or keep)."""
    if progress is None:
        return await session.result(timeout=timeout)
    loop = asyncio.get_running_loop()
    started = loop.time()
    waiter = asyncio.ensure_future(session.result(timeout=timeout))
    try:
        while True:
            done, _ = await asyncio.wait({waiter}, timeout=PROGRESS_S)
            if done:
                return waiter.result()
            await progress(loop.time() - started, timeout, await _doing(session))
    finally:
        if not waiter.done():
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)


async def _doing(session: Session) -> str:
    """What a running session has done so far, in words."""
    try:
        state = await session.describe("session")
    except Exception:  # a progress note is never worth failing the wait for
        return "running"
    usage = Usage.model_validate(state.get("usage") or {})
    return (f"{state.get('status') or 'running'}: {usage.llm_calls} LLM calls, {usage.tool_calls} tool calls, "
            f"{usage.tokens} tokens")


def _clamp(seconds: float | None, default: float) -> float:
    if seconds is None:
        return default
    if seconds < 0:
        raise ServiceError(f"timeout_s must be 0 or more (got {seconds})")
    return min(float(seconds), MAX_WAIT_S)


class TroupeService:
    def __init__(self, options: ServiceOptions | None = None, *, troupe: Troupe | None = None) -> None:
        self.options = options or ServiceOptions()
        self.teams = TeamResolver(self.options.teams_dirs)
        self._troupe = troupe
        self._owns_troupe = troupe is None
        self._sessions: dict[str, _Open] = {}
        self._pending = 0
        """Slots held by run_team calls and by sessions being started."""
        self.stopped = asyncio.Event()
        """Set once :meth:`shutdown` has closed everything."""

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start (or join) the runtime: Ray unless ``local``."""
        if self._troupe is not None:
            return
        self._troupe = await Troupe.start(local=self.options.local, lake=self.options.lake,
                                          address=self.options.address, placement=self.options.placement)
        log.info("troupe runtime ready (%s), lake %s", "local" if self.options.local else "ray", self._troupe.lake)

    @property
    def troupe(self) -> Troupe:
        if self._troupe is None:
            raise ServiceError("the Troupe runtime is not started yet")
        return self._troupe

    async def shutdown(self) -> None:
        """Close every open session (cancelling running ones), then stop the runtime if we started it."""
        try:
            opened = list(self._sessions)
            if opened:
                log.info("closing %d open session(s)", len(opened))
            await asyncio.gather(*(self._close(sid) for sid in opened), return_exceptions=True)
            if self._troupe is not None and self._owns_troupe:
                await self._troupe.shutdown()
            self._troupe = None if self._owns_troupe else self._troupe
        finally:
            self.stopped.set()
            log.info("stopped")

    # --- teams ------------------------------------------------------------------------------
    def list_teams(self) -> TeamList:
        teams = [
            TeamInfo(name=t.team.name if t.team else None, path=t.relative, folder=str(t.root),
                     description=t.team.description if t.team else "", entry=t.team.entry if t.team else None,
                     agents=[a.id for a in t.team.agents] if t.team else [],
                     models=sorted(t.team.models) if t.team else [], error=t.error)
            for t in find_teams(self.teams.roots)
        ]
        return TeamList(folders=[str(r) for r in self.teams.roots], teams=teams)

    def _reserve(self) -> None:
        if len(self._sessions) + self._pending >= self.options.max_sessions:
            raise ServiceError(f"{self.options.max_sessions} sessions are open already (the server's "
                               f"--max-sessions); close some with close_session (list_sessions shows them)")

    async def _open(self, team: str, model: str | None, owner: str) -> tuple[Session, TeamConfig, Path]:
        cfg, path = self.teams.load(team)
        session = await self.troupe.open(cfg, model=model or self.options.model, owner=owner)
        return session, session.spec.team, path

    # --- one-shot runs ----------------------------------------------------------------------
    async def run_team(self, team: str, input: str, *, model: str | None = None,
                       timeout_s: float | None = 300.0, progress: Progress | None = None,
                       who: Principal = LOCAL_ADMIN) -> RunOutcome:
        """Run a session of ``who``'s start to finish and close it; on timeout it is cancelled (status ``cancelled``)."""
        if not input.strip():
            raise ServiceError("input is empty: pass the message for the team's entry agent")
        timeout = _clamp(timeout_s, 300.0)
        self._reserve()
        self._pending += 1
        try:
            session, cfg, _ = await self._open(team, model, who.user)
            try:
                await session.send(input)
                try:
                    result = await _wait(session, timeout, progress)
                except TimeoutError:
                    await session.cancel(f"no result within {timeout:g}s (run_team timeout_s)")
                    result = await session.result(timeout=CLOSE_WAIT_S)
            except BaseException:  # failed, or the MCP request was cancelled
                await _finish(self._cancel_and_close(session))
                raise
            await _finish(session.close())
        finally:
            self._pending -= 1
        return RunOutcome(session_id=str(result.session_id), run_id=str(result.run_id), team=cfg.name,
                          status=str(result.status), reply=result.reply, error=result.error,
                          usage=result.usage, duration_s=result.duration_s)

    @staticmethod
    async def _cancel_and_close(session: Session) -> None:
        try:
            await session.cancel("the run_team request failed or was cancelled")
            await session.result(timeout=CLOSE_WAIT_S)
        except Exception:  # the session may never have started, or be gone
            log.debug("cancelling session %s", session.id, exc_info=True)
        await session.close()

    # --- sessions kept open -----------------------------------------------------------------
    async def start_session(self, team: str, *, model: str | None = None, who: Principal = LOCAL_ADMIN) -> SessionInfo:
        """Open a session of ``team`` that belongs to ``who``'s user."""
        self._reserve()
        self._pending += 1  # holds the slot while the session starts
        try:
            session, cfg, path = await self._open(team, model, who.user)
        finally:
            self._pending -= 1
        opened = _Open(session=session, team=cfg, team_path=path, opened_at=datetime.now(UTC), owner=who.user)
        self._sessions[str(session.id)] = opened
        return self._info(opened)

    def _get(self, session_id: str, who: Principal) -> _Open:
        """The open session, if ``who`` may touch it: unknown ones are unknown (the listing names only ``who``'s),
        another user's are refused (:func:`other_users_session`)."""
        opened = self._sessions.get(session_id.strip())
        if opened is None:
            known = sorted(sid for sid, o in self._sessions.items() if who.can_see(o.owner))
            listing = f"open sessions: {', '.join(known)}" if known else "no session is open"
            raise ServiceError(f"unknown session {session_id!r} ({listing}); start one with start_session "
                               "(sessions run by run_team, and closed ones, are gone: query_lake still has "
                               "their events)")
        if not who.can_see(opened.owner):
            raise other_users_session(who, session_id.strip())
        return opened

    def _info(self, o: _Open) -> SessionInfo:
        if o.result is not None:
            status, done = str(o.result.status), True
        else:
            status, done = ("running" if o.messages else "idle"), False
        usage = o.result.usage if o.result is not None else o.usage
        return SessionInfo(
            session_id=str(o.session.id), run_id=str(o.session.run_id), team=o.team.name, team_path=str(o.team_path),
            entry=str(o.team.entry), agents=[a.id for a in o.team.agents], status=status, done=done,
            reply=o.result.reply if o.result else None, error=o.result.error if o.result else None,
            usage=usage, messages_sent=o.messages, opened_at=o.opened_at.isoformat(), closed=o.closed, user=o.owner,
        )

    async def _refresh(self, o: _Open) -> None:
        """Ask the session's supervisor how it stands (its result once it has ended)."""
        if o.result is not None or not o.messages:
            return
        state = await o.session.describe("session")
        o.usage = Usage.model_validate(state.get("usage") or {})
        if state.get("status") != SessionStatus.RUNNING.value:
            o.result = await o.session.result(timeout=CLOSE_WAIT_S)

    async def send_message(self, session_id: str, text: str, *, to: str | None = None,
                           who: Principal = LOCAL_ADMIN) -> SessionInfo:
        o = self._get(session_id, who)
        if not text.strip():
            raise ServiceError("text is empty: pass the message to send")
        await self._refresh(o)
        if o.result is not None:
            raise ServiceError(f"session {o.session.id} has ended ({o.result.status}); a session ends with its entry "
                               f"agent's reply, so start a new one with start_session for another request")
        await o.session.send(text, to=to or None)
        o.messages += 1
        return self._info(o)

    async def session_status(self, session_id: str, who: Principal = LOCAL_ADMIN) -> SessionInfo:
        o = self._get(session_id, who)
        await self._refresh(o)
        return self._info(o)

    async def wait_result(self, session_id: str, timeout_s: float | None = 60.0, *,
                          progress: Progress | None = None, who: Principal = LOCAL_ADMIN) -> SessionInfo:
        """Wait until the session ends or ``timeout_s`` passes (then ``done`` is false; call again)."""
        o = self._get(session_id, who)
        timeout = _clamp(timeout_s, 60.0)
        if o.result is None and not o.messages:
            raise ServiceError(f"session {o.session.id} has had no message yet, so it cannot end: "
                               "call send_message first")
        if o.result is None:
            try:
                o.result = await _wait(o.session, timeout, progress)
            except TimeoutError:
                await self._refresh(o)
        return self._info(o)

    def list_sessions(self, who: Principal = LOCAL_ADMIN) -> SessionList:
        """The open sessions ``who`` may see (an admin: all)."""
        return SessionList(sessions=[self._info(o) for o in self._sessions.values() if who.can_see(o.owner)])

    async def close_session(self, session_id: str, who: Principal = LOCAL_ADMIN) -> SessionInfo:
        o = self._get(session_id, who)
        return await _finish(self._close(str(o.session.id)))

    async def _close(self, session_id: str) -> SessionInfo:
        o = self._sessions.pop(session_id)
        try:
            await self._refresh(o)
            if o.result is None and o.messages:
                await o.session.cancel("closed by the MCP client")
                o.result = await o.session.result(timeout=CLOSE_WAIT_S)
        except Exception:
            log.warning("session %s: could not read its result before closing", session_id, exc_info=True)
        await o.session.close()
        o.closed = True
        return self._info(o)

    # --- shared state -----------------------------------------------------------------------
    async def read_blackboard(self, session_id: str, prefix: str = "", who: Principal = LOCAL_ADMIN) -> BlackboardView:
        o = self._get(session_id, who)
        entries = await o.session.blackboard(prefix or "")
        return BlackboardView(session_id=str(o.session.id), prefix=prefix or "", entries=[
            BlackboardItem(key=e.key, value=e.value, version=e.version, author=str(e.author), kind=str(e.kind),
                           ts=e.ts.isoformat())
            for e in entries
        ])

    async def task_tree(self, session_id: str, who: Principal = LOCAL_ADMIN) -> TaskTree:
        o = self._get(session_id, who)
        tasks = await o.session.tasks()
        nodes = {str(t.id): TaskNode(id=str(t.id), goal=t.goal, status=str(t.status),
                                     assignee=str(t.assignee) if t.assignee else None, created_by=str(t.created_by),
                                     output=t.output, error=t.error, artifacts=list(t.artifacts))
                 for t in tasks}
        roots: list[TaskNode] = []
        for t in tasks:
            parent = nodes.get(str(t.parent_id)) if t.parent_id else None
            (parent.children if parent is not None else roots).append(nodes[str(t.id)])
        return TaskTree(session_id=str(o.session.id), tasks=roots, counts=dict(Counter(str(t.status) for t in tasks)))

    # --- the lake ---------------------------------------------------------------------------
    async def query_lake(self, sql: str, limit: int = lake_query.DEFAULT_LIMIT, who: Principal = LOCAL_ADMIN) -> LakeRows:
        """Read-only SQL over the lake: an admin's over all of it, anyone else's over their own sessions' rows
        (:mod:`.lake_scope`, as ``POST /api/v1/sql``)."""
        lake_scope.check_query(sql, who)
        if limit < 1:
            raise ServiceError(f"limit must be at least 1 (got {limit}); at most {lake_query.MAX_LIMIT} rows come back")
        try:
            await self.troupe.backend.flush()  # events of open sessions so far
        except Exception:
            log.debug("flush before a lake query failed", exc_info=True)
        columns, rows, truncated = await lake_query.query_lake(self.troupe.lake, sql, limit,
                                                               timeout_s=self.options.query_timeout_s,
                                                               sandbox=lake_scope.scoped_sandbox(who))
        return LakeRows(columns=columns, rows=rows, row_count=len(rows), truncated=truncated, lake=self.troupe.lake)


def describe_error(e: BaseException) -> str:
    """The text a client sees for a failed request."""
    if isinstance(e, TroupeError):
        return e.message
    return f"{type(e).__name__}: {e}"


__all__ = ["PROGRESS_S", "Progress", "ServiceError", "ServiceOptions", "TroupeService", "describe_error",
           "other_users_session"]
