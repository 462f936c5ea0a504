"""Eval results storage: Parquet rows, resume ids, compaction, manifests, baselines, the DuckDB views.

:func:`build_lake` (two synthetic sweeps plus a small event lake) is shared with the analysis and
report tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from troupe.evals.models import Case, Gates, SampleResult, Suite
from troupe.evals.results import (
    RESULTS_SCHEMA,
    EvalStoreError,
    RunManifest,
    UnknownBaselineError,
    UnknownRunError,
    compact,
    connect,
    done_sample_ids,
    find_manifest,
    get_baseline,
    known_run_ids,
    list_baselines,
    list_runs,
    manifest_path,
    read_manifest,
    resolve_run,
    results_dir,
    results_table,
    set_baseline,
    write_manifest,
    write_results,
)
from troupe.runtime.errors import ConfigError
from troupe.runtime.eventlog.lake import LakeWriter
from troupe.runtime.events import events_to_columns, make_event

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
M1, M2, M3, M0 = (json.dumps({"model": m}, separators=(",", ":")) for m in ("m1", "m2", "m3", "m0"))
CASES = ("c1", "c2", "c3", "c4")
"""c1 is required; every cell runs each case twice (8 samples per cell)."""
XSS = "<script>alert('x')</script> & more"

# (cell, case, sample) -> (passed, status, score, error) for the samples that do not simply pass.
FAIL_A = {
    (M2, "c3", 0): (False, "completed", 0.0, None),
    (M2, "c3", 1): (False, "completed", 0.5, None),
    **{(M0, c, s): (False, "failed", 0.0, "boom") for c in ("c2", "c3") for s in (0, 1)},
}
FAIL_B = {
    (M1, "c1", 1): (False, "completed", 0.0, None),  # the required case fails
    (M1, "c2", 0): (False, "budget_exceeded", 0.0, "token budget exceeded"),
    (M1, "c4", 0): (False, "error", 0.0, "ValueError: never ran"),
    (M2, "c3", 0): (False, "completed", 0.0, None),
    (M2, "c3", 1): (False, "completed", 0.5, None),
}
CELLS_A = (M1, M2, M0)
CELLS_B = (M1, M2, M3)


@dataclass
class Built:
    lake: Path
    run_a: str
    run_b: str
    traced_session: str
    """A failing sample of run b whose session has events in the lake."""


def sample_rows(run_id: str, cells: tuple[str, ...], failures: dict) -> list[SampleResult]:
    rows = []
    for cell in cells:
        for case in CASES:
            for s in range(2):
                passed, status, score, error = failures.get((cell, case, s), (True, "completed", 1.0, None))
                tag = json.loads(cell)["model"]
                grades = [{"grader": "contains", "score": score, "passed": passed,
                           "explanation": "" if passed else f"missing 'paris' in {case}"}]
                rows.append(SampleResult(
                    run_id=run_id, suite="demo", sample_id=f"{tag}/{case}/{s}", cell=cell, case_id=case, sample=s,
                    tags=["geo"], required=case == "c1", status=status, error=error,
                    reply=XSS if (case, s) == ("c1", 1) else f"answer {case}", score=score, passed=passed,
                    grades=json.dumps(grades), tokens=100 * (s + 1), llm_calls=1, tool_calls=s,
                    cost_usd=0.001, latency_s=1.0 + s + CASES.index(case),
                    session_id=None if status == "error" else f"{run_id}:{tag}:{case}:{s}",
                    started_at=T0, finished_at=T0 + timedelta(seconds=2),
                ))
    return rows


def write_events(lake: Path, run_id: str, session_id: str) -> None:
    t = T0
    evs = [
        make_event("session.started", run_id=run_id, session_id=session_id, ts=t, seq=0, agent="session"),
        make_event("llm.response", run_id=run_id, session_id=session_id, ts=t + timedelta(seconds=1), seq=1,
                   agent="lead", model="m1", tokens_in=50, tokens_out=20, duration_ms=900.0, status="ok"),
        make_event("tool.call", run_id=run_id, session_id=session_id, ts=t + timedelta(seconds=2), seq=2,
                   agent="lead", tool="web_search", payload={"q": "<b>capital</b>"}),
        make_event("tool.error", run_id=run_id, session_id=session_id, ts=t + timedelta(seconds=3), seq=3,
                   agent="lead", tool="web_search", status="error", duration_ms=1234.5),
        make_event("session.finished", run_id=run_id, session_id=session_id, ts=t + timedelta(seconds=4), seq=4,
                   agent="session", status="completed"),
    ]
    # Another session that must not show up in the trace.
    evs.append(make_event("session.started", run_id=run_id, session_id="unrelated", ts=t, agent="zzz-other"))
    LakeWriter(lake).write(events_to_columns(evs))


def build_lake(lake: Path) -> Built:
    run_a, run_b = "run-a", "run-b"
    # Run a in two appends (append-only: two files); run b in one.
    rows_a = sample_rows(run_a, CELLS_A, FAIL_A)
    write_results(lake, rows_a[:10])
    write_results(lake, rows_a[10:])
    write_results(lake, sample_rows(run_b, CELLS_B, FAIL_B))
    gates = Gates(min_pass_rate=0.7, max_drop=0.1, required_cases=["c1"])
    write_manifest(lake, RunManifest(run_id=run_a, suite="demo", created_at=T0, grid={"model": ["m1", "m2", "m0"]},
                                     gates=gates, required_cases=["c1"], status="finished"))
    write_manifest(lake, RunManifest(
        run_id=run_b, suite="demo", created_at=T0 + timedelta(hours=1), grid={"model": ["m1", "m2", "m3"]},
        models=["m1", "m2", "m3"], samples=2, concurrency=4, gates=gates, required_cases=["c1"],
        status="finished", totals={"planned": 24, "done": 24}, license="CC-BY-4.0 <cases from somewhere>",
    ))
    traced = f"{run_b}:m1:c1:1"
    write_events(lake, run_b, traced)
    return Built(lake=lake, run_a=run_a, run_b=run_b, traced_session=traced)


@pytest.fixture
def built(lake: Path) -> Built:
    return build_lake(lake)


# --- results files ------------------------------------------------------------------------------
def test_schema_is_derived_from_the_model() -> None:
    assert RESULTS_SCHEMA.names == list(SampleResult.model_fields)
    assert RESULTS_SCHEMA.field("tags").type == pa.list_(pa.string())
    assert RESULTS_SCHEMA.field("passed").type == pa.bool_()
    assert RESULTS_SCHEMA.field("cost_usd").nullable and not RESULTS_SCHEMA.field("score").nullable
    assert RESULTS_SCHEMA.field("started_at").type == pa.timestamp("us", tz="UTC")


def test_writes_are_append_only_parquet_files(built: Built) -> None:
    parts = sorted(results_dir(built.lake, built.run_a).glob("*.parquet"))
    assert len(parts) == 2 and all(p.name.startswith("part-") for p in parts)
    assert not list(built.lake.rglob("*.tmp"))
    assert pq.read_schema(parts[0]).remove_metadata().equals(RESULTS_SCHEMA.remove_metadata())
    assert results_table(built.lake, built.run_a).num_rows == 24
    assert write_results(built.lake, []) == []


def test_done_sample_ids_for_resume(built: Built) -> None:
    done = done_sample_ids(built.lake, built.run_b)
    assert len(done) == 24 and "m1/c4/0" in done
    assert "m1/c4/0" not in done_sample_ids(built.lake, built.run_b, retry_errors=True)
    assert done_sample_ids(built.lake, "fresh-run") == set()


def test_a_rerun_sample_supersedes_its_error_row(built: Built) -> None:
    old = next(r for r in sample_rows(built.run_b, CELLS_B, FAIL_B) if r.sample_id == "m1/c4/0")
    write_results(built.lake, [old.model_copy(update={"status": "completed", "passed": True, "score": 1.0})])
    table = results_table(built.lake, built.run_b)
    assert table.num_rows == 24
    row = [r for r in table.to_pylist() if r["sample_id"] == "m1/c4/0"]
    assert row[0]["status"] == "completed" and row[0]["passed"]
    con = connect(built.lake)
    assert con.sql("select count(*) from results_raw where run_id = 'run-b'").fetchall() == [(25,)]
    assert con.sql("select count(*) from results where run_id = 'run-b'").fetchall() == [(24,)]


def test_compact_merges_a_runs_parts_into_one_sorted_file(built: Built) -> None:
    before = results_table(built.lake, built.run_a)
    done = compact(built.lake, built.run_a)
    assert (done.files_before, done.files_after, done.rows) == (2, 1, 24)
    parts = list(results_dir(built.lake, built.run_a).glob("*.parquet"))
    assert len(parts) == 1
    cells = pq.read_table(parts[0])["cell"].to_pylist()
    assert cells == sorted(cells)
    assert results_table(built.lake, built.run_a).equals(before)
    assert compact(built.lake, built.run_a).files_after == 1  # nothing to do


def test_results_table_is_sorted_and_typed(built: Built) -> None:
    table = results_table(built.lake, built.run_b)
    assert table.schema.equals(RESULTS_SCHEMA, check_metadata=False)
    keys = [(r["cell"], r["case_id"], r["sample"]) for r in table.to_pylist()]
    assert keys == sorted(keys)
    assert table["started_at"][0].as_py() == T0


def test_unknown_run_lists_the_known_ones(built: Built) -> None:
    with pytest.raises(UnknownRunError, match="no eval run 'nope'.*'run-a', 'run-b'"):
        results_table(built.lake, "nope")
    with pytest.raises(UnknownRunError, match="known eval runs: 'run-a', 'run-b'"):
        read_manifest(built.lake, "nope")
    assert issubclass(UnknownRunError, ConfigError)


def test_a_run_with_a_manifest_and_no_rows_is_empty(lake: Path) -> None:
    write_manifest(lake, RunManifest(run_id="new", suite="demo"))
    assert results_table(lake, "new").num_rows == 0
    assert known_run_ids(lake) == ["new"]


def test_bad_rows_and_ids_are_refused(lake: Path) -> None:
    with pytest.raises(EvalStoreError, match="row 0 is not a valid SampleResult"):
        write_results(lake, [{"run_id": "r"}])
    with pytest.raises(EvalStoreError, match="non-empty"):
        results_dir(lake, "")


def test_any_run_id_survives_the_path(lake: Path) -> None:
    odd = "sweep 1/ü?x=1"
    write_results(lake, sample_rows(odd, (M1,), {}))
    assert results_dir(lake, odd).name == "run_id=sweep%201%2F%C3%BC%3Fx%3D1"
    assert known_run_ids(lake) == [odd]
    assert set(results_table(lake, odd)["run_id"].to_pylist()) == {odd}
    con = connect(lake)
    assert con.sql("select distinct run_id from results").fetchall() == [(odd,)]


def test_views_join_results_to_events(built: Built) -> None:
    con = connect(built.lake)
    got = con.sql("""
        select r.run_id, r.case_id, e.type, e.tool from results r join events e using (session_id)
        order by e.ts, e.seq
    """).fetchall()
    assert [g[2] for g in got] == ["session.started", "llm.response", "tool.call", "tool.error", "session.finished"]
    assert {(g[0], g[1]) for g in got} == {("run-b", "c1")}
    runs = con.sql("select run_id, count(*) from results group by all order by all").fetchall()
    assert runs == [("run-a", 24), ("run-b", 24)]


def test_views_on_an_empty_lake(lake: Path) -> None:
    con = connect(lake)
    assert con.sql("select count(*) from results").fetchall() == [(0,)]
    assert "cell" in con.sql("select * from results").columns


def test_the_empty_view_has_the_column_types_of_written_rows(lake: Path) -> None:
    """Both come from RESULTS_SCHEMA (troupe.runtime.events.arrow): no second type map to drift."""
    describe = "SELECT column_name, column_type FROM (DESCRIBE results)"
    empty = dict(connect(lake).sql(describe).fetchall())
    write_results(lake, sample_rows("r1", (M1,), {}))
    full = dict(connect(lake).sql(describe).fetchall())
    assert empty == full
    assert (empty["tags"], empty["passed"], empty["started_at"]) == ("VARCHAR[]", "BOOLEAN", "TIMESTAMP WITH TIME ZONE")


# --- manifests ----------------------------------------------------------------------------------
def test_manifest_round_trip_and_updated_at(lake: Path) -> None:
    m = RunManifest(run_id="r1", suite="demo", created_at=T0, updated_at=T0, gates=Gates(min_pass_rate=0.5))
    written = write_manifest(lake, m)
    assert written.updated_at > T0 and manifest_path(lake, "r1").is_file()
    back = read_manifest(lake, "r1")
    assert back == written and back.gates.min_pass_rate == 0.5 and back.status == "running"
    done = write_manifest(lake, back.model_copy(update={"status": "finished", "totals": {"done": 3}}), touch=False)
    assert read_manifest(lake, "r1") == done
    assert find_manifest(lake, "other") is None


def test_manifest_for_a_suite(tmp_path: Path) -> None:
    suite = Suite(name="geo", team="team.yaml", license="MIT", samples=3,
                  gates=Gates(required_cases=["c9"]), grid={"model": ["a", "b"]})
    cases = [Case(id="c1", input="x", required=True), Case(id="c2", input="y")]
    m = RunManifest.for_suite(suite, run_id="r", cases=cases, suite_path="s.yaml", concurrency=8)
    assert (m.suite, m.license, m.samples, m.concurrency) == ("geo", "MIT", 3, 8)
    assert m.required_cases == ["c1", "c9"] and m.grid == {"model": ["a", "b"]}


def test_list_runs_newest_first(built: Built) -> None:
    write_manifest(built.lake, RunManifest(run_id="middle", suite="demo", created_at=T0 + timedelta(minutes=30)))
    assert [m.run_id for m in list_runs(built.lake)] == ["run-b", "middle", "run-a"]
    assert list_runs(built.lake / "nowhere") == []


def test_a_malformed_manifest_names_its_file(lake: Path) -> None:
    path = manifest_path(lake, "bad")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(EvalStoreError, match="bad.json is malformed"):
        list_runs(lake)


# --- baselines ----------------------------------------------------------------------------------
def test_baselines(built: Built) -> None:
    with pytest.raises(UnknownBaselineError, match="no baseline 'main'.*there are no baselines"):
        get_baseline(built.lake, "main")
    set_baseline(built.lake, "main", built.run_a)
    set_baseline(built.lake, "nightly", built.run_b)
    assert get_baseline(built.lake, "main") == built.run_a
    set_baseline(built.lake, "main", built.run_b)
    assert list_baselines(built.lake) == {"main": "run-b", "nightly": "run-b"}
    with pytest.raises(UnknownBaselineError, match="known baselines: 'main', 'nightly'"):
        get_baseline(built.lake, "release")
    with pytest.raises(UnknownRunError, match="no eval run 'ghost'"):
        set_baseline(built.lake, "main", "ghost")
    with pytest.raises(EvalStoreError, match="non-empty"):
        set_baseline(built.lake, " ", built.run_a)


def test_resolve_run(built: Built) -> None:
    set_baseline(built.lake, "main", built.run_a)
    assert resolve_run(built.lake, "run-a") == "run-a"
    assert resolve_run(built.lake, "latest") == "run-b"
    assert resolve_run(built.lake, "main") == "run-a"
    with pytest.raises(UnknownRunError, match="neither an eval run nor a baseline.*'main'"):
        resolve_run(built.lake, "what")
