"""What the Ray edge lends the LLM layer: an endpoint's shared rate limiter and a node's local model.

The LLM clients are plain Python and never import Ray. In a Ray worker, the actors that build
clients install an :class:`LLMEdge` at start-up (:func:`install_edge`, from ``troupe.actors``), so a
rate limit holds across the cluster and every agent of a node shares one local model server. With
nothing installed (a driver, a notebook, ``Troupe.local``, a test), each process keeps its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from troupe.runtime.config import RateLimit
    from troupe.runtime.llm.ratelimit import Limiter

SharedLimiter = Callable[[str, "RateLimit", Callable[[], "Limiter"]], "Limiter"]
"""``(base_url, limit, fallback) -> limiter`` shared by every process of the cluster."""
LocalEndpoint = Callable[[str, dict[str, Any]], Awaitable[str]]
"""``(model key, server options) -> base URL`` of the node's running local model server."""


@dataclass(frozen=True)
class LLMEdge:
    """The services a Ray worker lends its LLM clients (``None``: this process's own)."""

    shared_limiter: SharedLimiter | None = None
    local_endpoint: LocalEndpoint | None = None


_current = LLMEdge()


def install_edge(edge: LLMEdge) -> None:
    """Use ``edge`` for the clients this process builds from now on."""
    global _current
    _current = edge


def current_edge() -> LLMEdge:
    return _current


__all__ = ["LLMEdge", "LocalEndpoint", "SharedLimiter", "current_edge", "install_edge"]
