"""WriteAheadLog: segments, rotation and deletion, recovery in order, torn tails, the directory lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from troupe.runtime.storage.wal import Segment, WalBusyError, WalError, WriteAheadLog

SCHEMA = pa.schema([("id", pa.string()), ("n", pa.int64())])


def _batch(*ids: str) -> pa.Table:
    return pa.table({"id": list(ids), "n": [len(i) for i in ids]}, schema=SCHEMA)


def _segment_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("segment-*.arrow"))


def _ids(table: pa.Table) -> list[str]:
    return table["id"].to_pylist()


def _crash(wal: WriteAheadLog) -> None:
    """What the death of the process leaves: files as they are, the lock released by the kernel."""
    assert wal._lock is not None
    wal._lock.close()


def test_appends_go_to_one_segment_until_sealed_then_a_new_one(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "wal", SCHEMA)
    assert wal.recover().segments == [] and wal.segments == 0
    assert wal.seal() == []  # nothing appended: nothing to seal
    wal.append(_batch("a", "b"))
    wal.append(_batch("c"))
    assert _segment_files(wal.directory) == ["segment-000000000001.arrow"]
    assert wal.segments == 1 and wal.bytes == (wal.directory / "segment-000000000001.arrow").stat().st_size > 0
    (first,) = wal.seal()
    assert first == Segment(1, wal.directory / "segment-000000000001.arrow")
    wal.append(_batch("d"))
    assert _segment_files(wal.directory) == ["segment-000000000001.arrow", "segment-000000000002.arrow"]
    assert wal.segments == 2


def test_a_segment_is_deleted_only_when_asked_after_its_write_succeeded(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, SCHEMA)
    wal.append(_batch("a"))
    sealed = wal.seal()
    wal.append(_batch("b"))
    # The caller's Parquet write failed: it keeps the sealed segment, and a later process recovers it.
    assert len(_segment_files(tmp_path)) == 2
    wal.delete(sealed)
    assert _segment_files(tmp_path) == ["segment-000000000002.arrow"] and wal.segments == 1
    wal.delete(sealed)  # deleting twice is harmless


def test_recovery_reads_every_leftover_segment_in_order(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, SCHEMA)
    wal.append(_batch("a", "b"))
    wal.seal()
    wal.append(_batch("c"))
    wal.append(_batch("d"))
    wal.seal()
    wal.append(_batch("e"))  # still open when the process dies
    _crash(wal)

    again = WriteAheadLog(tmp_path, SCHEMA)
    recovery = again.recover()
    assert _ids(recovery.table) == ["a", "b", "c", "d", "e"]
    assert [s.number for s in recovery.segments] == [1, 2, 3] and recovery.torn == 0
    assert again.recover().segments == []  # recovered once
    # New segments continue the numbering, so they sort after the recovered ones.
    again.append(_batch("f"))
    assert _segment_files(tmp_path)[-1] == "segment-000000000004.arrow"
    assert again.segments == 4
    again.delete(recovery.segments)
    assert _segment_files(tmp_path) == ["segment-000000000004.arrow"]


def test_segment_numbers_sort_numerically_past_nine(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, SCHEMA)
    for i in range(12):
        wal.append(_batch(f"e{i}"))
        wal.seal()
    wal.close()
    recovery = WriteAheadLog(tmp_path, SCHEMA).recover()
    assert _ids(recovery.table) == [f"e{i}" for i in range(12)]


@pytest.mark.parametrize("cut", [1, 7, 60])
def test_a_torn_last_record_is_skipped_and_the_whole_ones_kept(tmp_path: Path, cut: int) -> None:
    wal = WriteAheadLog(tmp_path, SCHEMA)
    wal.append(_batch("a"))
    wal.append(_batch("b", "c"))
    size_before_last = wal.bytes
    wal.append(_batch("d"))
    wal.seal()
    wal.append(_batch("e"))
    wal.close()
    first = tmp_path / "segment-000000000001.arrow"
    # A process that died while writing "d": only part of that record reached the file.
    with open(first, "r+b") as f:
        f.truncate(size_before_last + cut)
    recovery = WriteAheadLog(tmp_path, SCHEMA).recover()
    assert _ids(recovery.table) == ["a", "b", "c", "e"] and recovery.torn == 1


def test_a_segment_torn_inside_its_first_record_or_empty_recovers_nothing(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, SCHEMA)
    wal.append(_batch("a"))
    wal.close()
    seg = tmp_path / "segment-000000000001.arrow"
    with open(seg, "r+b") as f:
        f.truncate(20)  # inside the schema message
    (tmp_path / "segment-000000000002.arrow").write_bytes(b"")  # created, died before writing
    recovery = WriteAheadLog(tmp_path, SCHEMA).recover()
    assert recovery.table.num_rows == 0 and len(recovery.segments) == 2 and recovery.torn == 1


def test_a_killed_process_loses_nothing_it_appended(tmp_path: Path) -> None:
    """A real process death (SIGKILL): every append that returned is recovered."""
    script = f"""
import os, signal, sys
import pyarrow as pa
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from troupe.runtime.storage.wal import WriteAheadLog
schema = pa.schema([("id", pa.string()), ("n", pa.int64())])
wal = WriteAheadLog({str(tmp_path)!r}, schema)
for i in range(50):
    wal.append(pa.table({{"id": [f"e{{i}}"], "n": [i]}}, schema=schema))
    if i == 29:
        wal.seal()
print("appended", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9 and "appended" in proc.stdout, proc.stderr
    recovery = WriteAheadLog(tmp_path, SCHEMA).recover()
    assert _ids(recovery.table) == [f"e{i}" for i in range(50)] and len(recovery.segments) == 2


def test_fsync_mode_appends_and_recovers(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, SCHEMA, fsync=True)
    wal.append(_batch("a"))
    wal.append(_batch("b"))
    _crash(wal)
    assert _ids(WriteAheadLog(tmp_path, SCHEMA).recover().table) == ["a", "b"]


def test_a_live_directory_is_refused_to_a_second_log(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, SCHEMA)
    with pytest.raises(WalBusyError, match="in use by another live process"):
        WriteAheadLog(tmp_path, SCHEMA)
    wal.close()
    WriteAheadLog(tmp_path, SCHEMA).close()  # free again once closed


def test_close_removes_the_directory_only_when_no_segment_holds_rows(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "kept", SCHEMA)
    wal.append(_batch("a"))
    wal.close()
    assert _segment_files(tmp_path / "kept") == ["segment-000000000001.arrow"]

    again = WriteAheadLog(tmp_path / "kept", SCHEMA)
    again.delete(again.recover().segments)
    again.close()
    assert not (tmp_path / "kept").exists()
    with pytest.raises(WalError, match="closed"):
        again.append(_batch("b"))


def test_a_segment_of_another_schema_is_refused_with_what_to_do(tmp_path: Path) -> None:
    other = pa.schema([("id", pa.string())])
    wal = WriteAheadLog(tmp_path, other)
    wal.append(pa.table({"id": ["a"]}, schema=other))
    wal.close()
    with pytest.raises(WalError, match="another schema.*move the file away"):
        WriteAheadLog(tmp_path, SCHEMA).recover()


def test_a_failed_append_closes_its_segment_and_the_next_append_opens_another(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, SCHEMA)
    wal.append(_batch("a"))
    active = wal._active
    assert active is not None

    class FullDisk:
        def write_batch(self, batch: pa.RecordBatch) -> None:
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            raise OSError(28, "No space left on device")

    active.writer = FullDisk()  # type: ignore[assignment]
    with pytest.raises(OSError, match="No space"):
        wal.append(_batch("b"))
    wal.append(_batch("c"))
    sealed = wal.seal()
    assert [s.number for s in sealed] == [1, 2]  # the broken one is handed out with the open one
    wal.close()
    assert _ids(WriteAheadLog(tmp_path, SCHEMA).recover().table) == ["a", "c"]


def test_a_batch_of_another_schema_is_a_programming_error(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, SCHEMA)
    with pytest.raises(ValueError, match="schema"):
        wal.append(pa.table({"x": [1]}))


def test_an_unusable_directory_says_so(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(WalError, match="cannot use the write-ahead log directory .*writable local directory"):
        WriteAheadLog(tmp_path / "file" / "wal", SCHEMA)
