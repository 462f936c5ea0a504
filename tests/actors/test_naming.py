"""Actor names a person can read in the dashboard: the session and agent, or troupe and the role."""

from __future__ import annotations

from troupe.actors.naming import (
    LLM_WORKER,
    MCP_NODE,
    TOOL_WORKER,
    dedicated_name,
    event_log_name,
    lake_tag,
    local_model_name,
    node_actor_name,
    node_scope,
    pool_host_name,
    scheduler_name,
)
from troupe.runtime.ids import AgentId, SessionId

LAKE, JOB, NODE = "/data/lake", "01000000", "80a7c610a5fd0123456789"


def test_dedicated_actors_are_named_for_their_session_and_agent() -> None:
    assert dedicated_name(SessionId("s-0123456789abcdef"), AgentId("lead")) == "s-0123456789abcdef/lead"


def test_runtime_actors_say_troupe_and_their_role() -> None:
    tag = lake_tag(LAKE)
    assert event_log_name(LAKE, JOB) == f"troupe-eventlog-{tag}-{JOB}"
    assert scheduler_name(LAKE, JOB) == f"troupe-scheduler-{tag}-{JOB}"
    assert pool_host_name(LAKE, JOB, 3) == f"troupe-pool-{tag}-{JOB}-3"
    scope = node_scope(LAKE, JOB)
    assert node_actor_name(scope, TOOL_WORKER, NODE) == f"troupe-tools-{tag}-{JOB}-{NODE[:12]}"
    assert node_actor_name(scope, MCP_NODE, NODE) == f"troupe-mcp-{tag}-{JOB}-{NODE[:12]}"
    assert node_actor_name(scope, LLM_WORKER, NODE) == f"troupe-llm-{tag}-{JOB}-{NODE[:12]}"
    # The scope the backend passes (``tools-<tag>-<job>``) names the same actors.
    assert node_actor_name(f"tools-{scope}", LLM_WORKER, NODE) == node_actor_name(scope, LLM_WORKER, NODE)
    assert local_model_name(NODE, "qwen").startswith(f"troupe-local-llm-{NODE[:12]}-")
