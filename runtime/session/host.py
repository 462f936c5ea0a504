"""A host holds logical actors (agents, blackboard, task registry, supervisor) of one or more
sessions and routes messages and calls between them.

Placement decides how many logical actors one host holds: ``dedicated`` gives each its own host
(its own Ray actor), ``packed`` puts a whole session on one host of a pool. Routing is the same:
an address held here is served in-process (no serialisation, no process boundary); any other goes
through the :class:`Transport` (Ray, in ``actors/``). A child agent lives on the host of its root
ancestor, and its id says so: ``worker.checker`` lives with ``worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from troupe.runtime.agent.core import AgentCore, control_message
from troupe.runtime.agent.deps import AgentDeps
from troupe.runtime.agent.dispatch import Dispatcher, LocalDispatcher, session_registration, session_scoped
from troupe.runtime.agent.state import AgentState
from troupe.runtime.config import USER_SIM, AgentSpec, TeamConfig
from troupe.runtime.errors import ConfigError, TroupeError, UnknownAgentError
from troupe.runtime.events import ActorRestoredPayload, AgentSpawnedPayload, EventSink, Payload, make_event
from troupe.runtime.ids import BLACKBOARD, MEMORY, SUPERVISOR, TASKS, USER, AgentId, SessionId
from troupe.runtime.llm.registry import build_client
from troupe.runtime.llm.types import LLMClient
from troupe.runtime.memory.service import MemoryService
from troupe.runtime.messages import CURRENT_TURN, TURN_KWARG, ControlOp, Envelope, turn_scope
from troupe.runtime.planning.tools import planning_tools
from troupe.runtime.secrets import register_all
from troupe.runtime.session import environment as envs
from troupe.runtime.session import spec as session_spec
from troupe.runtime.session.blackboard import Blackboard
from troupe.runtime.session.durable import MUTATING, REQUEST_ID, Durability
from troupe.runtime.session.services import HostServices, notifier
from troupe.runtime.session.spec import AGENT_METHODS, SERVICE_METHODS, SERVICES, SessionSpec, Transport, root_of
from troupe.runtime.session.supervisor import SessionResult, Supervisor
from troupe.runtime.session.tasks import TaskRegistry
from troupe.runtime.session.turn_cancel import is_turn_cancel, stop_turn
from troupe.runtime.session.workspace_history import boundary_for, guard_for
from troupe.runtime.storage.checkpoint import ActorCheckpoint, store_at
from troupe.tools.builtins import agent_tool_names, default_registry
from troupe.tools.registry import ToolRegistry
from troupe.tools.spec import Tool

_REMEMBER_CLOSED = 100_000


@dataclass
class _Held:
    """This host's share of one session."""

    spec: SessionSpec
    guests: dict[AgentId, Any] = field(default_factory=dict)
    runners: list[asyncio.Task[None]] = field(default_factory=list)
    llms: list[LLMClient] = field(default_factory=list)
    registry: ToolRegistry | None = None
    """The host's tools plus this session's MCP tools."""
    closing_here: bool = False
    """Run by :meth:`HostCore.run_session`, which closes it itself: no TERMINATE round on finish."""
    durable: Durability | None = None
    """Set when the session is checkpointed (:mod:`troupe.runtime.session.durable`)."""
    owed: list[Envelope] = field(default_factory=list)
    """Notices restored services still owe, sent by :meth:`HostCore.begin`."""
    opened: bool = False
    """The session's model profiles are registered with the dispatcher (when its MCP servers sample)."""
    environment: envs.SessionEnvironment | None = None  # on the entry agent's host (its .error: why setup failed)


class HostCore:
    def __init__(
        self,
        *,
        sink: EventSink,
        transport: Transport | None = None,
        registry: ToolRegistry | None = None,
        llm_factory: Callable[..., LLMClient] = build_client,
        dispatcher: Dispatcher | None = None,
        flush_events: Callable[[], Any] | None = None,
    ) -> None:
        self.sink = sink
        self.flush_events = flush_events
        """Ships this host's buffered events to the log (run before every checkpoint)."""
        self.transport = transport
        self.registry = registry or default_registry()
        self.dispatcher: Dispatcher = dispatcher or LocalDispatcher()
        self._mcp_tools: dict[str, list[Tool]] = {}
        self.llm_factory = llm_factory
        self.sessions: dict[SessionId, _Held] = {}
        self._background: dict[asyncio.Task[Any], SessionId | None] = {}
        """Background deliveries, by the session they belong to (closing one waits for its own only)."""
        self.closed: OrderedDict[SessionId, None] = OrderedDict()
        """Sessions this host held and closed: late messages for them are dropped, never forwarded."""

    # --- lifecycle --------------------------------------------------------------------------
    def emitter(self, spec: SessionSpec, agent: str) -> Callable[..., None]:
        seq = itertools.count(1)
        run_id, session_id, sink = str(spec.run_id), str(spec.session_id), self.sink
        stream = spec.stream_tokens

        def emit(payload: Payload, /, **fields: Any) -> None:
            if payload.event_type == "llm.token" and not stream:
                return
            fields.setdefault("agent", agent)
            fields.setdefault("turn", CURRENT_TURN.get())  # a service's event: the turn of the call it serves
            sink.emit(make_event(payload, run_id=run_id, session_id=session_id, seq=next(seq), **fields))

        return emit

    async def start_session(self, spec: SessionSpec, names: Sequence[str], *, restore: bool = False) -> list[str]:
        """Create the logical actors ``names`` of ``spec`` on this host; ``restore`` brings them
        (and the children of agents among them) back from their checkpoints, where they have one,
        and leaves them still: :meth:`begin` sets them going once every host of the session is
        back (a restored agent goes on at once, and must find the others there)."""
        held = self.sessions.setdefault(spec.session_id, _Held(spec))
        register_all(spec.team.secrets)  # before this process emits anything of the session (docs/secrets.md)
        if not held.opened:
            held.opened = True
            if (registered := session_registration(spec.team)) is not None:  # sampling profiles, secrets' refs
                await self.dispatcher.open_session(str(spec.session_id), *registered)
        if spec.checkpoints and held.durable is None:
            held.durable = Durability(store_at(spec.checkpoints), spec.session_id, self.flush_events)
        if held.environment is None and spec.team.entry in names and envs.has_environment(spec.team):
            held.environment = env = await envs.open_environment(spec, self.emitter(spec, "environment"), restore)
            if env.error is not None and not held.closing_here:  # run_session fails the session itself
                await self.close_session(spec.session_id)
                raise envs.EnvironmentSetupError(env.error, session=str(spec.session_id))
        loaded: dict[AgentId, ActorCheckpoint] = {}
        if restore and held.durable is not None:
            loaded = await asyncio.to_thread(held.durable.load, map(AgentId, names))
        if held.registry is None:
            agents = [spec.agent(n) for n in names if AgentId(n) not in SERVICES]
            held.registry = await self._session_registry(spec.team, agents, spec)
        for name in map(AgentId, names):
            if name in held.guests:
                continue
            cp = loaded.get(name)
            if name in SERVICES:
                held.guests[name] = self._make_service(spec, name, cp)
            else:
                agent = self._make_agent(held, spec.agent(name))
                if cp is not None:
                    agent.restore(cp.state)
                held.guests[name] = agent
            if held.durable is not None:
                held.durable.track(name, held.guests[name], cp)
        for name, cp in sorted(loaded.items()):
            if "." in name and name not in held.guests:  # a child agent spawned before the crash
                self._restore_child(held, name, cp)
        if restore and held.durable is not None:
            for name, guest in list(held.guests.items()):
                if isinstance(guest, AgentCore):  # messages acknowledged after its last checkpoint
                    for envelope in await asyncio.to_thread(held.durable.load_inbox, name):
                        guest.deliver(envelope)  # (ids its checkpoint already holds are skipped)
        for name, cp in sorted(loaded.items()):
            self.emitter(spec, str(name))(ActorRestoredPayload(
                seq=cp.seq, kind=cp.kind, saved_at=cp.saved_at.isoformat(),
                replays_turn=bool(cp.state.get("turn")), unread=len(cp.state.get("mailbox", ())),
                unsent=len(cp.outbox)))
        held.owed.extend(held.durable.unsent(loaded) if held.durable is not None else ())
        if not restore:
            await self.begin(spec.session_id)
        return [str(n) for n in names]

    async def begin(self, session_id: SessionId) -> None:
        """Set this host's logical actors of a session going: their run loops, and the notices a
        restored service still owes."""
        held = self._held(session_id)
        for guest in held.guests.values():
            if isinstance(guest, AgentCore) and guest._runner is None and guest.sm.state is not AgentState.TERMINATED:
                held.runners.append(guest.start())
        owed, held.owed = held.owed, []
        for envelope in owed:
            self._spawn_bg(self._deliver_quietly(envelope), session_id)

    def _restore_child(self, held: _Held, name: AgentId, cp: ActorCheckpoint) -> None:
        spec = AgentSpec.model_validate(cp.state["spec"])
        core = self._make_agent(held, spec, parent=cp.state.get("parent"), profile=cp.state.get("profile"))
        core.restore(cp.state)
        held.guests[name] = core
        assert held.durable is not None
        held.durable.track(name, core, cp)

    def _make_service(self, spec: SessionSpec, name: AgentId, restored: ActorCheckpoint | None = None) -> Any:
        emit = self.emitter(spec, str(name))
        state = restored.state if restored is not None else None
        if name in (BLACKBOARD, TASKS):
            cls, notify = Blackboard if name == BLACKBOARD else TaskRegistry, notifier(self, spec, name)
            if state is not None:
                return cls.restore(state, spec.session_id, emit=emit, notify=notify)
            return cls(session_id=spec.session_id, emit=emit, notify=notify)
        if name == MEMORY:  # every entry is on storage: nothing to restore (docs/memory.md)
            return MemoryService.open(spec.team, str(spec.session_id), spec.lake, emit)

        async def on_finish(result: SessionResult) -> None:
            held = self.sessions.get(spec.session_id)
            if held is not None and held.environment is not None:  # after the last turn: capture the final state
                result.final_state, result.sample_dir = await held.environment.close(), str(held.environment.dir)
            if held is not None and held.durable is not None:
                await held.durable.save(SUPERVISOR)  # the result is durable before anyone is told
            if held is not None and held.closing_here:
                return
            for member in spec.members():
                self._spawn_bg(self.deliver(spec.session_id, member, control_message(spec.session_id, member, ControlOp.TERMINATE)),
                               spec.session_id)

        supervisor = Supervisor(session_id=spec.session_id, run_id=spec.run_id, entry=spec.team.entry,
                                budgets=spec.team.budgets, emit=emit, on_finish=on_finish, conversation=spec.conversation, record=session_spec.started_record(spec),
                                user=spec.team.user, on_boundary=boundary_for(spec, self.emitter), send=lambda env: self._spawn_bg(
                                    self._deliver_quietly(env), spec.session_id))
        supervisor.approvals.policy = supervisor.elicitations.policy = spec.team.approval_policy
        if state is not None:
            supervisor.restore(state)
        return supervisor

    async def _session_registry(self, team: TeamConfig, agents: Sequence[AgentSpec],
                                spec: SessionSpec | None = None) -> ToolRegistry:
        """The host's tools, plus the tools of every MCP server these agents (or their children) name."""
        wanted = {server for server in team.mcp_servers
                  for a in agents for entry in a.tools if entry.startswith(f"{server}__")}
        if not wanted and not team.declared_tools:
            return self.registry
        from troupe.tools.declared import declared_tools
        from troupe.tools.mcp import mcp_tools

        tools: list[Tool] = declared_tools(team.declared_tools)
        for server in sorted(wanted):
            cfg = team.mcp_servers[server]
            if cfg.scope == "session" and spec is not None:
                tools.extend(await envs.session_mcp_tools(self.dispatcher, self._mcp_tools, server, cfg, spec))
                continue
            key = f"{server}:{cfg.model_dump_json()}"
            if key not in self._mcp_tools:
                try:
                    specs = await self.dispatcher.mcp_specs(server, cfg)
                except Exception as e:
                    raise ConfigError(f"MCP server {server!r} did not start or list its tools: {type(e).__name__}: {e}; "
                                      "check its command/url in mcpServers", server=server) from e
                self._mcp_tools[key] = mcp_tools(server, cfg, specs)
            tools.extend(self._mcp_tools[key])
        return self.registry.overlay(tools)

    def _make_agent(self, held: _Held, agent: AgentSpec, *, parent: AgentId | None = None, profile: str | None = None) -> AgentCore:
        spec = held.spec
        profile_name = profile or spec.team.profile_for(agent)
        llm, replay = session_spec.agent_model(spec, str(agent.id), lambda: self.llm_factory(profile_name, spec.team.models, agent=str(agent.id)))
        held.llms.append(llm)
        tools = {t.name: t for t in (held.registry or self.registry).resolve(agent_tool_names(agent)) if not getattr(t, "disabled", False)}  # skills, memory, knowledge; disabled MCP tools: not granted
        tools.update(planning_tools(agent))  # kind: planner (docs/planning.md)
        model = spec.team.models[profile_name]
        core = AgentCore(AgentDeps(
            spec=agent, session_id=spec.session_id, run_id=spec.run_id, llm=llm, tools=tools, session_tools=frozenset((held.registry or self.registry).names()),
            services=HostServices(self, spec.session_id), emit=self.emitter(spec, str(agent.id)), dispatcher=self.dispatcher,
            team=[agent] if agent.id == USER_SIM else spec.team.agents, parent=parent, profile=profile_name, temperature=model.temperature,
            context_retries=model.context_retries, stream_tokens=spec.stream_tokens, workspace=spec.team.workspace,
            approval_timeout_s=spec.team.approval_timeout_s, checkpoints=spec.checkpoints, sandbox=spec.team.sandbox,
            risk=spec.team.risk, secrets=spec.team.secrets, snapshot=guard_for(spec, self.emitter), replay=replay,
            backpressure=getattr(self.sink, "wait_for_room", None), knowledge=spec.knowledge_access(),
        ))
        if agent.subscriptions:
            for prefix in agent.subscriptions:
                self._spawn_bg(self.call(spec.session_id, BLACKBOARD, "subscribe", {"agent": str(agent.id), "prefix": prefix}),
                               spec.session_id)
        return core

    async def spawn_child(self, session_id: SessionId, child: AgentSpec, *, parent: AgentId) -> AgentId:
        held = self._held(session_id)
        if parent not in held.guests:
            raise UnknownAgentError(f"parent {parent!r} is not on this host", agent=parent)
        existing = held.guests.get(child.id)
        if isinstance(existing, AgentCore) and existing.restored and existing.parent == parent:
            return child.id  # the parent's turn is replayed after a crash: its child is back already
        if child.id in held.guests:
            raise TroupeError(f"an agent {child.id!r} already exists in this session; pick another name", agent=child.id)
        parent_core = held.guests[parent]
        profile = child.model or held.spec.team.profile_for(parent_core.spec)
        core = self._make_agent(held, child, parent=parent, profile=profile)
        held.guests[child.id] = core
        held.runners.append(core.start())
        core.emit(AgentSpawnedPayload(parent=parent, tools=child.tools, model=profile))
        if held.durable is not None:  # before its task can reach it: a restored host must know it
            held.durable.track(child.id, core)
            await held.durable.save(child.id)
        return child.id

    async def run_session(self, spec: SessionSpec, text: str, timeout: float | None = None) -> SessionResult:
        """Run a whole session here, start to finish, in one call: start it, send ``text`` to the
        entry agent, wait for the result (cancelling at ``timeout``), close it. What sweeps use:
        no client handle, no live events, one round trip per sample."""
        from troupe.runtime.agent.core import user_message

        sid = spec.session_id
        self.sessions[sid] = _Held(spec, closing_here=True)
        await self.start_session(spec, spec.all_names())
        try:
            first = await self.call(sid, SUPERVISOR, "start", {"input": text, "team": spec.team.name,
                                                               "placement": str(spec.placement)})
            if (env := self.sessions[sid].environment) is not None and (error := env.error):
                await self.call(sid, SUPERVISOR, "agent_failed", {"agent": "environment", "message": error,
                                                                  "error_type": "EnvironmentSetupError"})
            else:
                await self.deliver(sid, spec.team.entry, user_message(sid, spec.run_id, spec.team.entry, first or text, 1))
            try:
                return await self.call(sid, SUPERVISOR, "wait", {"timeout": timeout})
            except TimeoutError:
                await self.call(sid, SUPERVISOR, "cancel", {"reason": f"no result within {timeout}s"})
                return await self.call(sid, SUPERVISOR, "wait", {"timeout": 30})
            except asyncio.CancelledError:
                # The client stopped waiting (a sweep gave up on this sample): end it as cancelled,
                # so its events say why, before closing it stops the agents' work.
                await self.call(sid, SUPERVISOR, "cancel", {"reason": "the client stopped waiting"})
                raise
        finally:
            await self.drain(sid)
            await self.close_session(sid)

    async def close_session(self, session_id: SessionId) -> None:
        """Stop this host's logical actors of a session and release their resources."""
        held = self.sessions.pop(session_id, None)
        if held is None:
            return
        self.closed[session_id] = None
        if len(self.closed) > _REMEMBER_CLOSED:
            self.closed.popitem(last=False)
        for guest in held.guests.values():
            if isinstance(guest, AgentCore):
                guest.terminate()
        for task in held.runners:
            task.cancel()
        await asyncio.gather(*held.runners, return_exceptions=True)
        for llm in held.llms:  # one at a time: most close at once, and a task each would cost more
            with contextlib.suppress(Exception):
                await llm.aclose()
        if held.environment is not None:
            await held.environment.close()  # records a failed teardown, never raises one
        servers = held.spec.team.mcp_servers
        if held.opened and (session_registration(held.spec.team) is not None or session_scoped(servers, held.spec.team.agents)):
            with contextlib.suppress(Exception):
                await self.dispatcher.close_session(str(session_id))

    async def close(self) -> None:
        for sid in list(self.sessions):
            await self.close_session(sid)
        for task in list(self._background):
            task.cancel()
        await self.dispatcher.close()

    # --- routing ----------------------------------------------------------------------------
    def _held(self, session_id: SessionId) -> _Held:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise UnknownAgentError(f"session {session_id!r} has no actors on this host", session=session_id) from None

    def _local(self, session_id: SessionId, agent: AgentId) -> Any | None:
        held = self.sessions.get(session_id)
        return None if held is None else held.guests.get(agent)

    async def deliver(self, session_id: SessionId, agent: AgentId, envelope: Envelope) -> bool:
        """Deliver to one logical actor, wherever it lives."""
        if agent == USER:
            agent = SUPERVISOR
        guest = self._local(session_id, agent)
        if guest is None:
            if session_id in self.closed:
                return False  # a late message for a session that ended here (e.g. a TERMINATE in flight)
            if self.transport is None or self._is_child(session_id, agent):
                raise UnknownAgentError(f"no agent {agent!r} in session {session_id}", agent=agent)
            return await self.transport.deliver(session_id, agent, envelope)
        durable = self.sessions[session_id].durable
        if isinstance(guest, AgentCore):
            if envelope.is_control and envelope.data.get("op") == ControlOp.TERMINATE:
                self._terminate_children(session_id, agent)
            accepted = await stop_turn(self.sessions[session_id].guests, agent, envelope) if is_turn_cancel(envelope) else guest.deliver(envelope)
            if durable is not None and envelope.is_control:
                await durable.save(agent)  # a state change (paused, terminated): the whole agent
            elif durable is not None and accepted:
                await durable.receive(agent, envelope)  # acknowledged only once its inbox holds it
            return accepted
        if isinstance(guest, Supervisor):
            accepted = await guest.deliver(envelope)
            if durable is not None:
                await durable.save(agent)
            return accepted
        raise UnknownAgentError(f"{agent!r} is a service and takes calls, not messages", agent=agent)

    def _is_child(self, session_id: SessionId, agent: AgentId) -> bool:
        """A child whose root is here but which is gone: don't look for it elsewhere."""
        return "." in agent and self._local(session_id, root_of(agent)) is not None

    def _terminate_children(self, session_id: SessionId, agent: AgentId) -> None:
        held = self.sessions.get(session_id)
        if held is None:
            return
        for gid, guest in held.guests.items():
            if gid.startswith(f"{agent}.") and isinstance(guest, AgentCore):
                guest.terminate()

    async def send(self, envelope: Envelope) -> None:
        """Route a message: to its recipient, or to every member of its topic."""
        if envelope.topic is not None:
            held = self._held(envelope.session_id)
            targets = [a.id for a in held.spec.team.agents if envelope.topic in a.groups and a.id != envelope.sender]
            await asyncio.gather(*(self.deliver(envelope.session_id, t, envelope.to(t)) for t in targets))
            return
        if envelope.recipient is None:
            raise UnknownAgentError("a message needs a recipient or a topic", message_id=envelope.id)
        await self.deliver(envelope.session_id, envelope.recipient, envelope)

    async def call(self, session_id: SessionId, target: AgentId, method: str, kwargs: dict[str, Any]) -> Any:
        """Call a method of a logical actor, wherever it lives."""
        guest = self._local(session_id, target)
        if guest is None:
            if session_id in self.closed:
                raise UnknownAgentError(f"session {session_id} is closed", agent=target, session=session_id)
            if self.transport is None:
                raise UnknownAgentError(f"no actor {target!r} in session {session_id}", agent=target)
            return await self.transport.call(session_id, target, method, kwargs)
        allowed = SERVICE_METHODS.get(target, AGENT_METHODS)
        if method not in allowed:
            raise UnknownAgentError(f"{target!r} has no method {method!r}; it offers {sorted(allowed)}", agent=target)
        request_id = kwargs.pop(REQUEST_ID, None) if REQUEST_ID in kwargs else None
        with turn_scope(kwargs.pop(TURN_KWARG, None)):  # the caller's turn: on the events of what it asked
            return await self._call_local(session_id, target, guest, method, kwargs, request_id)

    async def _call_local(self, session_id: SessionId, target: AgentId, guest: Any, method: str,
                          kwargs: dict[str, Any], request_id: Any) -> Any:
        durable = self.sessions[session_id].durable
        mutating = durable is not None and method in MUTATING.get(target, ())
        if mutating and request_id is not None:
            assert durable is not None
            seen, answer = durable.answered(target, request_id)
            if seen:
                return answer  # a re-send (after a restart, or from a replayed turn): applied once
        if not mutating:
            result = getattr(guest, method)(**kwargs)
            if inspect.isawaitable(result):
                result = await result
            if durable is not None and target in SERVICES:
                await durable.settled(target)  # a read never reports a change a crash could still undo
            return result
        assert durable is not None
        try:
            result = getattr(guest, method)(**kwargs)
            if inspect.isawaitable(result):
                result = await result
            if request_id is not None:
                durable.remember(target, request_id, result)
        finally:
            await durable.save(target)  # acknowledged only once the service's checkpoint holds it
            for envelope in durable.releasable():  # its notices go out once the change they tell of is durable
                self._spawn_bg(self._deliver_quietly(envelope), session_id)
        return result

    async def _deliver_quietly(self, envelope: Envelope) -> None:
        try:
            await self.send(envelope)
        except UnknownAgentError:
            pass  # the recipient is gone (a finished child); the notice has nobody to inform
        held = self.sessions.get(envelope.session_id)
        if held is not None and held.durable is not None:
            held.durable.sent(envelope.sender, envelope)

    def _spawn_bg(self, coro: Any, session_id: SessionId | None = None) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background[task] = session_id
        task.add_done_callback(lambda t: self._background.pop(t, None))

    async def drain(self, session_id: SessionId | None = None) -> None:
        """Wait for queued background deliveries: a session's own, or (no id) every one."""
        while pending := [t for t, sid in self._background.items() if session_id is None or sid == session_id]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def probe_send(self, session_id: SessionId, sender: AgentId, recipient: AgentId, n: int,
                         *, window: int = 100) -> float:
        """Deliver ``n`` messages from ``sender`` to ``recipient`` through normal routing; returns seconds.

        A diagnostic (like ``ray microbenchmark``): pause the recipient first, or each message starts a turn.
        """
        envelopes = [Envelope(session_id=session_id, sender=sender, recipient=recipient, content=f"probe {i}")
                     for i in range(n)]
        started = time.perf_counter()
        for i in range(0, n, window):
            await asyncio.gather(*(self.send(e) for e in envelopes[i:i + window]))
        return time.perf_counter() - started

    def describe(self) -> dict[str, Any]:
        return {
            str(sid): {str(gid): (g.describe() if hasattr(g, "describe") else type(g).__name__) for gid, g in held.guests.items()}
            for sid, held in self.sessions.items()
        }


__all__ = ["HostCore"]
