"""One live connection to one MCP server, owned by one long-lived asyncio task.

The SDK's transports (``stdio_client``, ``streamable_http_client``) and its ``Client`` are anyio
context managers whose cancel scopes must be entered and exited by the same task, so a connection
is a task that enters them, signals ready, and waits until it is asked to stop (or its stdio child
exits). Calls are made from the callers' own tasks through the shared ``Client``; only the opening
and closing happen in the owner task.

A connection is never revived: once dead (process exited, HTTP stream broken, closed) it stays
dead, and the manager opens a new one on next use.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any, TypeVar

import httpx2
from mcp import Client
from mcp import types as mt
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from troupe.runtime.config import McpServerConfig
from troupe.runtime.errors import ConfigError, ToolExecutionError, ToolTimeoutError
from troupe.tools.mcp.calls import CURRENT_CALL, CallState
from troupe.tools.mcp.elicitation import ASK_GRACE_S, Elicitor, asker_elicitor
from troupe.tools.mcp.elicitation import answer as answer_elicitation
from troupe.tools.mcp.errors import McpConnectionError, connect_error, describe_exc, disconnected_error, failed_error
from troupe.tools.mcp.mcp_log import MAX_LOGS_PER_CALL, log_record, new_recent, to_python_log
from troupe.tools.mcp.oauth import McpAuth, mcp_auth
from troupe.tools.mcp.roots import file_uri, roots_for
from troupe.tools.mcp.sampling import Sampler, answer
from troupe.tools.mcp.server_params import connection_key, http_headers, stdio_parameters
from troupe.tools.mcp.stdio_child import SPAWN_SINK, StderrTail

logger = logging.getLogger(__name__)

T = TypeVar("T")

CLIENT_INFO = mt.Implementation(name="troupe", version="0.1.0")
CLOSE_TIMEOUT_S = 10.0
"""The SDK's stdio shutdown is bounded (stdin close, 2 s, SIGTERM, 2 s, SIGKILL); this is a backstop."""
_EXIT_POLL_S = 0.2


class McpConnection:
    """A started (or starting, or dead) connection to one server under one config."""

    def __init__(self, server: str, cfg: McpServerConfig, *, sampler: Sampler | None = None,
                 elicitor: Elicitor | None = None, generation: int = 0) -> None:
        self.server = server
        self.cfg = cfg
        self.key = connection_key(server, cfg)
        self.generation = generation
        """0 for the first connection under this key, then +1 per reconnect."""
        self._sampler = sampler
        self._elicitor = elicitor
        self.recent_logs = new_recent()
        """The server's log messages that arrived outside any call (the latest few)."""
        self.roots_sent: set[str] | None = None
        """The root URIs last answered to ``roots/list`` (``None``: the server never asked)."""
        self.client: Client | None = None
        self._auth: McpAuth | None = None
        """OAuth for an HTTP server (tools/mcp/oauth.py): says what is missing when a request stays unauthorized."""
        self.process: Any = None
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self.dead_reason: str | None = None
        self.tool_names: set[str] | None = None
        self.task_support: dict[str, str] = {}
        """Each listed tool's ``execution.taskSupport`` (``required`` / ``optional``; absent: forbidden)."""
        self.on_resource_updated: Callable[[McpConnection, str], Awaitable[Any]] | None = None
        """Told of each ``notifications/resources/updated`` (the manager's subscriptions)."""
        """The server's own tool names, once listed (pseudo tools yield to a real tool of the same name)."""
        self.protocol_version: str | None = None
        self.server_info: mt.Implementation | None = None
        self.capabilities = mt.ServerCapabilities()
        self.calls = 0
        self._calls: dict[int, CallState] = {}
        self.in_flight = 0
        """Requests running now (calls, listings, reads)."""
        self.idle_since = time.monotonic()
        """When the last request ended (or the connection was last handed out)."""
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stderr: StderrTail | None = None

    # ---- state ----
    @property
    def pid(self) -> int | None:
        return getattr(self.process, "pid", None)

    @property
    def returncode(self) -> int | None:
        return getattr(self.process, "returncode", None)

    @property
    def alive(self) -> bool:
        return (
            self._ready is not None and self._ready.done() and not self._ready.cancelled()
            and self._ready.exception() is None
            and self.dead_reason is None
            and self._task is not None and not self._task.done()
            and self.returncode is None
        )

    def stderr_tail(self) -> str:
        return self._stderr.tail() if self._stderr is not None else ""

    def mark_dead(self, reason: str) -> None:
        """Record why the connection ended and let the owner task wind it down."""
        if self.dead_reason is None:
            self.dead_reason = reason
            logger.info("MCP server %r connection ended: %s", self.server, reason)
        self._stop.set()

    def describe(self) -> dict[str, Any]:
        info = self.server_info
        return {
            "server": self.server,
            "config_hash": self.key.rsplit("@", 1)[1],
            "transport": self.cfg.transport,
            "connected": self.alive,
            "pid": self.pid,
            "reconnects": self.generation,
            "protocol_version": self.protocol_version,
            "server_info": {"name": info.name, "version": info.version} if info is not None else None,
            "calls": self.calls,
            "in_flight": len(self._calls),
            "dead_reason": self.dead_reason,
            "recent_logs": list(self.recent_logs)[-5:],
            "started_at": self.started_at,
            "connect_ms": round((self.ready_at - self.started_at) * 1000, 1) if self.ready_at and self.started_at else None,
        }

    # ---- lifecycle ----
    async def start(self) -> None:
        """Open the connection (in its own task) and wait until the handshake is done."""
        loop = asyncio.get_running_loop()
        self.started_at = time.time()
        self._ready = loop.create_future()
        # A fresh context: the owner must not inherit the caller's call state.
        self._task = loop.create_task(self._own(), name=f"mcp:{self.key}", context=contextvars.Context())
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self.cfg.connect_timeout_s)
        except TimeoutError:
            self.mark_dead(f"no answer within connect_timeout_s={self.cfg.connect_timeout_s}s")
            await self._abort()
            raise self._connect_error(f"did not finish connecting within {self.cfg.connect_timeout_s}s") from None
        except (ConfigError, McpConnectionError):
            raise
        except Exception as e:
            raise self._connect_error(describe_exc(e)) from e

    def _connect_error(self, why: str) -> McpConnectionError:
        why = self._auth.explain(why) if self._auth is not None else why
        return connect_error(self.server, self.cfg, why, self.stderr_tail())

    async def _own(self) -> None:
        assert self._ready is not None
        try:
            async with AsyncExitStack() as stack:
                transport = await self._open_transport(stack)
                client = Client(transport, sampling_callback=self._on_sampling, elicitation_callback=self._on_elicitation,
                                list_roots_callback=self._on_roots, logging_callback=self._on_log,
                                log_level=self.cfg.log_level, cache=None, client_info=CLIENT_INFO,
                                message_handler=self._on_message)
                self.client = await stack.enter_async_context(client)
                if self._stderr is not None:
                    self._stderr.child_started()
                self.protocol_version = client.protocol_version
                self.server_info = client.server_info
                self.capabilities = client.server_capabilities
                await self._set_log_level(client)
                self.ready_at = time.time()
                self._ready.set_result(None)
                await self._watch()
        except Exception as e:  # noqa: BLE001 - ends the connection; the reason is kept for callers
            reason = describe_exc(e)
            if not self._ready.done():
                self._ready.set_exception(e)
                self._ready.exception()  # retrieved by start(), or by nobody if it gave up: no GC warning
            self.mark_dead(reason)
        finally:
            if self.dead_reason is None:
                self.dead_reason = "closed"
            if not self._ready.done():
                self._ready.set_exception(McpConnectionError(f"MCP server {self.server!r}: connection closed while starting"))
                self._ready.exception()
            if self._stderr is not None:
                self._stderr.close()

    async def _open_transport(self, stack: AsyncExitStack) -> Any:
        if self.cfg.transport == "stdio":
            params = stdio_parameters(self.server, self.cfg)
            self._stderr = StderrTail(self.server, asyncio.get_running_loop())
            SPAWN_SINK.set(self._on_spawn)
            return stdio_client(params, errlog=self._stderr.writer)
        assert self.cfg.url
        read_timeout = max(300.0, self.cfg.timeout_s + 30.0)
        self._auth = mcp_auth(self.server, self.cfg)
        http = create_mcp_http_client(
            headers=http_headers(self.server, self.cfg) or None,
            timeout=httpx2.Timeout(self.cfg.connect_timeout_s, read=read_timeout), auth=self._auth,
        )
        await stack.enter_async_context(http)
        return streamable_http_client(self.cfg.url, http_client=http)

    def _on_spawn(self, process: Any) -> None:
        self.process = process
        if self._stderr is not None:
            self._stderr.child_started()

    async def _watch(self) -> None:
        """Wait for close(); a stdio child that exits ends the connection at once (and is reaped),
        so the next use does not find a half-dead one."""
        while not self._stop.is_set():
            if self.returncode is not None:
                self.mark_dead(f"server process exited with code {self.returncode}")
                return
            if self.process is None:
                await self._stop.wait()
                return
            try:
                await asyncio.wait_for(self._stop.wait(), _EXIT_POLL_S)
            except TimeoutError:
                pass

    async def close(self) -> None:
        """End the connection: stdio children get the SDK's stdin-close / SIGTERM / SIGKILL sequence."""
        self.mark_dead(self.dead_reason or "closed")
        task = self._task
        if task is None or task.done():
            return
        if task.get_loop() is not asyncio.get_running_loop():
            return  # its loop is gone or elsewhere: nothing here can await it
        if self.ready_at is None:
            await self._abort()  # still handshaking: it would not look at the stop flag until done
            return
        done, _ = await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)

    async def _abort(self) -> None:
        """Cancel a connection stuck starting (the SDK's stdio shutdown still runs, shielded)."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)

    # ---- calls ----
    async def _set_log_level(self, client: Client) -> None:
        """``logging/setLevel`` from the config (handshake-era servers; newer ones get it on each request)."""
        if self.cfg.log_level is None or self.capabilities.logging is None or client.protocol_version.startswith("2026"):
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                await client.set_logging_level(self.cfg.log_level)
        except Exception as e:  # noqa: BLE001 - a server that refuses still works; its logs stay at its level
            logger.warning("MCP server %r refused logging/setLevel %s: %s", self.server, self.cfg.log_level, describe_exc(e))

    @contextmanager
    def track(self, state: CallState) -> Iterator[CallState]:
        """Mark ``state`` as in flight (for progress and sampling attribution) while a call runs."""
        self._check_roots(state)
        state.connection = self
        self._calls[id(state)] = state
        token = CURRENT_CALL.set(state)
        self.calls += 1
        try:
            yield state
        finally:
            CURRENT_CALL.reset(token)
            self._calls.pop(id(state), None)

    def current_call(self) -> CallState | None:
        """The call a server request belongs to.

        When the request reaches us in the caller's task (modern protocol over any transport;
        legacy over HTTP) the context says exactly which call it is. Otherwise (legacy stdio: the
        request arrives on the connection's reader task) it is the most recently started call
        still in flight on this connection - exact whenever calls to a sampling server do not
        overlap.
        """
        state = CURRENT_CALL.get()
        if state is not None and state.connection is self:
            return state
        return next(reversed(self._calls.values()), None)

    async def _on_sampling(self, context: ClientRequestContext, params: mt.CreateMessageRequestParams
                           ) -> mt.CreateMessageResult | mt.ErrorData:
        state = self.current_call()
        result, summary = await answer(self._sampler, self.server, self.cfg, params, state.caller if state else None)
        if state is not None:
            state.sampling.append(summary)
        return result

    async def _on_elicitation(self, context: ClientRequestContext, params: mt.ElicitRequestParams
                              ) -> mt.ElicitResult | mt.ErrorData:
        state = self.current_call()
        elicitor, wait_s = self._elicitor, None
        if state is not None and state.on_elicit is not None:  # the calling session answers (and records) it
            elicitor, wait_s = asker_elicitor(state.on_elicit), self.cfg.elicitation_timeout_s + ASK_GRACE_S
        result, summary = await answer_elicitation(elicitor, self.server, self.cfg, params,
                                                   state.caller if state else None, wait_s)
        if state is not None:
            state.elicitations.append(summary)
        return result

    def _roots(self) -> list[mt.Root]:
        workspaces = [s.caller.workspace for s in self._calls.values() if s.caller is not None and s.caller.workspace]
        return roots_for(self.cfg, dict.fromkeys(workspaces))

    async def _on_roots(self, context: ClientRequestContext) -> mt.ListRootsResult | mt.ErrorData:
        roots = self._roots()
        self.roots_sent = {str(r.uri) for r in roots}
        return mt.ListRootsResult(roots=roots)

    def _check_roots(self, state: CallState) -> None:
        """A call from a workspace the server was not told about: say the roots changed (it asks again)."""
        workspace = state.caller.workspace if state.caller is not None else ""
        if not workspace or self.roots_sent is None or self.client is None or file_uri(workspace) in self.roots_sent:
            return
        self.roots_sent = self.roots_sent | {file_uri(workspace)}
        client = self.client

        async def notify() -> None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    await client.send_roots_list_changed()
            except Exception as e:  # noqa: BLE001 - best effort: the server can still ask
                logger.debug("roots/list_changed to %r failed: %s", self.server, e)

        asyncio.get_running_loop().create_task(notify())

    async def _on_log(self, params: mt.LoggingMessageNotificationParams) -> None:
        record = log_record(self.server, params)
        state = self.current_call()
        if state is None:
            self.recent_logs.append(record)
            to_python_log(record)
        elif len(state.logs) < MAX_LOGS_PER_CALL:
            state.logs.append(record)

    async def _on_message(self, message: Any) -> None:
        """A server notification besides progress and logs: a subscribed resource changed."""
        if isinstance(message, mt.ResourceUpdatedNotification) and self.on_resource_updated is not None:
            await self.on_resource_updated(self, str(message.params.uri))

    async def ping(self) -> float:
        """One round trip to the server, in milliseconds (``ping`` on handshake-era servers, else a
        ``tools/list``-free ``server/discover``)."""
        started = time.perf_counter()

        async def op(client: Client) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if client.protocol_version.startswith("2026"):
                    await client.session.discover()
                else:
                    await client.send_ping()

        await self.request("ping", op, min(self.cfg.timeout_s, 10.0))
        return round((time.perf_counter() - started) * 1000, 2)

    async def request(self, what: str, op: Callable[[Client], Awaitable[T]], timeout_s: float) -> T:
        """Run ``op`` on the live client under ``timeout_s``; every failure becomes a model-visible
        error that says what happened and what happens next."""
        client = self.client
        if client is None or not self.alive:
            raise self._disconnected(what)
        self.in_flight += 1
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                return await op(client)
        except TimeoutError:
            if deadline.expired():
                raise ToolTimeoutError(
                    f"MCP server {self.server!r} did not finish {what} within {timeout_s}s; the call was cancelled",
                    server=self.server, timeout_s=timeout_s,
                ) from None
            raise self._failed(what, "timed out in the transport") from None
        except MCPError as e:
            if e.code == mt.CONNECTION_CLOSED or not self.alive:
                await self._settle_exit()
                self.mark_dead(self._exit_reason(e.message))
                raise self._disconnected(what) from None
            if e.code == mt.REQUEST_TIMEOUT:
                raise ToolTimeoutError(f"MCP server {self.server!r} timed out during {what}: {e.message}",
                                       server=self.server) from None
            raise self._failed(what, e.message, code=e.code) from None
        except ValidationError as e:
            raise self._failed(what, f"the server sent a malformed result ({e.error_count()} validation errors)") from None
        except (ToolExecutionError, ToolTimeoutError, ConfigError):
            raise
        except Exception as e:  # noqa: BLE001 - transport errors: anyio, httpx2, OS
            await self._settle_exit()
            if not self.alive:
                self.mark_dead(self._exit_reason(describe_exc(e)))
                raise self._disconnected(what) from None
            raise self._failed(what, describe_exc(e)) from e
        finally:
            self.in_flight -= 1
            self.idle_since = time.monotonic()

    async def _settle_exit(self, within_s: float = 0.5) -> None:
        """A closed pipe is usually seen before the exit status: give the status a moment."""
        if self.process is None:
            return
        deadline = time.monotonic() + within_s
        while self.returncode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def _exit_reason(self, fallback: str) -> str:
        if self.returncode is not None:
            return f"server process exited with code {self.returncode}"
        return self.dead_reason or fallback

    def _disconnected(self, what: str) -> ToolExecutionError:
        return disconnected_error(self.server, what, self._exit_reason("connection closed"), self.stderr_tail())

    def _failed(self, what: str, detail: str, **fields: Any) -> ToolExecutionError:
        detail = self._auth.explain(detail) if self._auth is not None else detail
        return failed_error(self.server, what, detail, **fields)


__all__ = ["CLIENT_INFO", "McpConnection"]
