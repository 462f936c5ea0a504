"""The scheduler's core: concurrency caps, timeouts, retries and idempotency for tool calls.

Plain Python. It does not know *where* a call runs: the caller hands it a :class:`ToolJob`
(what runs, under which limits) and a thunk that runs one attempt. In-process the thunk calls the
tool; in the Ray scheduler actor it sends the call to a node's tool worker, a Ray task or an MCP
connection. One core per runtime is what makes its caps hold cluster-wide.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from troupe.runtime.clock import SYSTEM_CLOCK, Clock
from troupe.runtime.errors import ModelVisibleError, ToolTimeoutError
from troupe.runtime.safety import SecretRef
from troupe.runtime.secrets import register_all
from troupe.runtime.storage.checkpoint import store_at
from troupe.tools.spec import Execution, ToolSpec

DEFAULT_MAX_CONCURRENCY = 256
_NOT_RETRIED = ("ToolArgumentError", "PermissionDeniedError", "ApprovalDeniedError", "ToolUnavailableError",
                "UnknownToolCallError")


class ToolJob(BaseModel):  # type: ignore[no-redef]  # the pydantic plugin's __init__ has **kwargs too
    """One tool call as the scheduler sees it (crosses from the agent's host to the scheduler)."""

    tool: str
    execution: Execution
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Arguments, already validated against the tool's schema."""
    idempotency_key: str
    timeout_s: float
    retries: int = 0
    """Extra attempts (0 unless the tool is idempotent)."""
    retry_backoff_s: float = 0.25
    max_concurrency: int | None = None
    resources: dict[str, float] = Field(default_factory=dict)
    session_id: str = ""
    agent: str = ""
    call_id: str = ""
    node_id: str | None = None
    """The calling host's node: I/O and MCP calls run on that node's worker and connection."""
    checkpoints: str | None = None
    """The session's checkpoint store when it is durable: the result is recorded there, by key, as
    soon as the call returns, and a call whose result is recorded is answered from it, not run again
    (a scheduler restarted after a crash, or a session resumed on another cluster, remembers)."""
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    """The session's secrets, as references (never values): what
    :func:`troupe.runtime.secrets.get` resolves against in the tool, wherever it runs, and what the
    scheduler registers for redaction before it records the result."""

    @classmethod
    def for_call(cls, spec: ToolSpec, kwargs: dict[str, Any], *, key: str, session_id: str = "", agent: str = "",
                 call_id: str = "", node_id: str | None = None, checkpoints: str | None = None,
                 secrets: Mapping[str, SecretRef] | None = None) -> ToolJob:
        return cls(
            tool=spec.name, execution=spec.execution, kwargs=kwargs, idempotency_key=key, timeout_s=spec.timeout_s,
            retries=spec.retries if spec.idempotent else 0, retry_backoff_s=spec.retry_backoff_s,
            max_concurrency=spec.max_concurrency, resources=dict(spec.resources), session_id=session_id,
            agent=agent, call_id=call_id, node_id=node_id,
            # MCP results are live objects (progress, sampling); inline tools live and die with their agent
            checkpoints=checkpoints if spec.execution in (Execution.IO, Execution.CPU) else None,
            secrets=dict(secrets or {}) if spec.execution is not Execution.MCP else {},  # MCP: in the server's config
        )


def _record(job: ToolJob, value: Any) -> None:
    """Record a result in the session's checkpoint store, redacted: the session's secrets are
    registered here first (those readable in this process), so a tool that returned one leaks none to disk."""
    assert job.checkpoints is not None
    register_all(job.secrets)
    store_at(job.checkpoints).record_tool(job.session_id, job.idempotency_key, value)


def idempotency_key(*parts: object) -> str:
    """A stable key for one call: the same parts (session, agent, turn, round, call) give the same key."""
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:32]


@dataclass
class _Gauge:
    running: int = 0
    peak: int = 0
    calls: int = 0


@dataclass
class Limits:
    """A global cap and per-tool caps; ``peak`` says how close each came (tests assert on it)."""

    global_cap: int = DEFAULT_MAX_CONCURRENCY
    _global: asyncio.Semaphore | None = None
    _per_tool: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    gauges: dict[str, _Gauge] = field(default_factory=dict)
    total: _Gauge = field(default_factory=_Gauge)
    _users: dict[str, int] = field(default_factory=dict)
    """Calls holding or waiting for each per-session cap (it is dropped when none is left)."""

    @asynccontextmanager
    async def slot(self, tool: str, cap: int | None, session: str | None = None) -> AsyncIterator[None]:
        """A place under the global cap and ``tool``'s ``cap``: across the runtime, or per ``session`` when given
        (an MCP tool's ``max_concurrency``)."""
        if self._global is None:
            self._global = asyncio.Semaphore(self.global_cap)
        per_tool = None
        key = tool if session is None else f"{tool}\x1f{session}"
        if cap is not None:
            per_tool = self._per_tool.setdefault(key, asyncio.Semaphore(cap))
            if session is not None:
                self._users[key] = self._users.get(key, 0) + 1
        try:
            async with self._global:
                if per_tool is not None:
                    await per_tool.acquire()
                gauge = self.gauges.setdefault(tool, _Gauge())
                for g in (gauge, self.total):
                    g.running += 1
                    g.calls += 1
                    g.peak = max(g.peak, g.running)
                try:
                    yield
                finally:
                    for g in (gauge, self.total):
                        g.running -= 1
                    if per_tool is not None:
                        per_tool.release()
        finally:
            if per_tool is not None and session is not None:
                self._users[key] -= 1
                if not self._users[key]:
                    del self._users[key], self._per_tool[key]

    def describe(self) -> dict[str, Any]:
        return {
            "global_cap": self.global_cap,
            "running": self.total.running,
            "peak": self.total.peak,
            "calls": self.total.calls,
            "tools": {name: {"running": g.running, "peak": g.peak, "calls": g.calls} for name, g in self.gauges.items()},
        }


class SchedulerCore:
    """Runs tool calls under caps, each attempt under the tool's timeout, retrying idempotent ones.

    Calls with the same idempotency key run once: a second submission while the first runs waits
    for it, and one after it finished gets the recorded result (the last ``remember`` keys).
    """

    def __init__(self, *, max_concurrency: int = DEFAULT_MAX_CONCURRENCY, clock: Clock = SYSTEM_CLOCK,
                 remember: int = 10_000) -> None:
        self.limits = Limits(global_cap=max_concurrency)
        self.clock = clock
        self._remember = remember
        self._results: OrderedDict[str, Any] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self.stats = {"attempts": 0, "retries": 0, "timeouts": 0, "deduplicated": 0, "cancelled": 0}

    async def run(self, job: ToolJob, attempt: Callable[[], Awaitable[Any]]) -> Any:
        key = job.idempotency_key
        if key in self._results:
            self.stats["deduplicated"] += 1
            return self._results[key]
        if job.checkpoints and key not in self._inflight:
            found, value = await asyncio.to_thread(store_at(job.checkpoints).recorded_tool, job.session_id, key)
            if found:
                self.stats["deduplicated"] += 1
                return value
        if key in self._inflight:
            self.stats["deduplicated"] += 1
            return await asyncio.shield(self._inflight[key])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            per_session = job.execution is Execution.MCP and job.max_concurrency is not None  # mcpServers.*.tools
            async with self.limits.slot(job.tool, job.max_concurrency, job.session_id if per_session else None):
                value = await self._attempts(job, attempt)
        except BaseException as e:
            if isinstance(e, asyncio.CancelledError):
                self.stats["cancelled"] += 1
            if not future.done():
                future.set_exception(e)
                future.exception()  # a waiter may not exist: don't warn "never retrieved"
            raise
        else:
            if job.checkpoints:
                await asyncio.to_thread(_record, job, value)
            future.set_result(value)
            self._results[key] = value
            if len(self._results) > self._remember:
                self._results.popitem(last=False)
            return value
        finally:
            self._inflight.pop(key, None)

    async def _attempts(self, job: ToolJob, attempt: Callable[[], Awaitable[Any]]) -> Any:
        delay = job.retry_backoff_s
        for n in range(job.retries + 1):
            last = n == job.retries
            self.stats["attempts"] += 1
            try:
                return await asyncio.wait_for(attempt(), timeout=job.timeout_s)
            except TimeoutError as e:
                self.stats["timeouts"] += 1
                if last:
                    tries = f" ({n + 1} attempts)" if n else ""
                    raise ToolTimeoutError(f"tool {job.tool!r} timed out after {job.timeout_s:g}s{tries}; "
                                           "try smaller input or another approach", tool=job.tool) from e
            except ModelVisibleError as e:
                if last or type(e).__name__ in _NOT_RETRIED:
                    raise
            except Exception:
                if last:
                    raise
            self.stats["retries"] += 1
            await self.clock.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def describe(self) -> dict[str, Any]:
        return {**self.limits.describe(), **self.stats, "remembered": len(self._results)}


__all__ = ["DEFAULT_MAX_CONCURRENCY", "Limits", "SchedulerCore", "ToolJob", "idempotency_key"]
