"""The lake: partition layout, atomic files, compaction, the DuckDB view, formatting."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from troupe.runtime.errors import TroupeError
from troupe.runtime.eventlog.lake import (
    LakeQueryError,
    LakeWriter,
    compact_run,
    connect,
    default_lake,
    format_table,
    partition_dir,
    query,
    refresh,
)
from troupe.runtime.events import (
    ARROW_SCHEMA,
    AgentStatePayload,
    Event,
    ToolCallPayload,
    events_to_columns,
    make_event,
    parse_payload,
)

T0 = datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC)


def _events(run_id: str, n: int, *, start: datetime = T0, step_s: float = 1.0, session: str = "s1") -> list[Event]:
    return [
        make_event(
            "tool.call" if i % 2 == 0 else "tool.result",
            run_id=run_id,
            session_id=session,
            ts=start + timedelta(seconds=i * step_s),
            seq=i,
            tool="search",
            duration_ms=float(i),
            payload={"i": i},
        )
        for i in range(n)
    ]


def _parts(root: Path) -> list[Path]:
    return sorted((root / "events").rglob("*.parquet"))


def test_write_partitions_by_utc_date_and_run(tmp_path: Path) -> None:
    evs = _events("r1", 60) + _events("r2", 10)  # r1 crosses midnight UTC, r2 does not
    files = LakeWriter(tmp_path).write(events_to_columns(evs))
    rel = sorted(str(f.parent.relative_to(tmp_path)) for f in files)
    assert rel == [
        "events/date=2026-03-01/run_id=r1",
        "events/date=2026-03-01/run_id=r2",
        "events/date=2026-03-02/run_id=r1",
    ]
    assert all(f.name.startswith("part-") and f.suffix == ".parquet" for f in files)
    assert not list(tmp_path.rglob("*.tmp"))
    # The run_id column stays inside the files too (each file is self-describing), zstd-compressed.
    one = pq.read_table(files[0])
    assert one.schema.equals(ARROW_SCHEMA)
    assert pq.ParquetFile(files[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    got = query(tmp_path, "SELECT run_id, date::VARCHAR AS d, count(*) AS n FROM events GROUP BY ALL ORDER BY ALL")
    assert got.to_pylist() == [
        {"run_id": "r1", "d": "2026-03-01", "n": 30},
        {"run_id": "r1", "d": "2026-03-02", "n": 30},
        {"run_id": "r2", "d": "2026-03-01", "n": 10},
    ]


def test_write_accepts_an_arrow_table_and_ignores_empty(tmp_path: Path) -> None:
    table = pa.Table.from_pydict(events_to_columns(_events("r1", 3)), schema=ARROW_SCHEMA)
    assert len(LakeWriter(tmp_path).write(table)) == 1
    assert LakeWriter(tmp_path).write(table.slice(0, 0)) == []
    assert query(tmp_path, "SELECT count(*) AS n FROM events").to_pylist() == [{"n": 3}]


def test_run_id_partition_column_is_single_and_string(tmp_path: Path) -> None:
    """DuckDB merges the hive key with the in-file column; odd ids round-trip via percent-encoding."""
    odd = ["2024", "a b/c=d%e", "sweep:1'x"]
    for rid in odd:
        LakeWriter(tmp_path).write(events_to_columns(_events(rid, 2, start=T0 - timedelta(hours=1))))
    assert partition_dir(tmp_path, "2026-03-01", "a b/c=d%e").is_dir()
    con = connect(tmp_path)
    names = [r[0] for r in con.sql("DESCRIBE events").fetchall()]
    assert names.count("run_id") == 1 and names[-1] == "date"
    assert names[: len(ARROW_SCHEMA)] == ARROW_SCHEMA.names
    types = dict(con.sql("SELECT column_name, column_type FROM (DESCRIBE events)").fetchall())
    assert types["run_id"] == "VARCHAR" and types["date"] == "DATE"
    got = con.sql("SELECT run_id, count(*) AS n FROM events GROUP BY 1 ORDER BY 1").to_arrow_table()
    assert got.to_pylist() == [{"run_id": r, "n": 2} for r in sorted(odd)]
    # Partition pruning works on the decoded value.
    n = con.sql("SELECT count(*) FROM events WHERE run_id = 'a b/c=d%e'").fetchall()[0]
    assert n == (2,)


def test_empty_or_missing_lake_has_the_view_with_zero_rows(tmp_path: Path) -> None:
    for root in (tmp_path / "missing", tmp_path):
        (tmp_path / "events").mkdir(exist_ok=True) if root == tmp_path else None
        got = query(root, "SELECT type, count(*) AS n FROM events GROUP BY type")
        assert got.num_rows == 0
        assert query(root, "SELECT * FROM events").column_names == [*ARROW_SCHEMA.names, "date"]
    # The empty view has the same column types as the real one.
    empty = dict(connect(tmp_path).sql("SELECT column_name, column_type FROM (DESCRIBE events)").fetchall())
    LakeWriter(tmp_path).write(events_to_columns(_events("r1", 1)))
    full = dict(connect(tmp_path).sql("SELECT column_name, column_type FROM (DESCRIBE events)").fetchall())
    assert empty == full


def test_connection_opened_on_empty_lake_sees_files_after_refresh(tmp_path: Path) -> None:
    con = connect(tmp_path)
    LakeWriter(tmp_path).write(events_to_columns(_events("r1", 4)))
    refresh(con, tmp_path)
    assert con.sql("SELECT count(*) FROM events").fetchall()[0] == (4,)
    LakeWriter(tmp_path).write(events_to_columns(_events("r1", 4)))
    assert con.sql("SELECT count(*) FROM events").fetchall()[0] == (8,)  # the glob is re-read per query


def test_compaction_leaves_one_file_per_run_date_with_the_same_rows(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path)
    for k in range(5):  # five small "sessions" of r1, each crossing midnight, plus one of r2
        writer.write(events_to_columns(_events("r1", 60, start=T0 + timedelta(milliseconds=k))))
    writer.write(events_to_columns(_events("r2", 5)))
    sql = "SELECT event_id, run_id, ts, type, seq, payload, date FROM events ORDER BY event_id"
    before = query(tmp_path, sql)
    assert len(_parts(tmp_path)) == 11
    result = compact_run(tmp_path, "r1")
    assert (result.files_before, result.files_after, result.rows) == (10, 2, 300)
    files = _parts(tmp_path)
    assert len(files) == 3
    per_dir = {f.parent.name + "/" + f.parent.parent.name for f in files}
    assert len(per_dir) == 3
    assert query(tmp_path, sql).equals(before)
    # Compacted rows are sorted by time; compacting again is a no-op.
    day1 = next(f for f in files if "run_id=r1" in str(f) and "2026-03-01" in str(f))
    ts = pq.read_table(day1)["ts"].to_pylist()
    assert ts == sorted(ts)
    again = compact_run(tmp_path, "r1")
    assert (again.files_before, again.files_after, again.rows) == (2, 2, 0)
    assert compact_run(tmp_path, "nope").files_before == 0


def test_sql_error_is_a_clear_lake_query_error(tmp_path: Path) -> None:
    with pytest.raises(LakeQueryError) as info:
        query(tmp_path, "SELECT no_such_column FROM events")
    assert isinstance(info.value, TroupeError)
    assert "no_such_column" in str(info.value) and "Binder Error" in str(info.value)
    assert info.value.fields["sql"] == "SELECT no_such_column FROM events"
    with pytest.raises(LakeQueryError, match="syntax error"):
        query(tmp_path, "SELEC 1")


def test_typed_payloads_come_back_typed_from_the_lake(tmp_path: Path) -> None:
    call = ToolCallPayload(id="c1", arguments='{"q": "x"}')
    state = AgentStatePayload(from_="idle", to="running")
    LakeWriter(tmp_path).write(events_to_columns([make_event(p, run_id="r1", session_id="s1", ts=T0) for p in (call, state)]))
    rows = query(tmp_path, "SELECT type, payload, json_extract_string(payload, '$.from') frm FROM events ORDER BY type")
    assert rows["frm"].to_pylist() == ["idle", None]  # SQL sees the JSON keys ("from", not from_)
    assert [parse_payload(t, p) for t, p in zip(rows["type"].to_pylist(), rows["payload"].to_pylist(), strict=True)] == [
        state, call]


def test_secrets_are_redacted_in_parquet(tmp_path: Path) -> None:
    ev = make_event("llm.request", run_id="r1", session_id="s1", payload={"api_key": "sk-abcdefghijklmnop", "q": 1})
    LakeWriter(tmp_path).write(events_to_columns([ev]))
    raw = b"".join(f.read_bytes() for f in _parts(tmp_path))
    assert b"sk-abcdefghijklmnop" not in raw  # also not hidden in zstd: check the decoded column
    payload = json.loads(query(tmp_path, "SELECT payload FROM events")["payload"][0].as_py())
    assert payload == {"api_key": "[redacted]", "q": 1}


def test_format_table_json_csv(tmp_path: Path) -> None:
    table = pa.table(
        {
            "type": ["tool.call", "llm.response"],
            "n": pa.array([3, 12], pa.int64()),
            "ts": pa.array([T0, None], pa.timestamp("us", tz="UTC")),
            "payload": ["x" * 100, "a\nb"],
        }
    )
    text = format_table(table, "table").splitlines()
    assert text[0].split() == ["type", "n", "ts", "payload"]
    assert text[2].startswith("tool.call    ") and " 3  " in text[2]
    assert text[3].split()[1] == "12"
    assert "…" in text[2] and len(text[2]) < 140 and "a\\nb" in text[3]
    assert text[-1] == "(2 rows)"
    assert text[0].index("payload") == text[1].rindex(" ") + 1 == text[2].index("xxx")  # columns align
    rows = json.loads(format_table(table, "json"))
    assert rows[0] == {"type": "tool.call", "n": 3, "ts": T0.isoformat(), "payload": "x" * 100}
    assert rows[1]["ts"] is None
    back = list(csv.DictReader(io.StringIO(format_table(table, "csv"))))
    assert back[1] == {"type": "llm.response", "n": "12", "ts": "", "payload": "a\nb"}
    assert format_table(query(tmp_path, "SELECT * FROM events"), "json") == "[]"
    with pytest.raises(ValueError):
        format_table(table, "xml")  # type: ignore[arg-type]


def test_default_lake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TROUPE_LAKE", str(tmp_path / "lk"))
    assert default_lake() == tmp_path / "lk"
    monkeypatch.delenv("TROUPE_LAKE")
    monkeypatch.chdir(tmp_path)
    assert default_lake() == tmp_path.resolve() / ".troupe" / "lake"
