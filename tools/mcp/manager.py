"""The MCP manager: one connection per server (per config) per process, opened on first use.

A node's agents share one manager, so a stdio server is one child process however many agents
call it. Connections are keyed by server name and config hash (two teams may run "filesystem"
with different roots), started on first use with concurrent first uses sharing one start, and
replaced transparently once known dead. Every failure a model can do something about comes back
as a :class:`~troupe.runtime.errors.ModelVisibleError`.

A connection nobody used for ``idle_close_s`` is closed (a stdio server exits) and opened again on
next use, so a server started under a config only ended sessions had (a per-session folder in its
arguments) does not stay, a child process each, for as long as the runtime lives.

A server with ``scope: session`` gets a connection per session (its key names the session), closed by
:meth:`McpManager.close_session` when the session ends.

A manager belongs to the event loop it first runs on (its connections are tasks there);
:func:`default_manager` keeps one per loop.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mcp import Client
from mcp import types as mt

from troupe.runtime.config import McpServerConfig
from troupe.runtime.errors import PermissionDeniedError, ToolArgumentError
from troupe.tools.mcp.calls import CallState
from troupe.tools.mcp.connection import McpConnection
from troupe.tools.mcp.content import (
    render_call_result,
    render_completion,
    render_prompt,
    render_prompt_list,
    render_resource_list,
    render_resource_read,
)
from troupe.tools.mcp.elicitation import Asker, Elicitor
from troupe.tools.mcp.mcp_tasks import call_as_task, runs_as_task
from troupe.tools.mcp.models import CallerInfo, McpCallResult
from troupe.tools.mcp.policy import is_disabled, tool_timeout_s
from troupe.tools.mcp.sampling import Sampler, no_sampler_message
from troupe.tools.mcp.server_params import connection_key
from troupe.tools.mcp.specs import (
    COMPLETE,
    GET_PROMPT,
    LIST_PROMPTS,
    LIST_RESOURCES,
    PSEUDO_TOOLS,
    READ_RESOURCE,
    SUBSCRIBE,
    UNSUBSCRIBE,
    build_specs,
)
from troupe.tools.mcp.subscriptions import Subscriptions, Updater, can_subscribe
from troupe.tools.mcp.templates import expand_template
from troupe.tools.spec import ToolSpec

T = TypeVar("T")
_MAX_PAGES = 100
"""Pages followed when listing; a server whose cursor never ends cannot hang us."""
IDLE_CLOSE_S = 300.0
"""A connection with no request for this long is closed (``None`` on a manager: never)."""


async def _all_pages(fetch: Callable[[str | None], Awaitable[Any]], attr: str) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        page = await fetch(cursor)
        items.extend(getattr(page, attr))
        cursor = page.next_cursor
        if not cursor:
            break
    return items


class McpManager:
    """Connections to MCP servers for one process (one node)."""

    def __init__(self, *, sampler: Sampler | None = None, elicitor: Elicitor | None = None,
                 idle_close_s: float | None = IDLE_CLOSE_S) -> None:
        self.sampler = sampler
        """Answers the servers' sampling requests (for servers whose config enables sampling)."""
        self.elicitor = elicitor
        """Answers the servers' elicitation requests (``None``: each is declined, and the summary says why)."""
        self.idle_close_s = idle_close_s
        self._conns: dict[str, McpConnection] = {}
        self._starting: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._by_session: dict[str, set[str]] = {}
        """The keys of each session's own (``scope: session``) connections."""
        self.subscriptions = Subscriptions()
        """Which sessions' agents are subscribed to which resources, per connection."""
        self._notices: set[asyncio.Task[Any]] = set()

    # ---- connections ----
    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._loop is not None and not self._loop.is_closed():
            raise RuntimeError("this McpManager runs on another event loop; use one manager per loop "
                               "(default_manager() keeps one per loop)")
        # First use, or the old loop is gone (and its connection tasks with it).
        self._loop, self._conns, self._starting, self._reaper, self._by_session = loop, {}, {}, None, {}

    async def connection(self, server: str, cfg: McpServerConfig, session_id: str = "") -> McpConnection:
        """The live connection for ``server`` under ``cfg`` (and ``session_id``, for a ``scope: session``
        server): started on first use, restarted (counted as a reconnect) when the previous one is known dead."""
        self._bind_loop()
        if cfg.scope == "session" and not session_id:
            raise ValueError(f"MCP server {server!r} has scope: session; its calls need a session id")
        key = connection_key(server, cfg, session_id)
        conn = self._conns.get(key)
        if conn is not None and conn.alive:
            conn.idle_since = time.monotonic()  # about to be used: not idle
            return conn
        lock = self._starting.setdefault(key, asyncio.Lock())
        async with lock:
            conn = self._conns.get(key)
            if conn is not None and conn.alive:
                return conn
            generation = 0
            if conn is not None:
                generation = conn.generation + 1
                await conn.close()
            conn = McpConnection(server, cfg, sampler=self._sample, elicitor=self._elicit, generation=generation)
            conn.on_resource_updated = self._resource_updated
            self._conns[key] = conn
            if cfg.scope == "session":
                self._by_session.setdefault(session_id, set()).add(key)
            if self.idle_close_s is not None and self._reaper is None:
                self._reaper = asyncio.get_running_loop().create_task(self._close_idle(self.idle_close_s))
            await conn.start()
            if self.subscriptions.uris(key):  # its server died with subscribers: they still want the updates
                await self.subscriptions.resubscribe(conn)
            return conn

    async def _resource_updated(self, conn: McpConnection, uri: str) -> None:
        """Off the connection's reader: a subscriber may take a while (a Ray call), the next message may not."""
        task = asyncio.get_running_loop().create_task(self.subscriptions.updated(conn, uri))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _close_idle(self, idle_s: float) -> None:
        """Close connections idle for ``idle_s``, looking every quarter of that, while any are open."""
        try:
            while self._conns:
                await asyncio.sleep(idle_s / 4)
                now = time.monotonic()
                idle = [(key, conn) for key, conn in self._conns.items()
                        if conn.in_flight == 0 and conn.ready_at is not None and now - conn.idle_since >= idle_s
                        and not self.subscriptions.uris(key)]  # a subscribed connection waits for its updates
                await self._drop([key for key, _ in idle])
        finally:
            if self._reaper is asyncio.current_task():
                self._reaper = None

    async def _drop(self, keys: list[str]) -> int:
        """Forget the connections under ``keys`` and close them; returns how many were open."""
        conns = [c for c in (self._conns.pop(k, None) for k in keys) if c is not None]
        for key in keys:
            lock = self._starting.get(key)
            if lock is not None and not lock.locked():
                del self._starting[key]
        if conns:
            await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)
        return len(conns)

    async def close_idle(self) -> int:
        """Close now the node-scoped connections with no call in flight (a sweep, at its end: their
        stdio servers exit instead of waiting ``idle_close_s``); a server in use stays. Returns how many."""
        if self._loop is not asyncio.get_running_loop():
            return 0
        return await self._drop([key for key, conn in self._conns.items() if conn.cfg.scope != "session"
                                 and conn.in_flight == 0 and conn.ready_at is not None
                                 and not self.subscriptions.uris(key)])

    async def _sample(self, server: str, cfg: McpServerConfig, params: mt.CreateMessageRequestParams,
                      caller: CallerInfo | None) -> mt.CreateMessageResult:
        """Late-bound, so a sampler set after connections opened is still used."""
        if self.sampler is None:
            raise LookupError(no_sampler_message(server))
        return await self.sampler(server, cfg, params, caller)

    async def _elicit(self, server: str, cfg: McpServerConfig, params: mt.ElicitRequestParams,
                      caller: CallerInfo | None) -> mt.ElicitResult:
        """Late-bound, like :meth:`_sample`; with no elicitor the request is declined."""
        if self.elicitor is None:
            return mt.ElicitResult(action="decline", _meta={"troupe/answered_by": "nobody"})
        return await self.elicitor(server, cfg, params, caller)

    async def ping(self, server: str, cfg: McpServerConfig, session_id: str = "") -> float:
        """Round trip to the server in milliseconds (connecting first if needed): its health check."""
        conn = await self.connection(server, cfg, session_id)
        return await conn.ping()

    async def close_session(self, session_id: str) -> int:
        """End a session's resource subscriptions (``resources/unsubscribe`` where nobody else wants the resource)
        and close its own connections (its ``scope: session`` servers exit); returns how many connections."""
        if self._loop is asyncio.get_running_loop():
            await self.subscriptions.end_session(session_id, self._conns)
        return await self._drop(list(self._by_session.pop(session_id, set())))

    async def _request(self, server: str, cfg: McpServerConfig, what: str, op: Callable[[Client], Awaitable[T]],
                       session_id: str = "") -> T:
        conn = await self.connection(server, cfg, session_id)
        return await conn.request(what, op, cfg.timeout_s)

    # ---- tools ----
    async def list_tools(self, server: str, cfg: McpServerConfig, session_id: str = "") -> list[ToolSpec]:
        """Specs for the server's tools, plus its resource / prompt tools."""
        conn = await self.connection(server, cfg, session_id)
        caps = conn.capabilities
        tools: list[mt.Tool] = []
        if caps.tools is not None:
            tools = await self._list_server_tools(conn)
        conn.tool_names = {t.name for t in tools}
        known: list[mt.Resource] = []
        if caps.resources is not None:
            try:  # the first page only: it just enriches read_resource's description
                known = (await conn.request("listing its resources", lambda c: c.list_resources(), cfg.timeout_s)).resources
            except Exception:  # noqa: BLE001
                known = []
        return build_specs(server, cfg, tools, resources=caps.resources is not None,
                           prompts=caps.prompts is not None, known_resources=known,
                           completions=caps.completions is not None, subscribe=can_subscribe(conn))

    async def _list_server_tools(self, conn: McpConnection) -> list[mt.Tool]:
        tools: list[mt.Tool] = await conn.request(
            "listing its tools", lambda c: _all_pages(lambda cur: c.list_tools(cursor=cur), "tools"), conn.cfg.timeout_s)
        conn.tool_names = {t.name for t in tools}
        conn.task_support = {t.name: t.execution.task_support for t in tools
                             if t.execution is not None and t.execution.task_support in ("required", "optional")}
        return tools

    async def call(self, server: str, cfg: McpServerConfig, tool: str, arguments: dict[str, Any], *,
                   caller: CallerInfo | None = None,
                   on_progress: Callable[[dict[str, Any]], Any] | None = None,
                   on_elicit: Asker | None = None, on_update: Updater | None = None) -> McpCallResult:
        """Call ``tool`` (the server's own name, or a resource / prompt pseudo tool) with a timeout
        of its ``tools`` entry's ``timeout_s`` or ``cfg.timeout_s``. Progress notifications are collected
        and forwarded to ``on_progress`` as they arrive; sampling requests made during the call are
        answered for ``caller``; its elicitation requests go to ``on_elicit`` (the calling session) when given, else to
        the manager's elicitor. A tool its entry disables is refused here too, before the server sees it.
        ``subscribe_resource`` keeps ``on_update`` (the calling session's) to tell the caller of each update. A tool
        whose server requires (or, configured, allows) task-augmented execution runs as an MCP task
        (:mod:`troupe.tools.mcp.mcp_tasks`): its status updates are progress notes."""
        if is_disabled(cfg, tool):
            raise PermissionDeniedError(f"tool {tool!r} of MCP server {server!r} is disabled in its config",
                                        tool=tool, reason="not_granted")
        session_id = caller.session_id if caller is not None else ""
        conn = await self.connection(server, cfg, session_id)
        if tool in PSEUDO_TOOLS and not await self._is_real_tool(conn, tool):
            if tool in (SUBSCRIBE, UNSUBSCRIBE):
                return await self.subscriptions.call(conn, tool, arguments or {}, caller, on_update)
            return await self._pseudo(server, cfg, tool, arguments or {}, session_id)
        state = CallState(caller=caller, on_progress=on_progress, on_elicit=on_elicit)
        timeout_s = tool_timeout_s(cfg, tool)
        if conn.tool_names is None and conn.capabilities.tools is not None:
            await self._list_server_tools(conn)  # a new connection: which tools run as tasks
        as_task = runs_as_task(cfg, tool, conn.task_support.get(tool))
        with conn.track(state):
            result = await conn.request(
                f"tool {tool!r}",
                (lambda c: call_as_task(c, server, tool, arguments or {}, state.report_progress, timeout_s=timeout_s))
                if as_task else lambda c: c.call_tool(tool, arguments or {}, progress_callback=state.report_progress),
                timeout_s,
            )
        rendered = render_call_result(result)
        return rendered.model_copy(update={"progress": list(state.progress), "sampling": list(state.sampling),
                                           "elicitations": list(state.elicitations), "logs": list(state.logs)})

    async def _is_real_tool(self, conn: McpConnection, name: str) -> bool:
        if conn.tool_names is None:
            await self._list_server_tools(conn)
        return name in (conn.tool_names or ())

    async def _pseudo(self, server: str, cfg: McpServerConfig, tool: str, arguments: dict[str, Any],
                      session_id: str = "") -> McpCallResult:
        if tool == LIST_RESOURCES:
            return render_resource_list(await self.list_resources(server, cfg, session_id),
                                        await self.list_resource_templates(server, cfg, session_id))
        if tool == READ_RESOURCE:
            uri = arguments.get("uri")
            if not isinstance(uri, str) or not uri:
                raise ToolArgumentError(f"{tool} needs a 'uri' string argument", tool=tool)
            uri = expand_template(uri, arguments.get("arguments") or {}, tool)
            return render_resource_read(await self.read_resource(server, cfg, uri, session_id))
        if tool == COMPLETE:
            return await self._complete(server, cfg, arguments, session_id)
        if tool == LIST_PROMPTS:
            return render_prompt_list(await self.list_prompts(server, cfg, session_id))
        assert tool == GET_PROMPT
        name = arguments.get("name")
        if not isinstance(name, str) or not name:
            raise ToolArgumentError(f"{tool} needs a 'name' string argument", tool=tool)
        prompt_args = arguments.get("arguments") or {}
        if not isinstance(prompt_args, dict):
            raise ToolArgumentError(f"{tool}: 'arguments' must be an object of strings", tool=tool)
        return render_prompt(await self.get_prompt(server, cfg, name, {k: str(v) for k, v in prompt_args.items()},
                                                   session_id))

    async def _complete(self, server: str, cfg: McpServerConfig, arguments: dict[str, Any],
                        session_id: str = "") -> McpCallResult:
        name, prompt, uri = arguments.get("argument"), arguments.get("prompt"), arguments.get("uri")
        if not isinstance(name, str) or not name or bool(prompt) == bool(uri):
            raise ToolArgumentError(f"{COMPLETE} needs 'argument' and one of 'prompt' or 'uri'", tool=COMPLETE)
        ref = mt.PromptReference(type="ref/prompt", name=str(prompt)) if prompt else \
            mt.ResourceTemplateReference(type="ref/resource", uri=str(uri))
        context = {k: str(v) for k, v in (arguments.get("context") or {}).items()} or None
        result = await self._request(
            server, cfg, f"completing {name!r}",
            lambda c: c.complete(ref, {"name": name, "value": str(arguments.get("value") or "")}, context), session_id)
        return render_completion(result)

    # ---- resources and prompts ----
    async def list_resources(self, server: str, cfg: McpServerConfig, session_id: str = "") -> list[mt.Resource]:
        return await self._request(server, cfg, "listing its resources",
                                   lambda c: _all_pages(lambda cur: c.list_resources(cursor=cur), "resources"), session_id)

    async def list_resource_templates(self, server: str, cfg: McpServerConfig,
                                      session_id: str = "") -> list[mt.ResourceTemplate]:
        conn = await self.connection(server, cfg, session_id)
        if conn.capabilities.resources is None:
            return []
        try:
            return await conn.request("listing its resource templates", lambda c: _all_pages(
                lambda cur: c.list_resource_templates(cursor=cur), "resource_templates"), cfg.timeout_s)
        except ToolArgumentError:
            raise
        except Exception:  # noqa: BLE001 - a server without templates may refuse the method
            return []

    async def read_resource(self, server: str, cfg: McpServerConfig, uri: str,
                            session_id: str = "") -> mt.ReadResourceResult:
        return await self._request(server, cfg, f"reading resource {uri!r}", lambda c: c.read_resource(uri), session_id)

    async def list_prompts(self, server: str, cfg: McpServerConfig, session_id: str = "") -> list[mt.Prompt]:
        return await self._request(server, cfg, "listing its prompts",
                                   lambda c: _all_pages(lambda cur: c.list_prompts(cursor=cur), "prompts"), session_id)

    async def get_prompt(self, server: str, cfg: McpServerConfig, name: str,
                         arguments: dict[str, str] | None = None, session_id: str = "") -> mt.GetPromptResult:
        return await self._request(server, cfg, f"getting prompt {name!r}", lambda c: c.get_prompt(name, arguments or {}),
                                   session_id)

    # ---- lifecycle ----
    async def close(self) -> None:
        """Close every connection (stdio children are stopped and reaped); the manager can be used
        again afterwards and starts afresh."""
        conns, self._conns, self._starting, self._by_session = list(self._conns.values()), {}, {}, {}
        self.subscriptions = Subscriptions()
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        if conns and self._loop is asyncio.get_running_loop():
            await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)

    def describe(self) -> dict[str, Any]:
        """``{"servers": {name: {...}}}``: connected, pid of the stdio child, reconnects, calls.
        A server used under several configs appears as ``name@<config hash>`` for all but the latest."""
        servers: dict[str, Any] = {}
        for conn in sorted(self._conns.values(), key=lambda c: c.started_at or 0.0):
            if conn.server in servers:
                older = servers.pop(conn.server)
                servers[f"{conn.server}@{older['config_hash']}"] = older
            servers[conn.server] = conn.describe()
        return {"servers": servers}


_DEFAULTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, McpManager] = weakref.WeakKeyDictionary()


def default_manager() -> McpManager:
    """This event loop's shared manager (what :class:`~troupe.tools.mcp.tools.McpTool` calls go through).
    It has no sampler unless one is set on it: ``default_manager().sampler = llm_sampler(...)``."""
    loop = asyncio.get_running_loop()
    manager = _DEFAULTS.get(loop)
    if manager is None:
        manager = _DEFAULTS[loop] = McpManager()
    return manager


__all__ = ["McpManager", "default_manager"]
