"""A Troupe on real Ray whose lake is on S3 (moto's server on a loopback port): the event-log actor
writes and compacts from its own process, the driver queries with DuckDB, an eval sweep's results
are read back. Credentials travel in the lake URI, so the workers need no AWS_* variables."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_TEAM
from tests.support.eval_suites import CASES, write_suite
from tests.support.s3_server import S3Server, s3_bucket, s3_lake, s3_server  # noqa: F401  (fixtures)
from troupe.evals.results import connect, read_manifest, results_table
from troupe.evals.suite import load_suite
from troupe.evals.sweep import Sweep
from troupe.runtime.api import Troupe
from troupe.runtime.cli.main import main as troupe_main
from troupe.runtime.eventlog.lake import query
from troupe.runtime.session.supervisor import SessionStatus
from troupe.runtime.storage.location import LakeLocationError

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]


@pytest.fixture
async def troupe_s3(ray_session: None, s3_lake: str) -> AsyncIterator[Troupe]:
    troupe = await Troupe.connect(lake=s3_lake, placement="packed")
    try:
        yield troupe
    finally:
        await troupe.shutdown()


async def test_a_session_on_ray_writes_its_events_to_s3(troupe_s3: Troupe, s3_lake: str, s3_server: S3Server,
                                                        s3_bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert troupe_s3.lake == s3_lake  # the URI as given, not a mangled local path
    session = await troupe_s3.open(EXAMPLE_TEAM, placement="dedicated")
    result = await session.run("What is 1234 * 5678?", timeout=60)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert result.reply and "7006652" in result.reply
    await session.close()
    by_agent = query(s3_lake, "select agent, list(distinct type) types from events "
                              f"where session_id = '{session.id}' group by agent").to_pylist()
    agents = {r["agent"]: set(r["types"]) for r in by_agent}
    assert {"lead", "worker_a", "worker_b"} <= set(agents)
    assert {"tool.call", "tool.result", "llm.response"} <= set().union(*agents.values())
    # The run was compacted (by the event-log actor, on S3) into one object when the session closed.
    keys = s3_server.keys(s3_bucket, "lake/events")
    assert len(keys) == 1 and f"/run_id={result.run_id}/part-" in keys[0], keys
    stats = await troupe_s3.backend.log.stats.remote()  # type: ignore[attr-defined]
    assert stats["compactions"] >= 1 and stats["write_errors"] == 0 and "testing-secret" not in stats["lake"]
    # `troupe events sql --lake URI`
    sql = f"select count(*) n from events where session_id = '{session.id}' and type = 'session.finished'"
    assert troupe_main(["events", "sql", sql, "--lake", s3_lake, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 1}]


async def test_an_eval_sweep_keeps_its_results_on_s3(troupe_s3: Troupe, s3_lake: str, s3_server: S3Server,
                                                     s3_bucket: str, tmp_path: Path) -> None:
    sweep = Sweep(troupe_s3, load_suite(write_suite(tmp_path / "suite")), concurrency=4)
    progress = await sweep.run()
    assert progress.done == len(CASES)
    rows = {r["case_id"]: r for r in results_table(s3_lake, sweep.run_id).to_pylist()}
    assert set(rows) == {c["id"] for c in CASES}  # type: ignore[index]
    assert rows["ok-1"]["passed"] and rows["ok-1"]["reply"] == "answer to alpha"
    assert rows["crash"]["status"] == "failed" and not rows["wrong"]["passed"]
    assert read_manifest(s3_lake, sweep.run_id).status == "finished"
    # The results view joins the events the Ray event log wrote.
    con = connect(s3_lake)
    joined = con.sql("select count(distinct r.session_id) from results r join events e using (session_id) "
                     "where e.type = 'session.finished'").fetchall()
    assert joined == [(len(CASES) - 1,)]  # every sample but the one refused before it started
    # The sweep compacted its result files into one object; the manifest sits beside it.
    keys = s3_server.keys(s3_bucket, "lake/evals")
    assert sum(k.startswith("lake/evals/results/") for k in keys) == 1
    assert any(k.startswith("lake/evals/runs/") and k.endswith(".json") for k in keys)


async def test_a_missing_bucket_fails_at_connect(ray_session: None, s3_server: S3Server) -> None:
    with pytest.raises(LakeLocationError, match="bucket 'no-such-bucket' of the lake at .* does not exist") as info:
        await Troupe.connect(lake=s3_server.uri("no-such-bucket"))
    assert "testing-secret" not in info.value.message
