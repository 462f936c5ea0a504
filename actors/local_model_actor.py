"""One local model server per Ray node, shared by every agent on that node.

:class:`LocalModelActor` is a thin async shell over :class:`~troupe.runtime.llm.local.server.LocalServer`:
the first :meth:`~LocalModelActor.endpoint` call assembles the model if needed and starts the
server process; later calls return its URL at once. :func:`get_node_server` finds or creates the
actor for the caller's node and model (named ``local-llm-<node>-<model hash>``, pinned to the node,
no CPU slot). The server process is the actor's child with ``PR_SET_PDEATHSIG``: if the actor
process dies (crash, ``ray.kill``, node loss) the server goes with it.

The actor is detached (it serves agents of many sessions and must not die with whichever worker
happened to create it): :func:`stop_node_servers` is the way to release them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

import ray

from troupe.actors.naming import LOCAL_MODEL_PREFIX, NAMESPACE, local_model_name
from troupe.actors.options import actor_class, local_model_options
from troupe.runtime.errors import ConfigError
from troupe.runtime.llm.local.server import LocalServer
from troupe.runtime.llm.local.weights import model_key


class LocalModelActor:
    def __init__(self, model: str, server_options: dict[str, Any] | None = None) -> None:
        self.model = model_key(model)
        self._server = LocalServer(model, **(server_options or {}))
        self._lock = asyncio.Lock()

    async def endpoint(self, model: str | None = None) -> str:
        """The server's base URL (``http://127.0.0.1:PORT``; the OpenAI API is under ``/v1``),
        starting it on first call (or again, if it died)."""
        if model is not None and model_key(model) != self.model:
            raise ConfigError(f"this local model actor serves {self.model!r}, not {model_key(model)!r}", model=model)
        async with self._lock:
            if not self._server.running() or self._server.base_url is None:
                # Blocking (assembly on first use, then the model load): keep the actor responsive.
                await asyncio.to_thread(self._server.start)
            assert self._server.base_url is not None
            return self._server.base_url

    async def stop(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._server.stop)

    async def describe(self) -> dict[str, Any]:
        return {**self._server.describe(), "actor_pid": os.getpid(), "running": self._server.running()}


def get_node_server(model_name_or_path: str | None, *, server_options: dict[str, Any] | None = None) -> Any:
    """The handle of this node's local model actor for ``model_name_or_path`` (created if absent).

    Must be called where Ray is initialised; the actor lands on the caller's node.
    ``server_options`` (threads, parallel, ctx_size) only matter to the call that creates it.
    """
    key = model_key(model_name_or_path)
    node_id = ray.get_runtime_context().get_node_id()
    name = local_model_name(node_id, key)
    return actor_class(LocalModelActor, local_model_options(name, node_id)).remote(key, server_options)


async def stop_node_servers(*, timeout: float = 15.0) -> int:
    """Stop and kill every local model actor in Troupe's namespace (all nodes); returns how many."""
    names = [
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
        if a.get("namespace") == NAMESPACE and a["name"].startswith(LOCAL_MODEL_PREFIX)
    ]
    handles = []
    for name in names:
        with contextlib.suppress(ValueError):
            handles.append(ray.get_actor(name, namespace=NAMESPACE))
    if handles:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(h.stop.remote() for h in handles), return_exceptions=True), timeout
            )
    for h in handles:
        with contextlib.suppress(Exception):
            ray.kill(h, no_restart=True)
    return len(handles)


__all__ = ["LocalModelActor", "get_node_server", "stop_node_servers"]
