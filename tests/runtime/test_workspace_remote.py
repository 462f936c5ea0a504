"""Workspace snapshots on a remote lake (a real S3 API from moto): the objects and manifests live in
the bucket, nothing beside the workspace on local disk, and a fresh folder elsewhere (another node's)
is made equal to the latest snapshot from the bucket alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.s3_server import S3Server, s3_bucket, s3_lake, s3_server  # noqa: F401  (fixtures)
from troupe.runtime.safety import WorkspaceConfig
from troupe.runtime.session.workspace_history import prepare
from troupe.runtime.storage import snapshots as snaps
from troupe.runtime.storage.snapshots import SnapshotStore


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_snapshots_go_to_a_remote_lake_and_a_missing_folder_elsewhere_is_restored_from_it(
        s3_lake: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snaps, "RACY_NS", 0)
    node_a = tmp_path / "node-a" / "s1"
    (node_a / "src").mkdir(parents=True)
    (node_a / "src" / "main.py").write_text("print('hi')\n")
    (node_a / "data.bin").write_bytes(bytes(range(256)) * 64)
    store = SnapshotStore(s3_lake)
    first, new = store.snapshot(node_a, "s1", reason="turn 1")
    assert new and first is not None
    (node_a / "src" / "main.py").write_text("print('bye')\n")
    second, new = store.snapshot(node_a, "s1", reason="turn 2")
    assert new and second is not None and second.seq == 2 and second.objects_new == 1  # only the changed file

    objects = store.storage.files("workspaces/objects", recursive=True)
    assert len(objects) == 3  # main.py twice (two contents) and data.bin once
    assert not any(p.name.endswith(".snapshot") for p in tmp_path.rglob("*"))  # manifests are in the bucket only

    # Another node: its own process and folder, only the lake URI in common.
    node_b = tmp_path / "node-b" / "s1"
    restored = prepare(WorkspaceConfig(root=str(node_b.parent)), "s1", node_b, SnapshotStore(s3_lake))
    assert restored is not None and restored.id == second.id
    assert _files(node_b) == _files(node_a)
    assert (node_b / "src" / "main.py").read_text() == "print('bye')\n"

    # And an earlier snapshot, by number, from the bucket.
    SnapshotStore(s3_lake).restore(SnapshotStore(s3_lake).get("s1", 1), node_b)
    assert (node_b / "src" / "main.py").read_text() == "print('hi')\n"
