"""The MCP tools: typed wrappers over :class:`troupe.runtime.mcp_server.core.TroupeService`.

Every failure a client can fix (unknown session, team not found, bad SQL, unknown agent or model
profile) comes back as a tool error (``is_error``) whose text says what was wrong and what to do.
So does a refusal (another user's session; :mod:`.owners`), which is also recorded as an ``access.denied``
event. Each call acts as its caller (:func:`.owners.caller`: the API key's user over HTTP, the local admin
over stdio): the sessions it opens belong to that user, and it touches no other user's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp.types import ToolAnnotations
from pydantic import Field

from troupe.runtime.access import LOCAL_ADMIN, AccessDenied, Principal
from troupe.runtime.errors import TroupeError
from troupe.runtime.mcp_server import conformance_fixtures, protocol, resources
from troupe.runtime.mcp_server.core import Progress, TroupeService, describe_error
from troupe.runtime.mcp_server.lake_query import DEFAULT_LIMIT, MAX_LIMIT
from troupe.runtime.mcp_server.models import (
    BlackboardView,
    LakeRows,
    RunOutcome,
    SessionInfo,
    SessionList,
    TaskTree,
    TeamList,
)
from troupe.runtime.mcp_server.owners import CallerMiddleware, caller
from troupe.runtime.mcp_server.subscriptions import Subscriptions

log = logging.getLogger("troupe.mcp")
T = TypeVar("T")

INSTRUCTIONS = """\
Troupe runs teams of LLM agents (a team is a YAML file: agents, their tools, model profiles).
Quick path: list_teams, then run_team(team, input) returns the final reply.
Step by step: start_session(team) -> send_message(session_id, text) -> wait_result(session_id) (repeat while
done is false) -> read_blackboard / task_tree to inspect the shared state -> close_session.
Every action is an event in the lake: query_lake("SELECT type, agent, tool FROM events WHERE session_id = '...'
ORDER BY ts") (DuckDB SQL, read-only)."""

TeamArg = Annotated[str, Field(description="a team YAML file or a folder holding team.yaml, relative to the "
                                           "server's team folder, or a team name from list_teams")]
ModelArg = Annotated[str | None, Field(description="model profile every agent uses: one the team defines "
                                                   "(list_teams shows them), or 'local'; default: the server's "
                                                   "--model, else the team's own")]
SessionArg = Annotated[str, Field(description="a session id from start_session or list_sessions")]

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


async def _call(act: Callable[[Principal], Awaitable[T]]) -> T:
    """``act`` as the request's caller, its errors turned into tool errors a client can act on (a refusal
    recorded first)."""
    try:
        return await act(caller().who)
    except ToolError:
        raise
    except AccessDenied as e:
        raise ToolError(caller().refused(e).reason) from None
    except TroupeError as e:
        raise ToolError(describe_error(e)) from None
    except (TimeoutError, ValueError) as e:
        raise ToolError(describe_error(e)) from None
    except Exception as e:
        log.exception("tool call failed")
        raise ToolError(f"internal error: {describe_error(e)}") from None


def _progress(ctx: Context, logs: protocol.ClientLogs) -> Progress:
    """Progress notifications for a waiting call (when the client sent a progress token), and the
    same news as a debug log notification."""
    async def report(waited: float, timeout: float | None, doing: str) -> None:
        try:
            await ctx.report_progress(round(waited, 1), timeout, doing)
        except Exception:  # the client went away; the call's own outcome will say so
            log.debug("could not send progress", exc_info=True)
        await logs.send(ctx, "debug", f"{waited:.0f}s: {doing}")
    return report


def build_server(service: TroupeService, *, manage_runtime: bool = True,
                 on_started: Callable[[], None] | None = None) -> MCPServer:
    """An MCP server exposing ``service``: its tools, its resources (:mod:`.resources`), logging,
    completion and subscriptions (:mod:`.protocol`), and with ``service.options.conformance`` the
    conformance suite's fixtures.

    With ``manage_runtime`` the server's lifespan (entered once, before the first request, for
    stdio and streamable HTTP alike) starts the runtime, then calls ``on_started``; when the server
    stops it closes every session and the runtime, even if it was cancelled (SIGTERM)."""
    conformance = service.options.conformance
    logs = protocol.ClientLogs()
    # the watcher reads as the local admin: each subscriber's right to the resource was checked when it subscribed
    subscriptions = Subscriptions(lambda res: resources.read_session_resource(service, res, LOCAL_ADMIN))

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        if manage_runtime:
            await service.start()
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            await subscriptions.close()
            if manage_runtime:
                with anyio.CancelScope(shield=True):
                    await service.shutdown()

    server: MCPServer = MCPServer("troupe", version="0.1.0", instructions=INSTRUCTIONS, log_level="WARNING",
                                  lifespan=lifespan, middleware=[CallerMiddleware()],
                                  tools=conformance_fixtures.schema_tools() if conformance else None)

    @server.tool(annotations=READ_ONLY)
    async def list_teams() -> TeamList:
        """List the team files this server may run (YAML files under its team folders), with each team's
        agents and model profiles. Pass a team's `path` (or its name) as `team` to run_team or start_session."""
        return service.list_teams()

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True))
    async def run_team(
        team: TeamArg,
        input: Annotated[str, Field(description="the user's message to the team's entry agent")],
        model: ModelArg = None,
        timeout_s: Annotated[float, Field(ge=0, le=3600, description="seconds to wait for the reply; the "
                                                                     "session is cancelled after that")] = 300,
        ctx: Context | None = None,
    ) -> RunOutcome:
        """Run a team session to the end on one input and return its session id, status, final reply,
        error and usage (tokens, LLM calls, tool calls). The session is closed afterwards; its events stay
        in the lake (query_lake). For a session you can inspect while it runs, use start_session.
        Reports progress while it runs; cancelling the request cancels the session."""
        outcome = await _call(lambda who: service.run_team(
            team, input, model=model, timeout_s=timeout_s, progress=_progress(ctx, logs) if ctx is not None else None,
            who=who))
        if ctx is not None:
            await logs.send(ctx, "info" if outcome.status == "completed" else "warning",
                            f"session {outcome.session_id} {outcome.status}")
        return outcome

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True))
    async def start_session(team: TeamArg, model: ModelArg = None) -> SessionInfo:
        """Open a session of a team and keep it open (status idle until the first send_message). Returns the
        session id and the team's agents. Close it with close_session when done."""
        return await _call(lambda who: service.start_session(team, model=model, who=who))

    @server.tool(annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True))
    async def send_message(
        session_id: SessionArg,
        text: Annotated[str, Field(description="the message")],
        to: Annotated[str | None, Field(description="the agent to send it to (default: the team's entry agent)")]
        = None,
    ) -> SessionInfo:
        """Send a message to an agent of an open session (the first one starts the session's work).
        Returns at once; follow with wait_result or session_status."""
        return await _call(lambda who: service.send_message(session_id, text, to=to, who=who))

    @server.tool(annotations=READ_ONLY)
    async def session_status(session_id: SessionArg) -> SessionInfo:
        """How an open session stands now: idle, running, or how it ended (with the reply and usage)."""
        return await _call(lambda who: service.session_status(session_id, who))

    @server.tool(annotations=READ_ONLY)
    async def wait_result(
        session_id: SessionArg,
        timeout_s: Annotated[float, Field(ge=0, le=3600, description="seconds to wait at most")] = 60,
        ctx: Context | None = None,
    ) -> SessionInfo:
        """Wait until an open session ends (its entry agent replies, it fails, or a budget runs out) or
        timeout_s passes. `done` tells which: if false, call it again. The session stays open (also when
        the request is cancelled). Reports progress while it waits."""
        return await _call(lambda who: service.wait_result(
            session_id, timeout_s, progress=_progress(ctx, logs) if ctx is not None else None, who=who))

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=False))
    async def close_session(session_id: SessionArg) -> SessionInfo:
        """Close an open session (cancelling it if it is still running) and write all its events to the lake.
        Returns its final state."""
        return await _call(lambda who: service.close_session(session_id, who))

    @server.tool(annotations=READ_ONLY)
    async def list_sessions() -> SessionList:
        """The sessions this server has open (started with start_session and not closed yet) that are yours
        (with an admin key: everyone's)."""
        async def listed(who: Principal) -> SessionList:
            return service.list_sessions(who)
        return await _call(listed)

    @server.tool(annotations=READ_ONLY)
    async def read_blackboard(
        session_id: SessionArg,
        prefix: Annotated[str, Field(description="only keys starting with this (e.g. 'results/'); '' for all")]
        = "",
    ) -> BlackboardView:
        """The live entries of an open session's blackboard (the key/value store its agents share), sorted
        by key, with each value's version and author."""
        return await _call(lambda who: service.read_blackboard(session_id, prefix, who))

    @server.tool(annotations=READ_ONLY)
    async def task_tree(session_id: SessionArg) -> TaskTree:
        """The tasks of an open session (work its agents delegated to each other) as a tree, with each task's
        goal, assignee, status and output, and a count per status."""
        return await _call(lambda who: service.task_tree(session_id, who))

    @server.tool(annotations=READ_ONLY)
    async def query_lake(
        sql: Annotated[str, Field(description="one read-only DuckDB statement over the `events` view, e.g. "
                                              "SELECT agent, type, tool, duration_ms FROM events WHERE "
                                              "session_id = 's-...' ORDER BY ts")],
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, description="rows to return at most")] = DEFAULT_LIMIT,
    ) -> LakeRows:
        """Query the event lake (every session's events: messages, LLM calls, tool calls, blackboard writes,
        task changes; columns include ts, run_id, session_id, task_id, agent, type, tool, model, status,
        duration_ms, tokens_in, tokens_out and a JSON payload) with DuckDB SQL. Read-only: one SELECT /
        WITH / DESCRIBE / SHOW / SUMMARIZE / EXPLAIN statement; rows are capped at `limit`. Events of a
        running session reach the lake within about a second; a closed session's are all there. With a
        key that is not an admin's, `events` holds only the rows of your own sessions and may be the only
        table named (no table functions)."""
        return await _call(lambda who: service.query_lake(sql, limit, who))

    resources.install(server, service)
    completers: list[protocol.Completer] = [lambda ref, arg, c: resources.complete(service, ref, arg, c)]
    if conformance:
        conformance_fixtures.install(server, log=logs.send)

        async def fixture_completions(ref: Any, arg: Any, c: Any) -> Any:
            return conformance_fixtures.complete(ref, arg, c)
        completers.append(fixture_completions)

    async def known_uri(uri: str) -> bool:
        """Whether ``uri`` reads (as the caller: another user's session resource is refused, not unknown)."""
        try:
            await server.read_resource(uri)
        except MCPError as e:
            if resources.is_refusal(e):
                raise
            return False
        except Exception:
            return False
        return True

    protocol.install(server, logs=logs, subscriptions=subscriptions, completers=completers, known_uri=known_uri)
    return server


__all__ = ["INSTRUCTIONS", "build_server"]
