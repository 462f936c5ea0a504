"""Content-addressed snapshots of a folder, kept in the lake's storage.

A snapshot is a *manifest*: every file of the folder (relative POSIX path) with the sha256 of its
content, its mode, and for a symbolic link its target; empty folders are listed too. Contents are
*objects*, stored once per distinct content whatever file, session or snapshot holds them::

    <lake>/workspaces/objects/<aa>/<sha256>          file contents (deduplicated)
    <lake>/workspaces/<session id>/<seq>.snapshot     one manifest per snapshot, numbered 1, 2, ... (gzipped JSON)

Snapshots are incremental: a file whose (path, size, mtime_ns, inode) is the same as when it was last
hashed is not read again (the store keeps those in memory per folder, and the latest manifest
written from this machine carries them too, so a new process starts warm), and an object the store
already has is not written again. A folder equal to the latest snapshot (same ``tree``) makes no new
one. Restoring makes a folder equal to a manifest: files it does not list are removed, those that
differ are rewritten (names in ``exclude``, such as a worktree's ``.git``, are left alone); it does
not read them back: the manifest gives their hashes, and their new stats are kept for the next snapshot.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import socket
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from pydantic import BaseModel, Field

from troupe.runtime.errors import ConfigError
from troupe.runtime.storage.location import Storage, open_storage

PREFIX: Final = "workspaces"
_IN_MEMORY: Final = 16 * 1024 * 1024
"""Files up to this size are hashed and uploaded from one read; bigger ones are streamed twice."""
_CHUNK: Final = 4 * 1024 * 1024
_WORKERS: Final = 4
_SUFFIX: Final = ".snapshot"
"""Gzipped JSON (not ".gz": pyarrow.fs would (de)compress by the name itself, on some filesystems only)."""
RACY_NS: Final = 1_000_000_000
"""A file modified less than this before it was hashed is hashed again next time (see :meth:`SnapshotStore._hash_file`)."""
_FOLDERS_CACHED: Final = 64
_NEVER: Final = 1 << 62


class SnapshotNotFoundError(ConfigError):
    """No snapshot of that session (or none that matches the name given)."""


class FileEntry(BaseModel):
    """One entry of a snapshot: a file (``hash``), a symbolic link (``link``) or an empty folder (``dir``)."""

    hash: str | None = None
    size: int = 0
    mode: int = 0o644
    link: str | None = None
    dir: bool = False
    mtime_ns: int = 0
    ino: int = 0
    """How the file looked when hashed (the next snapshot on this machine skips it while they hold)."""

    def same(self, other: FileEntry) -> bool:
        return (self.hash, self.link, self.dir, self.mode) == (other.hash, other.link, other.dir, other.mode)

    def key(self) -> str:
        return f"d:{self.mode:o}" if self.dir else f"l:{self.link}" if self.link is not None else f"f:{self.hash}:{self.mode:o}"


class SnapshotManifest(BaseModel):
    """One snapshot of a session's workspace (what ``troupe workspace log`` lists)."""

    session_id: str
    run_id: str | None = None
    seq: int
    id: str
    """``<seq>-<tree prefix>``: ``troupe workspace rollback S --to`` takes it, its seq, or a prefix."""
    tree: str
    """sha256 over the entries (paths, contents, modes, links): equal trees are equal folders."""
    created_at: datetime
    reason: str = ""
    folder: str
    host: str
    files: dict[str, FileEntry] = Field(default_factory=dict)
    bytes_total: int = 0
    bytes_new: int = 0
    """Content this snapshot wrote to storage (objects no earlier snapshot had)."""
    objects_new: int = 0
    seconds: float = 0.0


class Diff(BaseModel):
    """What differs from ``old`` to ``new``: paths added, removed and changed."""

    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        rows = [(p, "A") for p in self.added] + [(p, "D") for p in self.removed] + [(p, "M") for p in self.changed]
        return [f"{mark} {path}" for path, mark in sorted(rows)]


def diff(old: dict[str, FileEntry], new: dict[str, FileEntry]) -> Diff:
    return Diff(added=sorted(set(new) - set(old)), removed=sorted(set(old) - set(new)),
                changed=sorted(p for p in set(old) & set(new) if not old[p].same(new[p])))


def tree_of(files: dict[str, FileEntry]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(f"{path}\0{files[path].key()}\n".encode())
    return h.hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class SnapshotStore:
    """Snapshots and objects under ``<location>/workspaces`` (thread-safe enough for one writer per session)."""

    def __init__(self, location: str | Path | Storage, *, prefix: str = PREFIX) -> None:
        self.storage = open_storage(location)
        self.prefix = prefix.strip("/")
        self._have: set[str] = set()
        self._claimed: set[str] = set()
        self._lock = threading.Lock()
        self._stats: OrderedDict[str, dict[str, FileEntry]] = OrderedDict()
        """Per folder: the entries last hashed or restored there (with their stat fields)."""
        self.host = socket.gethostname()

    # --- names ------------------------------------------------------------------------------
    def _object(self, digest: str) -> str:
        return f"{self.prefix}/objects/{digest[:2]}/{digest}"

    def _manifest(self, session_id: str, seq: int) -> str:
        return f"{self.prefix}/{session_id}/{seq:06d}{_SUFFIX}"

    # --- reading ----------------------------------------------------------------------------
    def snapshots(self, session_id: str) -> list[SnapshotManifest]:
        """Every snapshot of the session, oldest first."""
        rels = self.storage.files(f"{self.prefix}/{session_id}", suffix=_SUFFIX)
        return [self._read_manifest(r) for r in rels]

    def _read_manifest(self, rel: str) -> SnapshotManifest:
        return SnapshotManifest.model_validate_json(gzip.decompress(self.storage.read_bytes(rel)))

    def latest(self, session_id: str) -> SnapshotManifest | None:
        rels = self.storage.files(f"{self.prefix}/{session_id}", suffix=_SUFFIX)
        return self._read_manifest(rels[-1]) if rels else None

    def sessions(self) -> list[str]:
        return [d for d in self.storage.dirs(self.prefix) if d != "objects"]

    def get(self, session_id: str, ref: str | int | None = None) -> SnapshotManifest:
        """A snapshot by id, seq number (``3``, ``#3``), id or tree prefix; ``None``/``latest``: the latest."""
        snaps = self.snapshots(session_id)
        if not snaps:
            raise SnapshotNotFoundError(f"session {session_id} has no workspace snapshots in {self.storage}",
                                        session=session_id)
        if ref is None or ref == "latest":
            return snaps[-1]
        text = str(ref).lstrip("#")
        found = [s for s in snaps if s.id == text or (text.isdigit() and s.seq == int(text))]
        found = found or [s for s in snaps if len(text) >= 4 and (s.id.startswith(text) or s.tree.startswith(text))]
        if not found:
            raise SnapshotNotFoundError(f"session {session_id} has no snapshot {ref!r}; its snapshots are "
                                        f"{', '.join(s.id for s in snaps)}", session=session_id)
        return found[-1]

    def read_object(self, digest: str) -> bytes:
        return self.storage.read_bytes(self._object(digest))

    # --- scanning ---------------------------------------------------------------------------
    def _known(self, folder: Path, session_id: str) -> dict[str, FileEntry]:
        known = self._stats.get(str(folder))
        if known is not None:
            self._stats.move_to_end(str(folder))
            return known
        latest = self.latest(session_id)  # written from this machine for this folder: its stats hold here
        if latest is not None and latest.host == self.host and latest.folder == str(folder):
            return dict(latest.files)
        return {}

    def _remember(self, folder: Path, entries: dict[str, FileEntry]) -> None:
        self._stats[str(folder)] = entries
        self._stats.move_to_end(str(folder))
        while len(self._stats) > _FOLDERS_CACHED:
            self._stats.popitem(last=False)

    def scan(self, folder: Path, *, exclude: Iterable[str] = (), known: dict[str, FileEntry] | None = None,
             upload: bool = False) -> tuple[dict[str, FileEntry], int, int]:
        """The folder's entries, hashing only files whose stats changed since ``known``; with
        ``upload``, contents the store lacks are written. Returns (entries, bytes written, objects written)."""
        known = known or {}
        entries: dict[str, FileEntry] = {}
        todo: list[tuple[str, os.stat_result]] = []
        skip = set(exclude)
        for rel, st in _walk(folder, skip):
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                entries[rel] = FileEntry(link=os.readlink(folder / rel), mode=0o777)
            elif stat.S_ISDIR(st.st_mode):
                entries[rel] = FileEntry(dir=True, mode=mode)
            else:
                seen = known.get(rel)
                if (seen is not None and seen.hash and seen.size == st.st_size and seen.mtime_ns == st.st_mtime_ns
                        and seen.ino == st.st_ino and (not upload or seen.hash in self._have or self._has(seen.hash))):
                    entries[rel] = seen.model_copy(update={"mode": mode})
                else:
                    todo.append((rel, st))
        written = objects = 0
        if todo:
            with ThreadPoolExecutor(min(_WORKERS, len(todo))) as pool:
                for rel, entry, n in pool.map(lambda job: self._hash_file(folder, *job, upload=upload), todo):
                    entries[rel] = entry
                    written += n
                    objects += bool(n)
        return entries, written, objects

    def _has(self, digest: str) -> bool:
        if digest in self._have:
            return True
        if self.storage.is_file(self._object(digest)):
            self._have.add(digest)
            return True
        return False

    def _claim(self, digest: str) -> bool:
        """Whether this thread should write ``digest`` (stored by nobody yet, and no other thread writing it)."""
        with self._lock:
            if digest in self._have or digest in self._claimed:
                return False
            self._claimed.add(digest)
        return not self._has(digest)

    def _hash_file(self, folder: Path, rel: str, st: os.stat_result, *, upload: bool) -> tuple[str, FileEntry, int]:
        path = folder / rel
        written = 0
        if st.st_size <= _IN_MEMORY:
            data = path.read_bytes()
            digest = _sha(data)
            if upload and self._claim(digest):
                self.storage.write_bytes(self._object(digest), data)
                self._have.add(digest)
                written = len(data)
        else:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            digest = h.hexdigest()
            if upload and self._claim(digest):
                written = self._put_stream(digest, path)
        # Hashed again at the next snapshot (mtime 0 never matches): a file that changed while it was
        # read, and a "racily clean" one, modified so recently that a write in the same clock tick
        # could leave its size and mtime as they are (as git does with its index).
        after = path.stat()
        settled = after.st_mtime_ns == st.st_mtime_ns and st.st_mtime_ns < time.time_ns() - RACY_NS
        return rel, FileEntry(hash=digest, size=st.st_size, mode=stat.S_IMODE(st.st_mode),
                              mtime_ns=st.st_mtime_ns if settled else 0, ino=st.st_ino), written

    def _put_stream(self, digest: str, path: Path) -> int:
        rel = self._object(digest)
        target = self.storage.path(rel)
        if self.storage.object_store:
            tmp = target  # an object store's upload appears whole or not at all
        else:
            parent = target.rsplit("/", 1)[0]
            self.storage.fs.create_dir(parent, recursive=True)
            tmp = f"{parent}/.{digest}.{os.getpid()}.tmp"
        n = 0
        with open(path, "rb") as src, self.storage.fs.open_output_stream(tmp) as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
                n += len(chunk)
        if tmp != target:
            self.storage.fs.move(tmp, target)
        self._have.add(digest)
        return n

    # --- writing ----------------------------------------------------------------------------
    def snapshot(self, folder: str | Path, session_id: str, *, reason: str = "", run_id: str | None = None,
                 exclude: Iterable[str] = (), force: bool = False) -> tuple[SnapshotManifest | None, bool]:
        """Snapshot ``folder``; returns (the manifest, whether it is new). A folder equal to the
        latest snapshot makes none (that one is returned) unless ``force``; a missing folder: (None, False)."""
        started = time.perf_counter()
        folder = Path(folder)
        if not folder.is_dir():
            return None, False
        latest = self.latest(session_id)
        known = self._known(folder, session_id)
        files, written, objects = self.scan(folder, exclude=exclude, known=known, upload=True)
        self._remember(folder, files)
        tree = tree_of(files)
        if latest is not None and latest.tree == tree and not force:
            return latest, False
        seq = (latest.seq if latest else 0) + 1
        manifest = SnapshotManifest(
            session_id=session_id, run_id=run_id, seq=seq, id=f"{seq}-{tree[:10]}", tree=tree,
            created_at=datetime.now(UTC), reason=reason, folder=str(folder), host=self.host, files=files,
            bytes_total=sum(f.size for f in files.values()), bytes_new=written, objects_new=objects,
            seconds=round(time.perf_counter() - started, 6))
        self.storage.write_bytes(self._manifest(session_id, seq), gzip.compress(manifest.model_dump_json().encode(), mtime=0))
        return manifest, True

    def restore(self, manifest: SnapshotManifest, folder: str | Path, *, exclude: Iterable[str] = ()) -> Diff:
        """Make ``folder`` equal to ``manifest`` (created if missing); returns what changed."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        skip = set(exclude)
        now, _, _ = self.scan(folder, exclude=skip, known=self._known(folder, manifest.session_id))
        change = diff(now, manifest.files)
        wanted = manifest.files
        for rel in sorted(change.removed + change.changed, reverse=True):  # children before their folders
            if not (rel in wanted and wanted[rel].dir and now[rel].dir):
                _remove(folder / rel)
        for rel in change.removed:  # folders left empty that the manifest does not hold
            _prune(folder, rel, wanted)
        todo = sorted(change.added + change.changed)
        written = {rel: self._write_entry(folder, rel, wanted[rel]) for rel in todo if wanted[rel].hash is None}
        files = [rel for rel in todo if wanted[rel].hash is not None]
        if files:  # folders and links first (above), then the files' contents, several at a time
            with ThreadPoolExecutor(min(_WORKERS, len(files))) as pool:
                written.update(zip(files, pool.map(lambda rel: self._write_entry(folder, rel, wanted[rel]), files),
                                   strict=True))
        for rel, entry in wanted.items():
            if entry.dir:
                os.chmod(folder / rel, entry.mode)
        # What the folder holds now, without reading it back: the manifest's hashes with the stats of
        # the files as written (and the entries that were already right, as scanned).
        self._remember(folder, {rel: written[rel] if rel in written else now.get(rel, entry) for rel, entry in wanted.items()})
        return change

    def _write_entry(self, folder: Path, rel: str, entry: FileEntry) -> FileEntry:
        """Write one entry; returns it with the stats of the file written (a snapshot trusts them)."""
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir() and not path.is_symlink() and not entry.dir:
            shutil.rmtree(path)  # a folder where the snapshot has a file or a link
        if entry.dir:
            path.mkdir(exist_ok=True)
            return entry
        if entry.link is not None:
            os.symlink(entry.link, path)
            return entry
        assert entry.hash is not None
        tmp = path.parent / f".{path.name}.restore.tmp"
        with self.storage.fs.open_input_stream(self.storage.path(self._object(entry.hash))) as src, open(tmp, "wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
        os.chmod(tmp, entry.mode)
        # The content is known (its hash is the manifest's), so the file is not read back; its mtime is
        # set at least RACY_NS in the past (its snapshotted one when older) so that any later write,
        # even one of the same size within the same clock tick, changes it and is hashed again.
        os.utime(tmp, ns=(time.time_ns(), min(entry.mtime_ns or _NEVER, time.time_ns() - RACY_NS)))
        os.replace(tmp, path)
        st = path.lstat()
        settled = st.st_size == entry.size and st.st_mtime_ns < time.time_ns() - RACY_NS
        return entry.model_copy(update={"size": st.st_size, "mtime_ns": st.st_mtime_ns if settled else 0,
                                        "ino": st.st_ino})

    def diff_folder(self, manifest: SnapshotManifest, folder: str | Path, *, exclude: Iterable[str] = ()) -> Diff:
        """From ``manifest`` to the folder as it is now."""
        folder = Path(folder)
        now, _, _ = self.scan(folder, exclude=exclude, known=self._known(folder, manifest.session_id)) \
            if folder.is_dir() else ({}, 0, 0)
        return diff(manifest.files, now)


def _walk(folder: Path, skip: set[str]) -> Iterable[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every entry under ``folder``; folders only when empty."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        empty = True
        with os.scandir(folder / rel_dir if rel_dir else folder) as it:
            for e in it:
                rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
                if rel in skip or e.name.endswith(".restore.tmp"):
                    continue
                empty = False
                st = e.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(rel)
                elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    yield rel, st
        if empty and rel_dir:
            yield rel_dir, (folder / rel_dir).lstat()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _prune(folder: Path, rel: str, wanted: dict[str, FileEntry]) -> None:
    """Remove the empty folders above ``rel`` that ``wanted`` neither lists nor needs."""
    parts = rel.split("/")[:-1]
    while parts:
        parent = "/".join(parts)
        path = folder / parent
        if parent in wanted or not path.is_dir() or path.is_symlink() or any(path.iterdir()):
            return
        path.rmdir()
        parts.pop()


__all__ = ["PREFIX", "Diff", "FileEntry", "SnapshotManifest", "SnapshotNotFoundError", "SnapshotStore", "diff", "tree_of"]
