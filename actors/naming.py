"""Every Ray actor name Troupe uses, in one place (their options are in :mod:`troupe.actors.options`).

Names are what a person sees in the Ray dashboard's actor list and in ``ray list actors``, so each
says what the actor is: a dedicated logical actor is ``<session>/<agent>`` (``s-1a2b.../lead``);
the runtime's own actors start with ``troupe-`` and their role, then the lake tag and job that
scope them (two drivers, or two lakes, never share one)::

    troupe-eventlog-<lake tag>-<job>            the event log (writes the lake)
    troupe-scheduler-<lake tag>-<job>           the tool scheduler (cluster-wide caps)
    troupe-pool-<lake tag>-<job>-<i>            a pool host (packed sessions, many at once)
    troupe-tools-<lake tag>-<job>-<node>        a node's I/O tool worker
    troupe-mcp-<lake tag>-<job>-<node>          a node's MCP connections
    troupe-llm-<lake tag>-<job>-<node>          a node's LLM worker (``llm:<agent>`` tasks)
    troupe-local-llm-<node>-<model hash>        a node's embedded model server (detached)

Ray task names say what ran: ``tool:<name>`` for a tool call that runs outside its agent's host,
``llm:<agent>`` for a call to a network-backed model.
"""

from __future__ import annotations

import hashlib

from troupe.runtime.ids import RAY_NAMESPACE, Address, AgentId, SessionId

NAMESPACE = RAY_NAMESPACE


def lake_tag(lake: str) -> str:
    """A short, stable tag of a lake path, so two runtimes writing different lakes don't share actors."""
    return hashlib.sha1(lake.encode()).hexdigest()[:8]


def event_log_name(lake: str, job: str) -> str:
    """One event log per driver (job) and lake: actors die with the job that owns them, so two
    drivers writing one lake must not share one (their files never collide: names are unique)."""
    return f"troupe-eventlog-{lake_tag(lake)}-{job}"


def dedicated_name(session_id: SessionId, agent: AgentId) -> str:
    """A dedicated logical actor's Ray actor name: ``<session>/<agent>`` (visible in the dashboard)."""
    return str(Address(session_id, agent))


def pool_host_name(lake: str, job: str, index: int) -> str:
    """A pool host (it holds whole packed sessions, many at once): ``troupe-pool-<lake tag>-<job>-<i>``."""
    return f"troupe-pool-{lake_tag(lake)}-{job}-{index}"


def scheduler_name(lake: str, job: str) -> str:
    """The runtime's tool scheduler (one per driver and lake, like the event log)."""
    return f"troupe-scheduler-{lake_tag(lake)}-{job}"


def node_scope(lake: str, job: str) -> str:
    """What a runtime's per-node actors are scoped by: ``<lake tag>-<job>``."""
    return f"{lake_tag(lake)}-{job}"


TOOL_WORKER = "tools"
MCP_NODE = "mcp"
LLM_WORKER = "llm"


def node_actor_name(scope: str, kind: str, node_id: str) -> str:
    """A scheduler's per-node helper: ``troupe-<kind>-<scope>-<node id[:12]>``, ``kind`` one of
    :data:`TOOL_WORKER`, :data:`MCP_NODE`, :data:`LLM_WORKER`; ``scope`` is :func:`node_scope`
    (a legacy ``tools-<scope>`` prefix is accepted)."""
    scope = scope.removeprefix("troupe-").removeprefix("tools-")
    return f"troupe-{kind}-{scope}-{node_id[:12]}"


LOCAL_MODEL_PREFIX = "troupe-local-llm-"


def local_model_name(node_id: str, model_key: str) -> str:
    """The per-node local model server actor: ``troupe-local-llm-<node id[:12]>-<model hash>``."""
    return f"{LOCAL_MODEL_PREFIX}{node_id[:12]}-{hashlib.sha1(model_key.encode()).hexdigest()[:8]}"


__all__ = [
    "LLM_WORKER",
    "LOCAL_MODEL_PREFIX",
    "MCP_NODE",
    "NAMESPACE",
    "TOOL_WORKER",
    "dedicated_name",
    "event_log_name",
    "lake_tag",
    "local_model_name",
    "node_actor_name",
    "node_scope",
    "pool_host_name",
    "scheduler_name",
]
