"""A write-ahead log of Arrow record batches in a local directory (no Ray).

The event log writes each accepted batch here before acknowledging it, and writes Parquet later in
large batches; if its process dies in between, the next process to open the directory reads the
batches back with :meth:`WriteAheadLog.recover`.

What it guarantees:

* **Process death** (a crash, ``SIGKILL``, ``ray.kill``): once :meth:`WriteAheadLog.append` has
  returned, the batch is in the operating system's cache of a segment file and survives.
* **Machine crash or power loss**: only with ``fsync=True``, which puts every append on the device
  before returning (a disk flush per append, so the caller waits for it).
* **Losing the disk or the node**: not covered, unless the directory itself is on durable storage.

Layout: ``segment-<n>.arrow`` files, each an Arrow IPC stream with one record batch per append,
numbered in the order they were opened, and a ``LOCK`` file held with ``flock`` for as long as the
log is open, so two live processes never share one directory (the kernel drops the lock when a
process dies, however it dies). The caller rotates segments: :meth:`~WriteAheadLog.seal` closes
the segment being written when its rows are handed to a Parquet write, and
:meth:`~WriteAheadLog.delete` removes sealed segments once that write succeeded. A process that
died mid-append leaves a torn last record; recovery keeps every whole record before it (the torn
one was never acknowledged).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import pyarrow as pa

from troupe.runtime.errors import ConfigError

_log = logging.getLogger(__name__)

LOCK_FILE: Final = "LOCK"
_SEGMENT: Final = re.compile(r"^segment-(\d{12})\.arrow$")
_LOCK_ATTEMPTS: Final = 5


class WalError(ConfigError):
    """A write-ahead log directory that cannot be used as it is (the message says what to do)."""


class WalBusyError(WalError):
    """Another live process holds this write-ahead log directory."""


@dataclass(frozen=True)
class Segment:
    """One segment file; ``number`` orders segments (they are numbered as they are opened)."""

    number: int
    path: Path


@dataclass(frozen=True)
class Recovery:
    """What :meth:`WriteAheadLog.recover` read back: every whole record of the leftover segments,
    in append order, and the segments themselves (delete them once the rows are safe elsewhere)."""

    table: pa.Table
    segments: list[Segment]
    torn: int = 0
    """Segments that ended in a torn record (a process died while appending to them)."""


@dataclass
class _Active:
    """The segment being appended to."""

    segment: Segment
    file: BinaryIO
    writer: pa.ipc.RecordBatchStreamWriter


def _segment_name(number: int) -> str:
    return f"segment-{number:012d}.arrow"


class WriteAheadLog:
    """Append-only segments of ``schema``-shaped batches in ``directory`` (created if missing).

    Opening takes the directory's lock (:class:`WalBusyError` if a live process holds it). Call
    :meth:`recover` before the first :meth:`append` to collect what a previous process left.
    Not thread-safe: use it from one thread.
    """

    def __init__(self, directory: str | Path, schema: pa.Schema, *, fsync: bool = False) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.schema = schema
        self.fsync = fsync
        self._lock: BinaryIO | None = self._take_lock()
        self._leftovers = self._list_segments()
        self._next = max((s.number for s in self._leftovers), default=0) + 1
        self._active: _Active | None = None
        self._sealed: list[Segment] = []
        """Segments closed by a failed append and not yet handed out by :meth:`seal`."""
        self._live: dict[int, int] = {}
        """Bytes of every segment on disk that this log is responsible for, by number."""

    def _take_lock(self) -> BinaryIO:
        # A file object, not a bare descriptor: a log dropped without close() frees the directory
        # when it is collected, as a dead process would.
        path = self.directory / LOCK_FILE
        error: OSError | None = None
        for _ in range(_LOCK_ATTEMPTS):  # a closing log may remove the lock file, or the directory
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                file = open(path, "ab")  # noqa: SIM115  (the lock is held until release() closes it)
            except FileNotFoundError as e:
                error = e
                continue
            except OSError as e:
                error = e
                break
            try:
                fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.close()
                raise WalBusyError(
                    f"the write-ahead log directory {self.directory} is in use by another live process; "
                    "give each event log its own directory", directory=str(self.directory)) from None
            try:
                if os.stat(path).st_ino == os.fstat(file.fileno()).st_ino:
                    return file
            except FileNotFoundError:
                pass
            file.close()  # unlinked by a closing log after we opened it: lock the new one
        raise WalError(f"cannot use the write-ahead log directory {self.directory}: {error}; point it at a "
                       "writable local directory", directory=str(self.directory))

    def _list_segments(self) -> list[Segment]:
        found = [(_SEGMENT.match(p.name), p) for p in self.directory.iterdir()]
        return sorted((Segment(int(m.group(1)), p) for m, p in found if m), key=lambda s: s.number)

    # --- recovery ------------------------------------------------------------------------
    def recover(self) -> Recovery:
        """Read every segment a previous process left, oldest first (once: a second call finds none).

        A torn last record is skipped (it was never acknowledged); a segment whose schema is not
        ``schema`` raises :class:`WalError`, because its rows can be neither written nor dropped
        silently.
        """
        batches: list[pa.RecordBatch] = []
        torn = 0
        for segment in self._leftovers:
            read, whole = self._read_segment(segment.path)
            batches += read
            torn += not whole
            self._live[segment.number] = segment.path.stat().st_size
        segments, self._leftovers = self._leftovers, []
        return Recovery(pa.Table.from_batches(batches, schema=self.schema), segments, torn)

    def _read_segment(self, path: Path) -> tuple[list[pa.RecordBatch], bool]:
        """The whole records of one segment, and whether it ended cleanly."""
        batches: list[pa.RecordBatch] = []
        with pa.OSFile(str(path), "rb") as source:
            size = source.size()
            if size == 0:
                return batches, True  # created, and the process died before its first record
            good = 0
            try:
                reader = pa.ipc.open_stream(source)
                if not reader.schema.equals(self.schema):
                    raise WalError(
                        f"write-ahead log segment {path} holds batches of another schema ({reader.schema.names}): "
                        "a different version of Troupe left it; write its rows with that version, or move "
                        "the file away to start without them", segment=str(path))
                for batch in reader:
                    batches.append(batch)
                    good = source.tell()
            except (pa.ArrowException, OSError) as e:
                _log.warning("write-ahead log segment %s: torn record after byte %d of %d skipped (%s)",
                             path, good, size, e)
                return batches, False
        return batches, True

    # --- writing -------------------------------------------------------------------------
    def append(self, table: pa.Table) -> None:
        """Add ``table``'s rows as one record of the open segment (opening one if needed); once
        this returns they survive the death of this process (with ``fsync``, of the machine).

        If the write fails, the segment is closed as it is (recovery stops at its torn end), the
        next append opens a new one, and the error is raised: nothing was made durable.
        """
        if self._lock is None:
            raise WalError("append() on a closed write-ahead log", directory=str(self.directory))
        if not table.schema.equals(self.schema):
            raise ValueError(f"write-ahead log batches must have the log's schema, got {table.schema.names}")
        active = self._active or self._open()
        try:
            for batch in table.combine_chunks().to_batches():
                active.writer.write_batch(batch)
            if self.fsync:
                os.fsync(active.file.fileno())
        except BaseException:
            self._sealed.append(self._close(active))
            raise
        self._live[active.segment.number] = active.file.tell()

    def _open(self) -> _Active:
        segment = Segment(self._next, self.directory / _segment_name(self._next))
        self._next += 1
        file = open(segment.path, "xb", buffering=0)  # noqa: SIM115  (the active segment, unbuffered: each record reaches the OS at once)
        try:
            writer = pa.ipc.new_stream(file, self.schema)
            if self.fsync:
                dir_fd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)  # the new file's name is durable too
                finally:
                    os.close(dir_fd)
        except BaseException:
            file.close()
            segment.path.unlink(missing_ok=True)
            raise
        self._active = _Active(segment, file, writer)
        self._live[segment.number] = 0
        return self._active

    def _close(self, active: _Active) -> Segment:
        self._active = None
        try:
            active.writer.close()  # the end-of-stream marker
        except (pa.ArrowException, OSError):
            pass  # a torn segment stays torn: recovery stops at its last whole record
        finally:
            active.file.close()
        self._live[active.segment.number] = active.segment.path.stat().st_size
        return active.segment

    def seal(self) -> list[Segment]:
        """Close the segment being written; returns it (and any closed by a failed append), for
        :meth:`delete` once their rows are safe elsewhere. Empty when nothing was appended since."""
        sealed, self._sealed = self._sealed, []
        if self._active is not None:
            sealed.append(self._close(self._active))
        return sealed

    def delete(self, segments: list[Segment]) -> None:
        """Remove sealed segments whose rows are safe elsewhere (a missing file is fine)."""
        for segment in segments:
            segment.path.unlink(missing_ok=True)
            self._live.pop(segment.number, None)

    # --- introspection and shutdown ------------------------------------------------------
    @property
    def segments(self) -> int:
        """Segments on disk that this log is responsible for (open, sealed, or recovered)."""
        return len(self._live)

    @property
    def bytes(self) -> int:
        """Bytes in those segments."""
        return sum(self._live.values())

    def close(self) -> None:
        """Close the open segment and release the directory; if no segment is left (every row is
        safe elsewhere), remove the directory too. Segments that still hold rows stay for recovery."""
        if self._active is not None:
            self._close(self._active)
        if self._lock is None:
            return
        empty = not self._live and not self._leftovers
        if empty:
            (self.directory / LOCK_FILE).unlink(missing_ok=True)
        self._lock.close()
        self._lock = None
        if empty:
            try:
                self.directory.rmdir()
            except OSError:
                pass  # something else was put there: leave it


__all__ = ["LOCK_FILE", "Recovery", "Segment", "WalBusyError", "WalError", "WriteAheadLog"]
