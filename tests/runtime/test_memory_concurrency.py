"""Nothing remembered is lost when several processes write and compact the same project at once (two real
processes on a folder; two stores in threads on S3, where there is no rename). Before base generations
named what they folded in, a compaction deleted log files that a concurrent, newer generation did not hold."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.s3_server import s3_bucket, s3_lake, s3_server  # noqa: F401  (fixtures)
from troupe.runtime.memory import store as store_mod
from troupe.runtime.memory.model import MemoryEntry
from troupe.runtime.memory.store import MemoryStore
from troupe.runtime.storage.location import Storage, open_storage

N = 60
WRITER = """
import sys, time
from pathlib import Path
from troupe.runtime.memory import store as store_mod
from troupe.runtime.memory.model import MemoryEntry
from troupe.runtime.memory.store import MemoryStore
from troupe.runtime.storage.location import open_storage
root, tag, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
store_mod.LOG_ROWS_COMPACT = 5
st = MemoryStore(open_storage(root), "project", "p")
while not go.exists():
    time.sleep(0.005)
for i in range(n):
    st.refresh()
    st.append([MemoryEntry(scope="project", namespace="p", key=f"{tag}/{i}", value=f"fact {tag} number {i}")])
    if i % 3 == 2:
        st.compact()
"""


def write_and_compact(storage: Storage, tag: str, n: int, errors: list[BaseException]) -> None:
    try:
        st = MemoryStore(storage, "project", "p")
        for i in range(n):
            st.refresh()
            st.append([MemoryEntry(scope="project", namespace="p", key=f"{tag}/{i}", value=f"fact {tag} number {i}")])
            if i % 2 == 1:
                st.compact()
    except BaseException as e:  # a writer that dies leaves its later entries unwritten: say why, not "lost"
        errors.append(e)
        raise


def all_there(storage: Storage, tags: str, n: int) -> None:
    st = MemoryStore(storage, "project", "p")
    st.refresh()
    missing = [f"{t}/{i}" for t in tags for i in range(n) if not st.history(f"{t}/{i}")]
    assert missing == [], f"{len(missing)} entries lost"
    assert len(st.search("fact number", 10 * n)) == len(tags) * n  # each recalled once, by its current entry
    st.compact()  # and after everything is folded into one base
    again = MemoryStore(storage, "project", "p")
    again.refresh()
    assert len(again.search("fact number", 10 * n)) == len(tags) * n and again.log_size == 0


def test_two_processes_writing_and_compacting_one_project_lose_nothing(tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "mem"), tag, str(N), str(go)])
             for tag in "ab"]
    time.sleep(1.0)  # both imported and waiting: they start together
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    all_there(open_storage(tmp_path / "mem"), "ab", N)


def test_two_writers_compacting_one_project_on_s3_lose_nothing(s3_lake: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(store_mod, "LOG_ROWS_COMPACT", 4)
    location = open_storage(s3_lake).ref("memory")
    errors: list[BaseException] = []
    threads = [threading.Thread(target=write_and_compact, args=(open_storage(location), tag, 12, errors))
               for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and not any(t.is_alive() for t in threads)
    all_there(open_storage(location), "ab", 12)


def test_a_log_file_folded_in_while_it_is_read_on_s3_is_read_from_the_new_base(s3_lake: str,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The race the test above hits by chance, made certain: a reader lists a log file and asks its size,
    then another writer's compaction folds it in and deletes it before the reader asks its bytes. S3 fails
    that GET with NO_SUCH_KEY, a plain OSError, which the refresh did not take for a vanished file and
    which killed the writer (its later entries never written: "entries lost"). Now the refresh looks again
    and finds the file's entries in the new base."""
    location = open_storage(s3_lake).ref("memory")
    reader, other = (MemoryStore(open_storage(location), "project", "p") for _ in range(2))
    other.append([MemoryEntry(scope="project", namespace="p", key="b/0", value="fact b number 0")])
    read_table, armed = pq.read_table, [True]

    def racing(source: Any, columns: Any = None, filesystem: Any = None, **kw: Any) -> pa.Table:
        if not (armed and isinstance(source, str) and "/log/" in source):
            return read_table(source, columns=columns, filesystem=filesystem, **kw)
        armed.clear()
        f = filesystem.open_input_file(source)  # its size: still there
        other.compact()  # folded into a new base, then deleted
        return read_table(f, columns=columns)  # its bytes: gone

    monkeypatch.setattr(pq, "read_table", racing)
    reader.refresh()
    assert not armed and [e.value for e in reader.history("b/0")] == ["fact b number 0"]
    reader.append([MemoryEntry(scope="project", namespace="p", key="a/0", value="fact a number 0")])
    reader.compact()
    all_there(open_storage(location), "ab", 1)
