"""Every Ray actor and task option Troupe uses, in one place.

Which actors take a CPU slot, which are restarted after a crash and whether the calls in flight
are sent again, which are pinned to a node, which outlive their creator: each builder below says
why. Names are in :mod:`troupe.actors.naming`.
"""

from __future__ import annotations

from typing import Any

import ray

from troupe.actors.naming import LLM_WORKER, NAMESPACE
from troupe.runtime.agent.scheduler import ToolJob
from troupe.tools.spec import RAY_RESOURCE_KEYS

HOST_MAX_CONCURRENCY = 10_000
"""Async host actors serve many logical actors; each waiting call (a long task_wait) holds a slot."""
SPREAD_OVER_NODES: dict[str, Any] = {"scheduling_strategy": "SPREAD", "memory": 1}
"""Where host actors go: round the cluster's nodes, so pool hosts and a session's agents are spread
evenly, and one whose node is lost is restarted on a node left. Ray places an actor that asks for no
resource at all (a host takes no CPU slot) on a random node whatever its scheduling strategy (its
GCS hands it to a random node's raylet): a pool of five on three nodes measured 3/1/1, 3/2/0,
2/0/3 ..., and ``SPREAD`` or soft node affinity alone did no better. One byte of ``memory`` (a
resource every node has) lets Ray's spread policy place it: round robin, 2/2/1."""
EVENT_LOG_MAX_CONCURRENCY = 1_000
"""Concurrent calls the event log serves: long-poll readers (and appends waiting on back-pressure)
each hold one while they wait."""


def actor_class(cls: type, options: dict[str, Any]) -> Any:
    """``ray.remote(cls).options(**options)``, ready for ``.remote(...)`` (typed ``Any``: Ray's stubs make
    it a handle-or-class union; what ``.remote`` returns is an ``ActorHandle``)."""
    return ray.remote(cls).options(**options)


def host_options(name: str, *, get_if_exists: bool = False, restartable: bool = False,
                 resend: bool = False, spread: bool = False) -> dict[str, Any]:
    """Options for a host actor: it waits on I/O, so it takes no CPU slot. A ``restartable`` one is
    restarted by Ray after a crash; with ``resend`` the calls that were in flight to it are sent again
    to the new instance (a dedicated host of a checkpointed session, which restores its logical actor
    first). A pool host is restarted without re-sending: the sweep samples it held fail with the
    reason (running them again is the sweep's decision), and later ones find it back. A ``spread``
    one goes round the cluster's nodes (:data:`SPREAD_OVER_NODES`)."""
    return {**(SPREAD_OVER_NODES if spread else {}),
        "name": name,
        "namespace": NAMESPACE,
        "num_cpus": 0,
        "max_concurrency": HOST_MAX_CONCURRENCY,
        "get_if_exists": get_if_exists,
        "max_restarts": -1 if restartable else 0,
        "max_task_retries": -1 if resend else 0,
    }


def rate_limit_options(name: str) -> dict[str, Any]:
    """Async, no CPU slot, found by name if it exists (first caller's limit wins)."""
    return host_options(name, get_if_exists=True)


def scheduler_options(name: str) -> dict[str, Any]:
    """Restarted after a crash, with the calls in flight sent again: a call whose result a durable
    session recorded is answered from the record (:class:`troupe.runtime.agent.scheduler.ToolJob`), not run twice."""
    return {"name": name, "namespace": NAMESPACE, "num_cpus": 0, "max_concurrency": 100_000, "get_if_exists": True,
            "max_restarts": -1, "max_task_retries": -1}


def event_log_options(name: str, namespace: str = NAMESPACE,
                      max_concurrency: int = EVENT_LOG_MAX_CONCURRENCY) -> dict[str, Any]:
    """The event log: async, no CPU slot, found by name if it exists; restarted after a crash with
    the appends in flight sent again (its write-ahead log makes a re-sent batch apply once)."""
    return {"name": name, "namespace": namespace, "get_if_exists": True, "num_cpus": 0,
            "max_concurrency": max_concurrency, "max_restarts": -1, "max_task_retries": -1}


def node_actor_options(name: str, node_id: str) -> dict[str, Any]:
    """Pinned to its node (it serves the agents there), async, no CPU slot. Restarted after a crash;
    only the LLM worker's calls are sent again (a model call has no side effects), while a tool call
    in flight on a dying tool or MCP worker fails with an error the model reads (it may have had its
    effect: running it again is the tool's retry policy's decision, not the transport's)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {
        "name": name,
        "namespace": NAMESPACE,
        "num_cpus": 0,
        "max_concurrency": HOST_MAX_CONCURRENCY,
        "get_if_exists": True,
        "max_restarts": -1,
        "max_task_retries": -1 if name.startswith(f"troupe-{LLM_WORKER}-") else 0,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
    }


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


def task_options(job: ToolJob) -> dict[str, Any]:
    """Ray options for a ``cpu`` call: its declared resources (1 CPU unless it says otherwise)."""
    res = job.resources
    custom = {k: v for k, v in res.items() if k not in RAY_RESOURCE_KEYS}
    options: dict[str, Any] = {"name": f"tool:{job.tool}", "num_cpus": res.get("num_cpus", 1), "max_retries": 0}
    if "num_gpus" in res:
        options["num_gpus"] = res["num_gpus"]
    if "memory" in res:
        options["memory"] = res["memory"]
    if custom:
        options["resources"] = custom
    return options



def knowledge_task_options(name: str) -> dict[str, Any]:
    """A knowledge ingestion batch (read, chunk, embed some files): one CPU, spread over the nodes, retried
    once if its worker dies (it has no side effect: it returns its chunks)."""
    return {"name": f"knowledge:{name}", "num_cpus": 1, "max_retries": 1, "scheduling_strategy": "SPREAD"}


__all__ = ["EVENT_LOG_MAX_CONCURRENCY", "HOST_MAX_CONCURRENCY", "SPREAD_OVER_NODES", "actor_class", "event_log_options", "host_options",
           "knowledge_task_options", "local_model_options", "node_actor_options", "rate_limit_options", "scheduler_options", "task_options"]
