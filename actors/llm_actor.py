"""LLM calls as Ray actor tasks named ``llm:<agent>``, on one async worker actor per node.

A host runs its agents as coroutines; a model call made there would be invisible to Ray (no task,
no name in the dashboard's task table or in ``ray list tasks``). For the network-backed providers
(``openai`` and ``local``, whose work is waiting on HTTP) each call is instead a streaming actor
task on the node's :class:`LLMWorkerActor`::

    worker.complete.options(name="llm:<agent>", num_returns="streaming").remote(...)

which yields the streamed text deltas (in small lists, as they arrive) and then the
:class:`~troupe.runtime.llm.types.LLMResponse`. :class:`RemoteLLMClient` wraps that in the ordinary
:class:`~troupe.runtime.llm.types.LLMClient` protocol, so agents are unchanged; cancelling the turn
cancels the task (``ray.cancel`` on the generator), which cancels the HTTP request on the worker.

The worker keeps one real client per distinct profile (with its fallbacks), shared by every agent
on the node, so connections are pooled across sessions. It is created and owned by the runtime's
scheduler actor (``troupe-llm-<lake tag>-<job>-<node>``, pinned to its node like the tool workers)
and released with it. Deterministic in-process stand-ins (``scripted``, ``function``) and any
other registered provider stay in the host: there is nothing to wait on, and no hop to pay.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayTaskError

from troupe.actors.llm_edge import install_ray_llm_edge
from troupe.actors.naming import NAMESPACE
from troupe.actors.transport import unwrap
from troupe.runtime.clock import SYSTEM_CLOCK
from troupe.runtime.config import ModelProfile
from troupe.runtime.errors import ProviderError
from troupe.runtime.llm.factory import ProviderContext, openai_fallbacks
from troupe.runtime.llm.registry import build_client
from troupe.runtime.llm.types import LLMClient, LLMRequest, LLMResponse, TokenCallback

REMOTE_PROVIDERS: Final = frozenset({"openai", "local"})
"""Providers whose calls run on the node's LLM worker (as ``llm:<agent>`` tasks)."""
MAX_CLIENTS: Final = 256
"""Distinct profiles a worker keeps a client for (least recently used dropped first)."""


def llm_task_name(agent: str) -> str:
    return f"llm:{agent}"


# --- the worker ------------------------------------------------------------------------------
class LLMWorkerActor:
    """Runs network-backed LLM calls for every agent on its node (async: they wait on HTTP)."""

    def __init__(self) -> None:
        install_ray_llm_edge()
        self._clients: OrderedDict[str, LLMClient] = OrderedDict()
        self.calls = 0
        self.in_flight = 0

    def _client(self, key: str, profile_name: str, profiles_json: str, agent: str) -> LLMClient:
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        profiles = {name: ModelProfile.model_validate(p) for name, p in json.loads(profiles_json).items()}
        client = build_client(profile_name, profiles, agent=agent)
        self._clients[key] = client
        while len(self._clients) > MAX_CLIENTS:
            # Not closed: a call in flight may still use it; its connections go with it.
            self._clients.popitem(last=False)
        return client

    async def complete(self, key: str, profile_name: str, profiles_json: str, agent: str, request: LLMRequest,
                       stream: bool) -> AsyncIterator[list[str] | LLMResponse]:
        """Yields lists of text deltas (only when ``stream``), then the response."""
        client = self._client(key, profile_name, profiles_json, agent)
        self.calls += 1
        self.in_flight += 1
        try:
            async for item in self._complete(client, request, stream):
                yield item
        finally:
            self.in_flight -= 1

    @staticmethod
    async def _complete(client: LLMClient, request: LLMRequest, stream: bool) -> AsyncIterator[list[str] | LLMResponse]:
        if not stream:
            yield await client.complete(request)
            return
        deltas: list[str] = []
        arrived = asyncio.Event()

        def on_token(delta: str) -> None:
            deltas.append(delta)
            arrived.set()

        call = asyncio.ensure_future(client.complete(request, on_token=on_token))
        try:
            while not call.done():
                waiter = asyncio.ensure_future(arrived.wait())
                try:
                    await asyncio.wait((call, waiter), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                arrived.clear()
                if deltas:
                    chunk, deltas[:] = list(deltas), []
                    yield chunk
            if deltas:
                yield list(deltas)
            yield call.result()
        finally:
            if not call.done():
                call.cancel()  # the caller cancelled the task (or went away): stop the request
                with contextlib.suppress(BaseException):
                    await call

    async def describe(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "clients": len(self._clients), "calls": self.calls, "in_flight": self.in_flight}

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)


# --- the host side ---------------------------------------------------------------------------
def _check_openai(ctx: ProviderContext) -> str:
    """What building an OpenAI client checks (endpoint allowed, key present, fallbacks valid), without
    building one: the host only forwards calls. Returns the model name."""
    from troupe.runtime.llm.openai_client import DEFAULT_BASE_URL, check_remote_allowed, resolve_api_key

    for name, profile in [(ctx.profile_name, ctx.profile), *openai_fallbacks(ctx)]:
        # As OpenAIChatClient picks it.
        check_remote_allowed(name, profile.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
        resolve_api_key(name, profile)  # also registers the key for redaction in this process
    return ctx.profile.model


def _check_local(ctx: ProviderContext) -> str:
    from troupe.runtime.llm.local.provider import build_local_client

    return build_local_client(ctx).model_name  # checks the extra and the weights; starts nothing


class RemoteLLMFactory:
    """A host's ``llm_factory``: clients for network providers call the node's LLM worker;
    everything else is built in-process by ``local`` (default :func:`troupe.runtime.llm.registry.build_client`).

    Config mistakes (unknown profile, missing key, a blocked endpoint) still raise when the agent
    is created, as :func:`~troupe.runtime.llm.registry.build_client` would.
    """

    def __init__(self, scheduler_name: str, node_id: str, *, local: Callable[..., LLMClient] = build_client) -> None:
        self.scheduler_name = scheduler_name
        self.node_id = node_id
        self.local = local
        self._worker: ActorHandle | None = None
        self._payloads: dict[tuple[str, int], tuple[Mapping[str, ModelProfile], str, str, str]] = {}

    def __call__(self, profile_name: str, profiles: Mapping[str, ModelProfile], *, agent: str,
                 **options: Any) -> LLMClient:
        profile = profiles.get(profile_name)
        if profile is None or profile.provider not in REMOTE_PROVIDERS or options:
            return self.local(profile_name, profiles, agent=agent, **options)
        model_name, payload, key = self._payload(profile_name, profile, profiles, agent)
        return RemoteLLMClient(self, agent=agent, profile_name=profile_name, model_name=model_name,
                               profiles_json=payload, key=key)

    def _payload(self, profile_name: str, profile: ModelProfile, profiles: Mapping[str, ModelProfile],
                 agent: str) -> tuple[str, str, str]:
        """Checked once per team's profiles (a sweep builds thousands of agents from one team)."""
        cache_key = (profile_name, id(profiles))
        hit = self._payloads.get(cache_key)
        if hit is not None and hit[0] is profiles:
            return hit[1], hit[2], hit[3]
        ctx = ProviderContext(profile_name, profile, profiles, agent, SYSTEM_CLOCK)
        model_name = _check_openai(ctx) if profile.provider == "openai" else _check_local(ctx)
        names = [profile_name, *(n for n in profile.fallbacks if n in profiles)]
        # Only the fields the team set: which ones were set matters (the local provider's defaults
        # for small models apply only where the profile says nothing).
        payload = json.dumps({n: profiles[n].model_dump(mode="json", exclude_unset=True) for n in names},
                             sort_keys=True)
        key = hashlib.sha1(f"{profile_name}\x1f{payload}".encode()).hexdigest()
        if len(self._payloads) >= 1024:
            self._payloads.clear()
        self._payloads[cache_key] = (profiles, model_name, payload, key)
        return model_name, payload, key

    async def worker(self) -> ActorHandle:
        """This node's LLM worker (the scheduler creates it on first ask and owns it)."""
        if self._worker is None:
            scheduler = ray.get_actor(self.scheduler_name, namespace=NAMESPACE)
            self._worker = await scheduler.llm_worker.remote(self.node_id)
        return self._worker


class RemoteLLMClient:
    """An :class:`~troupe.runtime.llm.types.LLMClient` whose calls are ``llm:<agent>`` tasks on the node's worker."""

    def __init__(self, factory: RemoteLLMFactory, *, agent: str, profile_name: str, model_name: str,
                 profiles_json: str, key: str) -> None:
        self._factory = factory
        self.agent = agent
        self.profile_name = profile_name
        self.model_name = model_name
        self._profiles_json = profiles_json
        self._key = key
        self.task_name = llm_task_name(agent)

    async def complete(self, request: LLMRequest, *, on_token: TokenCallback | None = None) -> LLMResponse:
        worker = await self._factory.worker()
        stream: Any = worker.complete.options(name=self.task_name, num_returns="streaming").remote(
            self._key, self.profile_name, self._profiles_json, self.agent, request, on_token is not None)
        response: LLMResponse | None = None
        try:
            async for ref in stream:
                item = await ref
                if isinstance(item, LLMResponse):
                    response = item
                elif on_token is not None:
                    for delta in item:
                        on_token(delta)
        except asyncio.CancelledError:
            ray.cancel(stream)  # the turn was cancelled: so is the model call, on the worker
            raise
        except RayTaskError as e:
            raise unwrap(e) from None
        if response is None:
            raise ProviderError(f"the LLM worker returned no response for {self.agent!r}", agent=self.agent)
        return response

    async def aclose(self) -> None:
        """Nothing to release here: the worker's clients are shared by the node's agents."""


__all__ = ["REMOTE_PROVIDERS", "LLMWorkerActor", "RemoteLLMClient", "RemoteLLMFactory", "llm_task_name"]
