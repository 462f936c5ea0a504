"""The Ray services an LLM client may lean on, installed into a worker's LLM layer at start-up.

Each Troupe actor that builds model clients (hosts, LLM workers, MCP node actors) calls
:func:`install_ray_llm_edge` in its constructor: from then on an endpoint's rate limit is one
named actor for the whole cluster, and the ``local`` provider uses the node's shared model server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from troupe.runtime.config import RateLimit
from troupe.runtime.llm.edge import LLMEdge, install_edge
from troupe.runtime.llm.ratelimit import Limiter


def _shared_limiter(base_url: str, limit: RateLimit, fallback: Callable[[], Limiter]) -> Limiter:
    from troupe.actors.ratelimit_actor import ray_limiter

    return ray_limiter(base_url, limit, fallback=fallback)


async def _local_endpoint(key: str, server_options: dict[str, Any]) -> str:
    from troupe.actors.local_model_actor import get_node_server

    handle = get_node_server(key, server_options=server_options)
    return await handle.endpoint.remote(key)


RAY_LLM_EDGE = LLMEdge(shared_limiter=_shared_limiter, local_endpoint=_local_endpoint)


def install_ray_llm_edge() -> None:
    install_edge(RAY_LLM_EDGE)


__all__ = ["RAY_LLM_EDGE", "install_ray_llm_edge"]
