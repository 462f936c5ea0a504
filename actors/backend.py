"""Running sessions on Ray: the placement policy lives here, and every other Ray call of the client.

``dedicated``: each logical actor of a session is its own named host actor ``<session>/<name>``.
``packed``: a whole session lives on one host of a pool of long-lived host actors, reused across
sessions, so thousands of agents need no new processes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

from troupe.actors.eventlog_actor import get_or_create_event_log
from troupe.actors.host_actor import HostActor
from troupe.actors.naming import (
    NAMESPACE,
    dedicated_name,
    event_log_name,
    node_scope,
    pool_host_name,
    scheduler_name,
)
from troupe.actors.options import actor_class, host_options, scheduler_options
from troupe.actors.scheduler_actor import SchedulerActor
from troupe.actors.transport import deliver_ref, remote_call, unwrap
from troupe.runtime.agent.scheduler import DEFAULT_MAX_CONCURRENCY
from troupe.runtime.config import Placement
from troupe.runtime.errors import ConfigError, HostLostError, UnknownAgentError
from troupe.runtime.eventlog.core import NotSubscribedError
from troupe.runtime.events import Event
from troupe.runtime.ids import SUPERVISOR, AgentId, SessionId
from troupe.runtime.messages import Envelope
from troupe.runtime.otel.config import OtelConfig
from troupe.runtime.session.spec import SessionSpec, root_of
from troupe.runtime.session.workspace_history import RollbackResult
from troupe.runtime.storage.checkpoint import checkpoint_location
from troupe.runtime.storage.location import normalize as normalize_lake

TAIL_POLL_S = 1.0



def ensure_ray(address: str | None = None, **init_options: Any) -> bool:
    """Connect to Ray (or start a local instance); returns True when this call started it.

    ``address`` None joins the cluster named by ``RAY_ADDRESS`` (which Ray sets for the driver of a
    ``ray job submit`` job), else a running local one, else starts one; ``"local"`` always starts one.
    Joining a cluster that uses token auth (Ray 2.60's default) needs ``RAY_AUTH_MODE=token`` in
    the environment *before* ``ray`` is imported; the CLI sets it for you (see ``troupe.runtime.cli.main``).
    """
    if ray.is_initialized():
        return False
    target = os.environ.get("RAY_ADDRESS") if address in (None, "auto") else address
    if target and target.startswith(("http://", "https://")):
        raise ConfigError(
            f"Ray address {target!r} is a dashboard (job submission) address: submit with "
            f"`ray job submit --address {target} --working-dir . -- troupe ...`, or give a driver the "
            "cluster's GCS address (HOST:6379)")
    init_options.setdefault("log_to_driver", False)
    init_options.setdefault("namespace", NAMESPACE)
    if address is None or address == "local":
        init_options.setdefault("include_dashboard", False)
    ray.init(address=address, **init_options)
    return True


@dataclass
class _Placed:
    spec: SessionSpec
    hosts: dict[AgentId, ActorHandle] = field(default_factory=dict)
    """Dedicated: one host per logical actor name."""
    host: ActorHandle | None = None
    """Packed: the pool host holding the whole session."""

    def handle_for(self, agent: AgentId) -> ActorHandle:
        if self.host is not None:
            return self.host
        try:
            return self.hosts[root_of(agent)]
        except KeyError:
            raise UnknownAgentError(
                f"unknown agent {agent!r}; session {self.spec.session_id} has {sorted(self.hosts)}", agent=agent
            ) from None

    def all_hosts(self) -> list[ActorHandle]:
        return [self.host] if self.host is not None else list(self.hosts.values())


@dataclass(eq=False)
class _PackedRun:
    """One :meth:`RayBackend.run_session` waiting for its host."""

    spec: SessionSpec
    text: str
    timeout: float | None
    future: asyncio.Future[Any]
    sent: bool = False


async def _until_back(host: ActorHandle, timeout_s: float = 120.0) -> None:
    """Wait until a restarting actor answers again (calls to it fail meanwhile)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await host.rss_bytes.remote()
            return
        except ActorUnavailableError:
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.2)
        except RayActorError:
            return  # dead for good: the next run fails with why


class RayBackend:
    def __init__(self, *, lake: str, log: ActorHandle, log_name: str, job: str, pool_size: int,
                 started_ray: bool, scheduler: ActorHandle, scheduler_name: str,
                 checkpoints: str | None = None) -> None:
        self.lake = lake
        self.checkpoints = checkpoints
        """Where dedicated sessions are checkpointed (``None``: nowhere)."""
        self.log = log
        self.log_name = log_name
        self.scheduler = scheduler
        self.scheduler_name = scheduler_name
        self.job = job
        self.pool_size = pool_size
        self.started_ray = started_ray
        self._pool: list[ActorHandle] = []
        self._next = itertools.count()
        self._sessions: dict[SessionId, _Placed] = {}
        self._subscribed: set[SessionId] = set()
        self._queued_runs: dict[int, tuple[ActorHandle, list[_PackedRun]]] = {}
        """Packed runs asked for in this turn of the event loop, by host (sent together)."""
        self._send_scheduled = False
        self._consumers: set[asyncio.Task[None]] = set()
        self._restarting: dict[int, asyncio.Task[None]] = {}
        """Pool hosts that died, until Ray has them back (new runs wait for that)."""

    @classmethod
    async def create(cls, *, address: str | None = None, lake: str, pool_size: int | None = None,
                     tool_concurrency: int = DEFAULT_MAX_CONCURRENCY, checkpoints: bool | str = True,
                     scope: str | None = None, **init_options: Any) -> RayBackend:
        """``scope``: a name for this runtime among others in the same Ray job (each Ray Serve replica's), so
        that their event logs, schedulers, pools and node actors are their own; by default one per job and lake."""
        lake = normalize_lake(lake)  # an absolute local path, or a pyarrow.fs URI as given
        store = checkpoint_location(lake, checkpoints)  # a bad location fails before Ray starts
        if scope is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", scope):
            raise ConfigError(f"runtime scope {scope!r} is not a name: use 1-64 letters, digits, '_', '.' or '-'")
        started = ensure_ray(address, **init_options)
        job = ray.get_runtime_context().get_job_id() + (f"-{scope}" if scope else "")
        log_name = event_log_name(lake, job)
        otel = OtelConfig.from_env()  # the driver's $TROUPE_OTEL_ENDPOINT reaches the event log's process
        log = get_or_create_event_log(lake, name=log_name, namespace=NAMESPACE,
                                      **({"otel": otel.model_dump()} if otel is not None else {}))
        sched_name = scheduler_name(lake, job)
        scheduler = actor_class(SchedulerActor, scheduler_options(sched_name)).remote(
            tool_concurrency, node_scope(lake, job))
        await asyncio.gather(log.stats.remote(), scheduler.describe.remote())
        size = pool_size or max(1, int(ray.cluster_resources().get("CPU", 1)))
        return cls(lake=lake, log=log, log_name=log_name, job=job, pool_size=size, started_ray=started,
                   scheduler=scheduler, scheduler_name=sched_name, checkpoints=store)

    def checkpoints_for(self, placement: Placement) -> str | None:
        """Dedicated sessions are checkpointed: each host holds one logical actor of one session
        and is restarted with it. Packed ones (sweep samples) are not: a pool host that dies fails
        the samples it held, and the sweep runs them again."""
        return self.checkpoints if placement is Placement.DEDICATED else None

    # --- placement --------------------------------------------------------------------------
    def _pool_host(self) -> ActorHandle:
        if not self._pool:
            self._pool = [
                actor_class(HostActor, host_options(pool_host_name(self.lake, self.job, i), restartable=True,
                                                           spread=True)).remote(self.log_name, self.scheduler_name)
                for i in range(self.pool_size)
            ]
        return self._pool[next(self._next) % len(self._pool)]

    async def start_session(self, spec: SessionSpec, *, restore: bool = False) -> None:
        placed = _Placed(spec)
        self._sessions[spec.session_id] = placed
        if not restore:  # a new session: its stream positions start at 1 (a resumed one goes on from the lake's)
            await self.log.open_sessions.remote([str(spec.session_id)])
        if spec.placement is Placement.PACKED:
            placed.host = self._pool_host()
            await remote_call(placed.host.start_session.remote(spec, [str(n) for n in spec.all_names()], restore))
            if restore:
                await remote_call(placed.host.begin.remote(spec.session_id))
            return
        durable = spec.checkpoints is not None
        for name in spec.all_names():
            placed.hosts[name] = actor_class(HostActor, host_options(
                dedicated_name(spec.session_id, name), restartable=durable, resend=durable, spread=True)).remote(self.log_name, self.scheduler_name, (spec, [str(name)]) if durable else None)
        await asyncio.gather(*(remote_call(h.start_session.remote(spec, [str(n)], restore))
                               for n, h in placed.hosts.items()))
        if restore:  # every host holds its restored actor now: they may go on and reach each other
            await asyncio.gather(*(remote_call(h.begin.remote(spec.session_id)) for h in placed.hosts.values()))

    async def start_sessions(self, specs: list[SessionSpec]) -> None:
        packed = [s for s in specs if s.placement is Placement.PACKED]
        if packed:
            await self.log.open_sessions.remote([str(s.session_id) for s in packed])
        by_host: dict[int, tuple[ActorHandle, list[SessionSpec]]] = {}
        for spec in packed:
            host = self._pool_host()
            self._sessions[spec.session_id] = _Placed(spec, host=host)
            by_host.setdefault(id(host), (host, []))[1].append(spec)
        # The specs share one TeamConfig object, which pickle sends once per call.
        await asyncio.gather(*(remote_call(h.start_sessions.remote(group)) for h, group in by_host.values()))
        await asyncio.gather(*(self.start_session(s) for s in specs if s.placement is not Placement.PACKED))

    def _placed(self, session_id: SessionId) -> _Placed:
        try:
            return self._sessions[session_id]
        except KeyError:
            raise UnknownAgentError(f"no open session {session_id!r} in this runtime", session=session_id) from None

    # --- messaging --------------------------------------------------------------------------
    async def deliver(self, session_id: SessionId, agent: AgentId, envelope: Envelope) -> bool:
        return await remote_call(deliver_ref(self._placed(session_id).handle_for(agent), envelope, agent))

    async def call(self, session_id: SessionId, target: AgentId, method: str, kwargs: dict[str, Any]) -> Any:
        handle = self._placed(session_id).handle_for(target)
        return await remote_call(handle.call.remote(session_id, target, method, kwargs))

    async def subscribe(self, session_id: SessionId) -> None:
        self._subscribed.add(session_id)
        await self.log.subscribe.remote(str(session_id))

    async def tail(self, session_id: SessionId) -> AsyncIterator[Event]:
        """A session's events as the log receives them. Each host ships its own events, so the
        supervisor's ``session.finished`` may reach the log before an agent's last ones: when it
        comes, every host of the session is flushed first and what they still held comes before it."""
        cursor = 0
        while True:
            try:
                rows, cursor = await self.log.read.remote(str(session_id), cursor, TAIL_POLL_S)
            except RayTaskError as e:
                if not isinstance(e.cause, NotSubscribedError):
                    raise
                # The log restarted (its live tails are not kept): follow on from what comes next;
                # what came in between is in the lake.
                cursor = await self.log.subscribe.remote(str(session_id))
                continue
            finished = [row for row in rows if row["type"] == "session.finished"]
            if finished:
                rows = [row for row in rows if row["type"] != "session.finished"]
                placed = self._sessions.get(session_id)
                if placed is not None:
                    await asyncio.gather(*(h.flush.remote() for h in placed.all_hosts()), return_exceptions=True)
                    late, cursor = await self.log.read.remote(str(session_id), cursor, 0)
                    rows += late
                rows += finished
            for row in rows:
                yield Event.model_validate(row)

    # --- workspaces ---------------------------------------------------------------------------
    async def workspace_rollback(self, session_id: SessionId, to: str | None = None, *, by: str = "api",
                                 timeout_s: float = 60.0) -> RollbackResult | None:
        """Roll back a live session's workspace in the host of its supervisor (on the node holding
        its folder): a session of this runtime, or a dedicated one another driver opened (its hosts
        are named). ``None`` when no host holds it: the caller restores the folder itself."""
        placed = self._sessions.get(session_id)
        if placed is not None:
            host = placed.handle_for(SUPERVISOR)
        else:
            try:
                host = ray.get_actor(dedicated_name(session_id, SUPERVISOR), namespace=NAMESPACE)
            except ValueError:
                return None
        try:
            result: RollbackResult | None = await remote_call(
                host.workspace_rollback.remote(session_id, to, by, timeout_s))
        except RayActorError:
            return None  # its host is gone: the session is not live
        return result

    # --- teardown ---------------------------------------------------------------------------
    async def close_session(self, session_id: SessionId, *, compact: bool = True) -> None:
        placed = self._sessions.pop(session_id, None)
        if placed is None:
            return
        await asyncio.gather(*(h.close_session.remote(session_id) for h in placed.all_hosts()), return_exceptions=True)
        if placed.host is None:
            for handle in placed.hosts.values():
                ray.kill(handle, no_restart=True)
        if compact:
            await self.log.finish_run.remote(str(placed.spec.run_id))
        if session_id in self._subscribed:
            self._subscribed.discard(session_id)
            await self.log.unsubscribe.remote(str(session_id))

    async def run_session(self, spec: SessionSpec, text: str, timeout: float | None = None) -> Any:
        """Run a packed session start to finish on a pool host (cancelling it cancels the session).

        Sessions asked for in the same turn of the event loop go to their host in one call
        (:meth:`HostActor.run_sessions`), and each result comes back as soon as its session ends.
        """
        host = self._pool_host()
        if (restarting := self._restarting.get(id(host))) is not None:
            await asyncio.shield(restarting)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        item = _PackedRun(spec, text, timeout, future)
        queue = self._queued_runs.setdefault(id(host), (host, []))[1]
        queue.append(item)
        if not self._send_scheduled:
            self._send_scheduled = True
            asyncio.get_running_loop().call_soon(self._send_queued_runs)
        try:
            return await future
        except asyncio.CancelledError:
            if item.sent:
                host.cancel_packed.remote(spec.session_id)
            elif item in queue:
                queue.remove(item)
            raise

    def _send_queued_runs(self) -> None:
        self._send_scheduled = False
        queued, self._queued_runs = self._queued_runs, {}
        for host, items in queued.values():
            if items:
                for item in items:
                    item.sent = True
                task = asyncio.get_running_loop().create_task(self._consume_runs(host, items, self._host_died))
                self._consumers.add(task)
                task.add_done_callback(self._consumers.discard)

    def _host_died(self, host: ActorHandle) -> None:
        if id(host) not in self._restarting:
            task = asyncio.get_running_loop().create_task(_until_back(host))
            self._restarting[id(host)] = task
            task.add_done_callback(lambda _: self._restarting.pop(id(host), None))

    @staticmethod
    async def _consume_runs(host: ActorHandle, items: list[_PackedRun], died: Any) -> None:
        futures = [item.future for item in items]
        try:
            stream: Any = host.run_sessions.options(num_returns="streaming").remote(
                [(item.spec, item.text, item.timeout) for item in items])
            async for ref in stream:
                for index, result, error in await ref:
                    future = futures[index]
                    if not future.done():
                        future.set_exception(error) if error is not None else future.set_result(result)
        except Exception as e:  # the host died: every session still waiting fails with why
            error = unwrap(e) if isinstance(e, RayTaskError) else e
            if isinstance(e, RayActorError):
                died(host)
                error = HostLostError(f"the pool host running this sample died ({type(e).__name__}: {e}); "
                                    "Ray restarts it for later samples, and re-running the sweep runs this one again")
            for future in futures:
                if not future.done():
                    future.set_exception(error)

    async def flush(self) -> None:
        """Every event so far into the lake: the pool hosts' buffers to the log, the log to Parquet."""
        await asyncio.gather(*(host.flush.remote() for host in self._pool))
        await self.log.flush.remote()

    async def finish_run(self, run_id: str) -> None:
        await self.log.finish_run.remote(run_id)

    async def close_idle_mcp(self) -> int:
        return int(await self.scheduler.close_idle_mcp.remote())

    async def shutdown(self, *, keep_actors: bool = False) -> None:
        """Close open sessions, write every event to the lake, and release this runtime's actors.

        ``keep_actors`` leaves the pool and the event log running for other drivers of the same lake.
        """
        for session_id in list(self._sessions):
            await self.close_session(session_id)
        await asyncio.gather(*(host.flush.remote() for host in self._pool))
        await self.log.flush.remote()
        if not keep_actors:
            from troupe.actors.local_model_actor import stop_node_servers

            await stop_node_servers()
            await self.scheduler.close.remote()
            ray.kill(self.scheduler, no_restart=True)
            for host in self._pool:
                ray.kill(host, no_restart=True)
            self._pool = []
            await self.log.close.remote()
            ray.kill(self.log, no_restart=True)
        if self.started_ray:
            ray.shutdown()


__all__ = ["RayBackend", "ensure_ray"]
