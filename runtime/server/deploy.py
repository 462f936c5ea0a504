"""The same FastAPI app deployed with Ray Serve (``serve.ingress``), and the session directory every
replica shares (a named Ray actor).

    serve run troupe.runtime.server.deploy:app          # settings from $TROUPE_SERVE_CONFIG / $TROUPE_SERVE_*
    troupe serve [--address ...] [--num-replicas N]     # the same, started (or attached) by the CLI

Ray code outside ``troupe.actors``: this module is allowed in ``RAY_EDGE`` (tests/test_layers.py)
because a Serve deployment is an interface binding, built over the interface layer's app.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
from ray import serve
from ray.exceptions import RayError

from troupe.runtime.server.app import build_app
from troupe.runtime.server.forward import ForwardedOp, ForwardQueue, ForwardStats, OpOutcome, refusal
from troupe.runtime.server.models import SessionInfo
from troupe.runtime.server.settings import ServerSettings, settings_from_json_env

NAMESPACE = "troupe"
DIRECTORY_GRACE_S = 10.0
"""How much longer than an operation's own timeout a replica waits for the directory actor's answer."""


@ray.remote(num_cpus=0)
class DirectoryActor:
    """Session id -> SessionInfo as JSON (owner, team, status, result): small, one per app; and the channel
    that forwards operations to the replica holding a session (a :class:`ForwardQueue`; async methods, so a
    holder's long poll and a replica awaiting an answer wait together)."""

    def __init__(self) -> None:
        self._infos: dict[str, str] = {}
        self._forward = ForwardQueue()

    async def put(self, session_id: str, info: str) -> None:
        self._infos[session_id] = info

    async def get(self, session_id: str) -> str | None:
        return self._infos.get(session_id)

    async def all(self) -> list[str]:
        return list(self._infos.values())

    async def register(self, holder: str) -> None:
        self._forward.register(holder)

    async def unregister(self, holder: str) -> None:
        self._forward.unregister(holder)

    async def hold(self, holder: str, session_id: str) -> None:
        self._forward.hold(holder, session_id)

    async def release(self, holder: str, session_id: str) -> None:
        self._forward.release(holder, session_id)

    async def submit(self, op: str, timeout_s: float) -> str:
        out = await self._forward.submit(ForwardedOp.model_validate_json(op), timeout_s)
        return out.model_dump_json()

    async def poll(self, holder: str, wait_s: float) -> list[str]:
        return [op.model_dump_json() for op in await self._forward.poll(holder, wait_s)]

    async def complete(self, op_id: str, outcome: str) -> bool:
        return self._forward.complete(op_id, OpOutcome.model_validate_json(outcome))

    async def forward_stats(self) -> str:
        return self._forward.snapshot().model_dump_json()


def directory_actor(name: str) -> Any:
    return DirectoryActor.options(name=name, namespace=NAMESPACE, get_if_exists=True,  # type: ignore[attr-defined]
                                  lifetime="detached").remote()


class RayDirectory:
    """:class:`troupe.runtime.server.state.Directory` over the named actor."""

    def __init__(self, name: str) -> None:
        self.actor = directory_actor(name)

    async def put(self, info: SessionInfo) -> None:
        await self.actor.put.remote(info.id, info.model_copy(update={"live": False}).model_dump_json())

    async def get(self, session_id: str) -> SessionInfo | None:
        raw = await self.actor.get.remote(session_id)
        return SessionInfo.model_validate_json(raw) if raw else None

    async def all(self) -> list[SessionInfo]:
        return [SessionInfo.model_validate_json(r) for r in await self.actor.all.remote()]

    async def register(self, holder: str) -> None:
        await self.actor.register.remote(holder)

    async def unregister(self, holder: str) -> None:
        await self.actor.unregister.remote(holder)

    async def hold(self, holder: str, session_id: str) -> None:
        await self.actor.hold.remote(holder, session_id)

    async def release(self, holder: str, session_id: str) -> None:
        await self.actor.release.remote(holder, session_id)

    async def submit(self, op: ForwardedOp, timeout_s: float) -> OpOutcome:
        try:  # the actor answers within timeout_s; this bounds a directory that cannot be reached
            raw = await asyncio.wait_for(self._ref(self.actor.submit.remote(op.model_dump_json(), timeout_s)),
                                         timeout_s + DIRECTORY_GRACE_S)
        except (TimeoutError, RayError) as e:
            return refusal(504, f"the session directory did not forward {op.op!r} to session {op.session_id}'s "
                                "server process", f"{type(e).__name__}: {e}; retry")
        return OpOutcome.model_validate_json(raw)

    async def poll(self, holder: str, wait_s: float) -> list[ForwardedOp]:
        return [ForwardedOp.model_validate_json(r) for r in await self.actor.poll.remote(holder, wait_s)]

    async def complete(self, op_id: str, outcome: OpOutcome) -> None:
        await self.actor.complete.remote(op_id, outcome.model_dump_json())

    async def forward_stats(self) -> ForwardStats:
        return ForwardStats.model_validate_json(await self.actor.forward_stats.remote())

    @staticmethod
    async def _ref(ref: Any) -> Any:
        return await ref


def directory_name(settings: ServerSettings) -> str:
    return settings.registry or f"troupe-server-directory-{settings.app_name}"


def build_deployment(settings: ServerSettings) -> Any:
    """A Serve application of the API: ``num_replicas`` (or ``autoscaling``) replicas, each holding the
    sessions it created; the directory of owners and statuses is shared.

    Each replica builds its own app (``__serve_build_asgi_app__``, after ``__init__`` started its
    runtime): an app given to ``serve.ingress`` would be pickled at decoration time, and the replica
    would then serve a copy whose runtime was never started."""
    scale: dict[str, Any] = ({"autoscaling_config": settings.autoscaling} if settings.autoscaling
                             else {"num_replicas": settings.num_replicas})

    @serve.deployment(name=settings.app_name, ray_actor_options={"num_cpus": settings.replica_cpus}, **scale)
    @serve.ingress()
    class TroupeServer:
        async def __init__(self) -> None:  # type: ignore[misc]  # Serve awaits an async constructor
            self.api = build_app(settings, directory=RayDirectory(directory_name(settings)), manage_runtime=False)
            await self.api.state.server.start()

        def __serve_build_asgi_app__(self) -> Any:
            return self.api

        async def __del__(self) -> None:
            await self.api.state.server.shutdown()

    return TroupeServer.bind()  # type: ignore[attr-defined]


def _settings() -> ServerSettings:
    return settings_from_json_env() or ServerSettings.from_env()


app = build_deployment(_settings())
"""What ``serve run troupe.runtime.server.deploy:app`` deploys."""


def remove_directory(settings: ServerSettings) -> None:
    """Kill the shared directory actor (``troupe serve`` does it when it stops)."""
    try:
        ray.kill(ray.get_actor(directory_name(settings), namespace=NAMESPACE))
    except ValueError:
        pass


def serve_forever(settings: ServerSettings) -> int:
    """``troupe serve`` without ``--local``: start (or attach) Ray, deploy, wait for Ctrl-C, remove it."""
    import sys
    import time

    ray.init(address=settings.address, namespace="troupe", ignore_reinit_error=True, logging_level=logging.WARNING)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_deployment(settings), name=settings.app_name, route_prefix=settings.route_prefix)
    print(f"troupe serve: http://{settings.host}:{settings.port}/api/v1 (Ray Serve app {settings.app_name!r}, "
          f"{settings.num_replicas} replica(s)); Ctrl-C stops it", file=sys.stderr)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        serve.delete(settings.app_name)
        remove_directory(settings)
    return 0


__all__ = ["DirectoryActor", "RayDirectory", "app", "build_deployment", "directory_name", "remove_directory",
           "serve_forever"]
