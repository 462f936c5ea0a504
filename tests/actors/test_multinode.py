"""Troupe on more than one node: a simulated cluster (``ray.cluster_utils.Cluster``) of a head and two
worker nodes, each with a custom resource that names it (``head``, ``node_a``, ``node_b``).

A tool that needs a node's resource runs there and nowhere else; ``cpu`` tool calls and a packed
sweep's pool hosts use more than one node; a worker node lost in the middle of a checkpointed
(dedicated) session leaves the session completing, with its hosts restarted on the nodes left.

The cluster is a Ray of its own for this file (tests/support/ray_cluster.py): these tests never use
the session-wide Ray fixture (``ray_session``, ``troupe_ray``), which is shut down while the cluster
runs and started again after it. The node-loss test goes last: it takes ``node_a`` away.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.actor import ActorHandle

from benchmarks.support.recovery_team import expected_reply, gaps, ledger_items, recovery_team, request_text
from tests.runtime.teams import call, team
from tests.support.eval_suites import write_suite
from tests.support.ray_cluster import SimCluster, simulated_cluster
from troupe.evals.results import results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.multinode]

TOOLS = "tests.support.multinode_tools"
FAST_HEALTH_CHECKS = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300,
                      "health_check_timeout_ms": 300, "health_check_failure_threshold": 3}
"""A node that stops answering is declared dead in about a second (Ray's default: ~15 s)."""


@pytest.fixture(scope="module")
def sim() -> Iterator[SimCluster]:
    with simulated_cluster(head_cpus=1, workers={"node_a": {"num_cpus": 2}, "node_b": {"num_cpus": 2}},
                           system_config=FAST_HEALTH_CHECKS) as cluster:
        yield cluster


@pytest.fixture
async def troupe_mn(sim: SimCluster, tmp_path: Path) -> AsyncIterator[Troupe]:
    troupe = await Troupe.connect(lake=tmp_path / "lake")
    try:
        yield troupe
    finally:
        await troupe.shutdown()


async def node_of(actor: ActorHandle) -> str:
    return await actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())


def tool_results(lake: str, session_id: str) -> list[dict[str, Any]]:
    sql = (f"select type, payload from events where session_id = '{session_id}' "
           "and type in ('tool.result', 'tool.error') order by json_extract_string(payload, '$.id')")
    return [{"type": r["type"], **json.loads(r["payload"])} for r in query(lake, sql).to_pylist()]


def lead_calls(tools: list[str], calls: list[dict[str, Any]]) -> Any:
    return team([{"id": "lead", "tools": [f"{TOOLS}:{t}" for t in tools], "permissions": {"level": "L2"}}],
                scripts={"lead": [{"tool_calls": calls}, {"text": "finished"}]})


async def test_a_tool_that_needs_a_nodes_resource_runs_only_there(troupe_mn: Troupe, sim: SimCluster) -> None:
    calls = [call("on_node_b") for _ in range(3)]
    result = await troupe_mn.run(lead_calls(["on_node_b"], calls), "go", timeout=90, placement="packed")
    assert result.status is SessionStatus.COMPLETED, result.error
    outs = tool_results(troupe_mn.lake, result.session_id)
    assert [o["type"] for o in outs] == ["tool.result"] * 3, outs
    assert {sim.name_of(o["result"]) for o in outs} == {"node_b"}


async def test_cpu_tool_calls_spread_over_the_nodes(troupe_mn: Troupe, sim: SimCluster) -> None:
    # Five calls of one CPU each at once; no node has more than two CPUs.
    calls = [call("busy_cpu", seconds=1.5) for _ in range(5)]
    result = await troupe_mn.run(lead_calls(["busy_cpu"], calls), "go", timeout=120, placement="packed")
    assert result.status is SessionStatus.COMPLETED, result.error
    outs = tool_results(troupe_mn.lake, result.session_id)
    assert [o["type"] for o in outs] == ["tool.result"] * 5, outs
    ran_on = Counter(sim.name_of(o["result"]) for o in outs)
    assert len(ran_on) >= 2, ran_on
    assert set(ran_on) <= {"head", "node_a", "node_b"}, ran_on


async def test_a_packed_sweeps_pool_hosts_use_every_node(troupe_mn: Troupe, sim: SimCluster, tmp_path: Path) -> None:
    cases = [{"id": f"c{i}", "input": f"q{i}", "expect": {"regex": "."}} for i in range(10)]
    suite_file = write_suite(tmp_path / "suite", cases)
    team_file = suite_file.parent / "team.yaml"  # the suite's team, answering with its node
    team_file.write_text(team_file.read_text().replace("tests.evals.sweep_model:reply", f"{TOOLS}:node_model"))
    sweep = Sweep(troupe_mn, load_suite(suite_file), concurrency=10)
    progress = await sweep.run()
    assert progress.done == 10
    rows = results_table(troupe_mn.lake, sweep.run_id).to_pylist()
    assert all(r["status"] == "completed" for r in rows), rows
    # Every sample's agent answered with the node its pool host runs on.
    ran_on = Counter(sim.name_of(r["reply"]) for r in rows)
    pool = troupe_mn.backend._pool  # type: ignore[attr-defined]
    hosted = Counter(sim.name_of(n) for n in await asyncio.gather(*(node_of(h) for h in pool)))
    assert set(ran_on) == set(hosted) == {"head", "node_a", "node_b"}, (ran_on, hosted)
    assert max(hosted.values()) - min(hosted.values()) <= 1, hosted  # the pool is spread evenly


STEP_S = 0.1


async def test_losing_a_worker_node_mid_session_leaves_the_session_completing(
        troupe_mn: Troupe, sim: SimCluster, tmp_path: Path) -> None:
    backend: Any = troupe_mn.backend
    ledger = tmp_path / "ledger"
    session = await troupe_mn.open(recovery_team())
    hosts: dict[str, ActorHandle] = {str(n): h for n, h in backend._placed(session.id).hosts.items()}
    before = dict(zip(hosts, [sim.name_of(n) for n in await asyncio.gather(*(node_of(h) for h in hosts.values()))],
                      strict=True))
    lost = sorted(name for name, node in before.items() if node == "node_a")
    assert lost, before  # the session's agents are spread over the nodes: some are on node_a
    await session.send(request_text(ledger, "m", STEP_S))
    applied: set[str] = set()
    async for event in session.events():
        # Both side effects are done; the blackboard writes, the task notices and the lead's answer
        # are still to come. (A tool call in flight on the lost node's tool worker would fail with
        # an error the model reads: it may have had its effect, so it is not run again.)
        if event.type == "tool.result" and event.tool == "effect":
            applied.add(str(event.agent))
            if len(applied) == 2:
                break
    sim.remove("node_a")
    result = await session.result(timeout=120)
    after = {name: sim.name_of(await node_of(hosts[name])) for name in lost}
    await session.close()
    assert result.status is SessionStatus.COMPLETED, f"{before}: {result.error}"
    assert result.reply == expected_reply("m")
    assert sorted(ledger_items(ledger)) == ["m-worker_a", "m-worker_b"]  # each side effect once
    assert all(node in ("head", "node_b") for node in after.values()), after  # restarted on the nodes left
    await backend.flush()
    assert gaps(troupe_mn.lake, session.id) == {"messages": 0, "tool_results": 0, "tasks": 0, "session_finished": 0}
    restored = query(troupe_mn.lake, f"select distinct agent from events where session_id = '{session.id}' "
                                     "and type = 'actor.restored'").column("agent").to_pylist()
    # Each lost actor came back from its checkpoint (the blackboard has none before its first write,
    # which may come after the loss), and no other actor was restarted.
    assert set(lost) - {"blackboard"} <= set(restored) <= set(lost), (lost, restored)
