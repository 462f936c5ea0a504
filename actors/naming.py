"""Every Ray actor name and option Troupe uses, in one place."""

from __future__ import annotations

import hashlib
from typing import Any

from runtime.ids import RAY_NAMESPACE, Address, AgentId, SessionId

NAMESPACE = RAY_NAMESPACE
HOST_MAX_CONCURRENCY = 10_000
"""Async host actors serve many logical actors; each waiting call (a long task_wait) holds a slot."""


def lake_tag(lake: str) -> str:
    """A short, stable tag of a lake path, so two runtimes writing different lakes don't share actors."""
    return hashlib.sha1(lake.encode()).hexdigest()[:8]


def event_log_name(lake: str, job: str) -> str:
    """One event log per driver (job) and lake: actors die with the job that owns them, so two
    drivers writing one lake must not share one (their files never collide: names are unique)."""
    return f"eventlog-{lake_tag(lake)}-{job}"


def dedicated_name(session_id: SessionId, agent: AgentId) -> str:
    """A dedicated logical actor's Ray actor name: ``<session>/<agent>`` (visible in the dashboard)."""
    return str(Address(session_id, agent))


def pool_host_name(lake: str, job: str, index: int) -> str:
    return f"host-{lake_tag(lake)}-{job}-{index}"


def host_options(name: str, *, get_if_exists: bool = False) -> dict[str, Any]:
    """Options for a host actor: it waits on I/O, so it takes no CPU slot."""
    return {
        "name": name,
        "namespace": NAMESPACE,
        "num_cpus": 0,
        "max_concurrency": HOST_MAX_CONCURRENCY,
        "get_if_exists": get_if_exists,
        "max_restarts": 0,
    }


def scheduler_name(lake: str, job: str) -> str:
    """The runtime's tool scheduler (one per driver and lake, like the event log)."""
    return f"scheduler-{lake_tag(lake)}-{job}"


def node_actor_name(prefix: str, kind: str, node_id: str) -> str:
    """A scheduler's per-node helper: ``<prefix>-io-<node>`` (tool worker), ``<prefix>-mcp-<node>``."""
    return f"{prefix}-{kind}-{node_id[:12]}"


def node_actor_options(name: str, node_id: str) -> dict[str, Any]:
    """Pinned to its node (it serves the agents there), async, no CPU slot."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {
        "name": name,
        "namespace": NAMESPACE,
        "num_cpus": 0,
        "max_concurrency": HOST_MAX_CONCURRENCY,
        "get_if_exists": True,
        "max_restarts": 0,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    }


LOCAL_MODEL_PREFIX = "local-llm-"


def local_model_name(node_id: str, model_key: str) -> str:
    """The per-node local model server actor: ``local-llm-<node id[:12]>-<model hash>``."""
    return f"{LOCAL_MODEL_PREFIX}{node_id[:12]}-{hashlib.sha1(model_key.encode()).hexdigest()[:8]}"


def local_model_options(name: str, node_id: str) -> dict[str, Any]:
    """Options for a node's local model actor: shared by every agent on the node (so detached: it
    outlives whichever worker created it), takes no CPU slot (the server process it owns uses the
    cores), and is pinned to ``node_id`` because the server is only reachable on that node's loopback."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {
        "name": name,
        "namespace": NAMESPACE,
        "num_cpus": 0,
        "get_if_exists": True,
        "lifetime": "detached",
        "max_restarts": 0,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    }


__all__ = [
    "HOST_MAX_CONCURRENCY",
    "LOCAL_MODEL_PREFIX",
    "NAMESPACE",
    "dedicated_name",
    "event_log_name",
    "host_options",
    "lake_tag",
    "local_model_name",
    "local_model_options",
    "node_actor_name",
    "node_actor_options",
    "pool_host_name",
    "scheduler_name",
]
