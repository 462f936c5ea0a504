"""The lake and the eval results on a non-local filesystem (a real S3 API from moto), without Ray:
the same answers as on local disk, compaction, the view's refresh, the CLI and TROUPE_LAKE."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from tests.conftest import EXAMPLE_TEAM
from tests.evals.test_results import build_lake
from tests.runtime.test_lake import T0, _events
from tests.support.s3_server import S3Server, free_port, s3_bucket, s3_lake, s3_server  # noqa: F401  (fixtures)
from troupe.evals.analysis import check_gates, summary
from troupe.evals.report import render_html
from troupe.evals.results import (
    compact,
    connect,
    done_sample_ids,
    get_baseline,
    known_run_ids,
    list_runs,
    read_manifest,
    resolve_run,
    results_table,
    set_baseline,
)
from troupe.runtime.api import Troupe
from troupe.runtime.cli.main import main as troupe_main
from troupe.runtime.eventlog.core import EventLogCore
from troupe.runtime.eventlog.lake import LakeWriter, compact_run, default_lake, query, refresh
from troupe.runtime.eventlog.lake import connect as connect_events
from troupe.runtime.events import events_to_columns
from troupe.runtime.session.supervisor import SessionStatus
from troupe.runtime.storage.location import LakeLocationError, Storage

SQL = "SELECT run_id, date::VARCHAR AS d, count(*) AS n, sum(seq) AS seqs FROM events GROUP BY ALL ORDER BY ALL"


def _write_both(local: Path, remote: str) -> None:
    evs = _events("r1", 60) + _events("r2", 10) + _events("a b/c=d%e", 3, start=T0 - timedelta(hours=1))
    for root in (local, remote):
        LakeWriter(root).write(events_to_columns(evs))


def test_a_remote_lake_answers_like_a_local_one(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    remote = s3_server.uri(s3_bucket)
    _write_both(tmp_path, remote)
    assert query(remote, SQL).equals(query(tmp_path, SQL))
    keys = s3_server.keys(s3_bucket)
    assert len(keys) == 4 and all(k.startswith("lake/events/date=") and k.endswith(".parquet") for k in keys)
    assert "lake/events/date=2026-03-01/run_id=a%20b%2Fc%3Dd%25e/" in keys[0]
    local_con, remote_con = connect_events(tmp_path), connect_events(remote)
    describe = "SELECT column_name, column_type FROM (DESCRIBE events)"
    assert remote_con.sql(describe).fetchall() == local_con.sql(describe).fetchall()
    # Partition pruning on the decoded hive value.
    one = "SELECT count(*) FROM events WHERE run_id = 'a b/c=d%e'"
    assert remote_con.sql(one).fetchall() == local_con.sql(one).fetchall() == [(3,)]


def test_empty_remote_lake_has_the_view_and_refresh_sees_new_files(s3_lake: str) -> None:
    con = connect_events(s3_lake)
    assert con.sql("SELECT count(*) FROM events").fetchall() == [(0,)]
    LakeWriter(s3_lake).write(events_to_columns(_events("r1", 4)))
    refresh(con, s3_lake)
    assert con.sql("SELECT count(*) FROM events").fetchall() == [(4,)]
    LakeWriter(s3_lake).write(events_to_columns(_events("r1", 4)))
    assert con.sql("SELECT count(*) FROM events").fetchall() == [(4,)]  # a snapshot of the listing...
    refresh(con, s3_lake)
    assert con.sql("SELECT count(*) FROM events").fetchall() == [(8,)]  # ...until refreshed
    assert query(s3_lake, "SELECT count(*) n FROM events").to_pylist() == [{"n": 8}]  # query() lists afresh


def test_compaction_on_object_storage(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    remote = s3_server.uri(s3_bucket)
    for k in range(5):
        LakeWriter(remote).write(events_to_columns(_events("r1", 60, start=T0 + timedelta(milliseconds=k))))
    LakeWriter(remote).write(events_to_columns(_events("r2", 5)))
    before = query(remote, "SELECT event_id, run_id, ts, seq, date FROM events ORDER BY event_id")
    result = compact_run(remote, "r1")
    assert (result.files_before, result.files_after, result.rows) == (10, 2, 300)
    assert len(s3_server.keys(s3_bucket)) == 3
    assert query(remote, "SELECT event_id, run_id, ts, seq, date FROM events ORDER BY event_id").equals(before)
    assert compact_run(remote, "r1").rows == 0


async def test_event_log_core_writes_and_compacts_a_remote_lake(s3_lake: str) -> None:
    log = EventLogCore(s3_lake, flush_rows=10)
    assert log.lake == s3_lake and "testing-secret" not in log.stats()["lake"]
    for _ in range(3):
        await log.append(events_to_columns(_events("r1", 12)))
    await log.flush()
    done = await log.finish_run("r1")
    assert (done.files_before, done.files_after, done.rows) == (3, 1, 36)
    await log.close()
    assert query(s3_lake, "SELECT count(*) n FROM events").to_pylist() == [{"n": 36}]


async def test_troupe_local_session_on_a_remote_lake(s3_lake: str) -> None:
    troupe = Troupe.local(lake=s3_lake)
    try:
        assert troupe.lake == s3_lake
        result = await troupe.run(EXAMPLE_TEAM, "What is 1234 * 5678?", timeout=60)
        assert result.status is SessionStatus.COMPLETED, result.error
    finally:
        await troupe.shutdown()
    got = query(s3_lake, f"SELECT count(*) n FROM events WHERE session_id = '{result.session_id}' "
                         "AND type = 'session.finished'").to_pylist()
    assert got == [{"n": 1}]


def test_eval_results_on_object_storage_match_local(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    remote = s3_server.uri(s3_bucket)
    local = build_lake(tmp_path / "lake")
    build_lake(remote)  # type: ignore[arg-type]
    a, b = local.run_a, local.run_b
    assert results_table(remote, b).equals(results_table(local.lake, b))
    assert known_run_ids(remote) == known_run_ids(local.lake) == [a, b]
    assert [m.run_id for m in list_runs(remote)] == [b, a] and read_manifest(remote, a).status == "finished"
    assert done_sample_ids(remote, b) == done_sample_ids(local.lake, b)
    assert summary(remote, b).equals(summary(local.lake, b))
    assert check_gates(remote, b) == check_gates(local.lake, b)
    join = "select r.case_id, e.type from results r join events e using (session_id) order by e.ts, e.seq"
    assert connect(remote).sql(join).fetchall() == connect(local.lake).sql(join).fetchall() != []
    raw = "select run_id, count(*) from results_raw group by all order by all"
    assert connect(remote).sql(raw).fetchall() == connect(local.lake).sql(raw).fetchall()
    set_baseline(remote, "main", a)
    assert get_baseline(remote, "main") == a and resolve_run(remote, "main") == a and resolve_run(remote, "latest") == b
    done = compact(remote, a)
    assert (done.files_before, done.files_after, done.rows) == (2, 1, 24)
    assert results_table(remote, a).equals(results_table(local.lake, a))
    assert "<html" in render_html(remote, b).lower()
    assert not [k for k in s3_server.keys(s3_bucket) if k.rsplit("/", 1)[-1].startswith(".")]


def test_cli_and_troupe_lake_accept_uris(s3_lake: str, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    LakeWriter(s3_lake).write(events_to_columns(_events("r1", 3)))
    sql = "select run_id, count(*) n from events group by 1"
    assert troupe_main(["events", "sql", sql, "--lake", s3_lake, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"run_id": "r1", "n": 3}]
    monkeypatch.setenv("TROUPE_LAKE", s3_lake)
    assert default_lake() == s3_lake
    assert troupe_main(["events", "sql", sql, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"run_id": "r1", "n": 3}]
    assert troupe_main(["events", "sql", sql, "--lake", "s3://bucket/x?colour=blue&region=us-east-1"]) == 2
    err = capsys.readouterr().err
    assert "Unexpected query parameter in S3 URI: 'colour'" in err and "endpoint_override" in err
    monkeypatch.setenv("TROUPE_LAKE", "s3:bucket/lake")
    assert troupe_main(["events", "sql", sql]) == 2
    assert "looks like a URI without '//'" in capsys.readouterr().err


def test_a_missing_bucket_is_a_clear_error(s3_server: S3Server) -> None:
    missing = s3_server.uri("no-such-bucket")
    with pytest.raises(LakeLocationError, match="the bucket 'no-such-bucket' of the lake at "
                                                "s3://testing:\\*\\*\\*@no-such-bucket/lake.* does not exist"):
        query(missing, "select 1")
    with pytest.raises(LakeLocationError, match="does not exist"):
        EventLogCore(missing)
    # Nothing listens there (one attempt, not the SDK's three with back-off).
    dead = pafs.S3FileSystem(access_key="k", secret_key="s", region="us-east-1", scheme="http",
                             endpoint_override=f"127.0.0.1:{free_port()}",
                             retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))
    with pytest.raises(LakeLocationError, match="cannot reach the lake at s3://b/x.*check the endpoint"):
        Storage(dead, "b/x", "s3://b/x").check()


async def test_troupe_lake_is_absolute_for_a_relative_local_path(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    troupe = Troupe.local(lake="rel/lake")
    try:
        assert troupe.lake == str(tmp_path.resolve() / "rel" / "lake")
    finally:
        await troupe.shutdown()
