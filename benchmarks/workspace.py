"""Workspace snapshot benchmark: a 1 GB workspace (many files) snapshotted into a local lake, then a
small change snapshotted again (issue #19, point 2).

Reports seconds and bytes written per snapshot, first and incremental, and the same in a new process's
store (which starts from the latest manifest's stats), an unchanged folder (no snapshot made), a
restore into an empty folder and the snapshot of the restored folder after it (which reads nothing:
the restore kept the stats of what it wrote); and as ratios to the baseline measured in the same run: a plain copy
of the folder (``shutil.copytree``, what ``cp -r`` does), its seconds and bytes. The files are left
to settle for ``RACY_NS`` (1 s) before the first snapshot: a file modified less than that before it
is hashed is hashed again next time (see troupe.runtime.storage.snapshots).

Run: ``.venv/bin/python benchmarks/workspace.py`` (about a minute; ``--smoke``: a few MB). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.support.cli import parse_args
from troupe.runtime.storage.snapshots import RACY_NS, SnapshotStore


def tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def make_workspace(folder: Path, total_mb: int, files: int, seed: int = 7) -> int:
    """``files`` files of random content (sizes vary around the mean) in 32 folders; returns bytes."""
    rng = random.Random(seed)
    mean = total_mb * 1024 * 1024 // files
    written = 0
    for i in range(files):
        size = max(1, int(mean * rng.uniform(0.5, 1.5)))
        path = folder / f"d{i % 32:02d}" / f"f{i:06d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        written += size
    return written


def timed_snapshot(store: SnapshotStore, folder: Path, lake: Path, reason: str) -> dict[str, Any]:
    before = tree_bytes(lake)
    started = time.perf_counter()
    manifest, new = store.snapshot(folder, "bench", reason=reason)
    seconds = time.perf_counter() - started
    assert manifest is not None
    return {"s": round(seconds, 4), "bytes_written": tree_bytes(lake) - before, "content_bytes_new": manifest.bytes_new
            if new else 0, "new": new, "files": len(manifest.files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="workspace size in MB")
    parser.add_argument("--files", type=int, default=8192, help="files in the workspace")
    parser.add_argument("--changed", type=int, default=3, help="files changed (and one added) for the incremental snapshot")
    args = parse_args(parser, smoke={"mb": 4, "files": 200})
    figures: dict[str, Any] = {"mb": args.mb, "files": args.files}
    with tempfile.TemporaryDirectory(prefix="troupe-ws-bench-") as tmp:
        ws, lake = Path(tmp) / "ws", Path(tmp) / "lake"
        size = make_workspace(ws, args.mb, args.files)
        time.sleep(RACY_NS / 1e9 + 0.1)  # settled files (see the module docstring)

        started = time.perf_counter()
        shutil.copytree(ws, Path(tmp) / "copy")
        copy_s = time.perf_counter() - started
        shutil.rmtree(Path(tmp) / "copy")
        figures["baseline_copy"] = {"s": round(copy_s, 4), "bytes_written": size}

        store = SnapshotStore(lake)
        figures["first"] = first = timed_snapshot(store, ws, lake, "first")
        figures["unchanged"] = timed_snapshot(store, ws, lake, "unchanged")
        names = sorted(ws.rglob("*.bin"))
        for path in names[: args.changed]:
            with open(path, "ab") as f:
                f.write(b"a small change\n")
        (ws / "new.txt").write_text("a new file\n")
        time.sleep(RACY_NS / 1e9 + 0.1)
        figures["incremental"] = inc = timed_snapshot(store, ws, lake, "incremental")
        (ws / "new.txt").write_text("changed again\n")
        time.sleep(RACY_NS / 1e9 + 0.1)
        figures["incremental_new_process"] = cold = timed_snapshot(SnapshotStore(lake), ws, lake, "new process")

        latest = store.latest("bench")
        assert latest is not None
        target = Path(tmp) / "restored"
        started = time.perf_counter()
        store.restore(latest, target)
        figures["restore_empty_folder_s"] = restore_s = round(time.perf_counter() - started, 4)
        # The restored folder's next snapshot reads nothing: the restore kept its files' stats.
        figures["snapshot_after_restore"] = after = timed_snapshot(store, target, lake, "after restore")
        assert store.diff_folder(latest, target).empty and store.diff_folder(latest, ws).empty

    figures["ratios"] = {
        "first_s_vs_copy": round(first["s"] / copy_s, 3),
        "incremental_s_vs_copy": round(inc["s"] / copy_s, 4),
        "incremental_new_process_s_vs_copy": round(cold["s"] / copy_s, 4),
        "first_bytes_vs_copy": round(first["bytes_written"] / size, 4),
        "incremental_bytes_vs_copy": round(inc["bytes_written"] / size, 6),
        "restore_s_vs_copy": round(restore_s / copy_s, 3),
        "snapshot_after_restore_s_vs_copy": round(after["s"] / copy_s, 4),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
