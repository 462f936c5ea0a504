"""The same FastAPI app deployed with Ray Serve (``serve.ingress``), and the session directory every
replica shares (a named Ray actor).

    serve run troupe.runtime.server.deploy:app          # settings from $TROUPE_SERVE_CONFIG / $TROUPE_SERVE_*
    troupe serve [--address ...] [--num-replicas N]     # the same, started (or attached) by the CLI

Ray code outside ``troupe.actors``: this module is allowed in ``RAY_EDGE`` (tests/test_layers.py)
because a Serve deployment is an interface binding, built over the interface layer's app.
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray import serve

from troupe.runtime.server.app import build_app
from troupe.runtime.server.models import SessionInfo
from troupe.runtime.server.settings import ServerSettings, settings_from_json_env

NAMESPACE = "troupe"


@ray.remote(num_cpus=0)
class DirectoryActor:
    """Session id -> SessionInfo as JSON (owner, team, status, result): small, one per app."""

    def __init__(self) -> None:
        self._infos: dict[str, str] = {}

    def put(self, session_id: str, info: str) -> None:
        self._infos[session_id] = info

    def get(self, session_id: str) -> str | None:
        return self._infos.get(session_id)

    def all(self) -> list[str]:
        return list(self._infos.values())


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
