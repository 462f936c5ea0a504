"""Sessions on a real local Ray, in both placements, through the Python API and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from tests.conftest import EXAMPLE_TEAM, REPO
from troupe.runtime.api import Troupe
from troupe.runtime.errors import UnknownAgentError, VersionConflictError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.ids import BLACKBOARD
from troupe.runtime.session.supervisor import SessionStatus

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]

REQUIRED_TYPES = {"task.created", "blackboard.put", "tool.call", "tool.result", "llm.request", "llm.response"}


def _actor_exists(name: str) -> bool:
    try:
        ray.get_actor(name, namespace="troupe")
        return True
    except ValueError:
        return False


@pytest.mark.parametrize("placement", ["dedicated", "packed"])
async def test_example_team_in_both_placements(troupe_ray: Troupe, lake: Path, placement: str) -> None:
    session = await troupe_ray.open(EXAMPLE_TEAM, placement=placement)
    lead_actor = f"{session.id}/lead"
    assert _actor_exists(lead_actor) is (placement == "dedicated")
    result = await session.run("What is 1234 * 5678?", timeout=60)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert "7006652" in result.reply
    await session.close()
    assert not _actor_exists(lead_actor)  # dedicated actors are gone after close
    by_agent = query(lake, "select agent, list(distinct type) types from events group by agent").to_pylist()
    agents = {r["agent"]: set(r["types"]) for r in by_agent}
    assert {"lead", "worker_a", "worker_b"} <= set(agents)
    assert set().union(*agents.values()) >= REQUIRED_TYPES
    started = query(lake, "select json_extract_string(payload, '$.placement') p from events where type='session.started'")
    assert started.to_pylist() == [{"p": placement}]
    # The run was compacted into one file when the session closed.
    assert len(list(lake.rglob("*.parquet"))) == 1


async def test_troupe_errors_cross_the_process_boundary_as_troupe_errors(troupe_ray: Troupe) -> None:
    session = await troupe_ray.open(EXAMPLE_TEAM, placement="dedicated")
    put = {"key": "k", "value": 1, "author": "lead"}
    await troupe_ray.backend.call(session.id, BLACKBOARD, "put", put)
    with pytest.raises(VersionConflictError, match="expected version 0"):
        await troupe_ray.backend.call(session.id, BLACKBOARD, "put", {**put, "expected_version": 0})
    with pytest.raises(UnknownAgentError, match="unknown agent 'ghost'"):
        await session.send("hi", to="ghost")
    entries = await session.blackboard()
    assert [(e.key, e.value, e.version) for e in entries] == [("k", 1, 1)]
    await session.close()


async def test_events_stream_live_with_tokens(troupe_ray: Troupe) -> None:
    session = await troupe_ray.open(EXAMPLE_TEAM, placement="packed", stream_tokens=True)
    await session.send("go")
    events = [e async for e in session.events()]
    await session.close()
    types = [e.type for e in events]
    assert types[0] == "session.started" and types[-1] == "session.finished"
    tokens = "".join(e.data["text"] for e in events if e.type == "llm.token" and e.agent == "lead")
    assert "7006652" in tokens
    assert len({e.agent for e in events}) >= 4


def _troupe(*args: str, lake: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TROUPE_LAKE": str(lake)}
    return subprocess.run([sys.executable, "-m", "troupe.runtime.cli.main", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=int(os.environ.get("CLI_TIMEOUT", "150")))


@pytest.mark.slow
@pytest.mark.parametrize("placement", ["dedicated", "packed"])
def test_cli_run_json_then_events_sql(lake: Path, placement: str) -> None:
    address = ray.get_runtime_context().gcs_address
    run = _troupe("run", "examples/research_team", "--input", "What is 1234 * 5678?", "--json",
                  "--placement", placement, "--address", address, lake=lake)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert out["status"] == "completed" and "7006652" in out["reply"]
    assert out["lake"] == str(lake.resolve()) and out["session_id"].startswith("s-") and out["run_id"].startswith("r-")
    sql = _troupe("events", "sql", f"select count(distinct agent) agents, list(distinct type) types from events "
                  f"where session_id = '{out['session_id']}'", "--format", "json", lake=lake)
    assert sql.returncode == 0, sql.stderr
    [row] = json.loads(sql.stdout)
    assert row["agents"] >= 3 and set(row["types"]) >= REQUIRED_TYPES


@pytest.mark.slow
def test_cli_demo_on_the_scripted_model_answers_and_summarises(lake: Path) -> None:
    address = ray.get_runtime_context().gcs_address
    demo = _troupe("demo", "--model", "scripted", "--json", "--placement", "packed", "--address", address, lake=lake)
    assert demo.returncode == 0, demo.stderr[-2000:]
    out = json.loads(demo.stdout)
    assert out["status"] == "completed" and out["correct"] is True
    assert "7006652" in out["reply"] and "17:30" in out["reply"]
    by_agent = {row["agent"]: row for row in out["summary"]}
    assert set(by_agent) == {"lead", "math", "clock"}
    assert [by_agent[a]["tool_calls"] for a in ("lead", "math", "clock")] == [1, 1, 1]
    results = query(lake, "select json_extract_string(payload, '$.key') k, json_extract_string(payload, '$.author') a "
                          "from events where type='blackboard.put' order by a").to_pylist()
    assert [r["a"] for r in results] == ["clock", "math"] and all(r["k"].startswith("results/t-") for r in results)


@pytest.mark.slow
def test_sigterm_cancels_the_session_and_keeps_its_events(lake: Path) -> None:
    import signal
    import time

    address = ray.get_runtime_context().gcs_address
    slow = lake.parent / "slow.yaml"
    slow.write_text(
        "name: slow\nentry: a\ndefault_model: m\n"
        "models: {m: {provider: function, function: 'tests.actors.slow_model:reply'}}\n"
        "agents: [{id: a}]\n"
    )
    proc = subprocess.Popen([sys.executable, "-m", "troupe.runtime.cli.main", "run", str(slow), "--input", "wait", "--json",
                             "--placement", "packed", "--address", address],
                            cwd=REPO, env={**os.environ, "TROUPE_LAKE": str(lake)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while not any(lake.rglob("*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # the first flushed events mean the session is running
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "the session was cancelled" in err
    finished = query(lake, "select status, json_extract_string(payload, '$.error') e from events "
                           "where type = 'session.finished'").to_pylist()
    assert finished == [{"status": "cancelled", "e": "interrupted (Ctrl-C or SIGTERM)"}]


async def test_a_scoped_runtime_in_the_same_job_has_its_own_actors(troupe_ray: Troupe, lake: Path) -> None:
    """Two runtimes of one Ray job on one lake (two Ray Serve replicas): with a scope each, they share no
    event log, scheduler or pool, and one's shutdown leaves the other running."""
    from tests.runtime.teams import team
    from troupe.runtime.errors import ConfigError

    with pytest.raises(ConfigError, match="runtime scope 'a b' is not a name"):
        await Troupe.connect(lake=lake, scope="a b")
    echo = team([{"id": "a"}], scripts={"a": [{"text": "hi"}]})
    scoped = await Troupe.connect(lake=lake, scope="replica-2")
    try:
        ours, theirs = troupe_ray.backend, scoped.backend
        assert ours.job != theirs.job and theirs.job.endswith("-replica-2")
        assert ours.log_name != theirs.log_name and ours.scheduler_name != theirs.scheduler_name
        assert (await scoped.run(echo, "go", placement="packed", timeout=60)).ok
        assert (await troupe_ray.run(echo, "go", placement="packed", timeout=60)).ok  # no pool name collided
    finally:
        await scoped.shutdown()
    assert (await troupe_ray.run(echo, "go", placement="packed", timeout=60)).ok  # ours outlived theirs
