"""Tools and a model for the multi-node tests, importable by path (``tests.support.multinode_tools:NAME``)
so Ray workers load them. Each returns the id of the Ray node it ran on."""

from __future__ import annotations

import time

from troupe.runtime.llm.types import LLMRequest
from troupe.tools.spec import tool


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


@tool(resources={"num_cpus": 0.5, "node_b": 1}, timeout_s=60)
def on_node_b() -> str:
    """Needs the ``node_b`` resource, which only one worker node has; returns the node it ran on."""
    return _node_id()


@tool(execution="cpu", timeout_s=60)
def busy_cpu(seconds: float) -> str:
    """Hold a CPU slot for a while (a compute-bound call); returns the node it ran on."""
    time.sleep(seconds)
    return _node_id()


async def node_model(request: LLMRequest, agent: str) -> str:
    """A model (``provider: function``) whose answer is the node its agent's host runs on."""
    return _node_id()


__all__ = ["busy_cpu", "node_model", "on_node_b"]
