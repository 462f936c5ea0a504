"""A storage location: a ``pyarrow.fs`` filesystem and a base directory on it.

The lake (and everything kept beside it) lives at a *location*: a local path, made absolute because
it is handed to actors whose working directory may differ, or any URI that
``pyarrow.fs.FileSystem.from_uri`` understands::

    /data/lake   ./lake   ~/lake   file:///data/lake
    s3://bucket/prefix?region=eu-west-1
    s3://KEY:SECRET@bucket/prefix?endpoint_override=127.0.0.1:9000&scheme=http&region=us-east-1
    gs://bucket/prefix   abfs://container@account.dfs.core.windows.net/prefix   hdfs://host:8020/prefix

Files under a location are named by relative POSIX paths (``events/date=.../part-x.parquet``).
Writes are atomic-ish: where the filesystem can rename (local disk, HDFS) a file is written under a
dot-prefixed ``.tmp`` name beside its target and renamed into place; on object stores (S3, GCS,
Azure) it is encoded in memory and put in one upload, and an object appears whole or not at all.
Listings skip dot-prefixed names, so a reader never sees a file being written.

Credentials are never Troupe's business: S3 reads ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
(and ``~/.aws``, instance roles) in the process that opens the location, or takes them in the URI
(``s3://KEY:SECRET@bucket/...``, with ``/`` in a secret written ``%2F``). Error messages show
locations with the secret masked.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from troupe.runtime.errors import ConfigError

OBJECT_STORES: Final = frozenset({"s3", "gcs", "abfs"})
"""``FileSystem.type_name`` of stores whose uploads are atomic and which have no real rename."""

_URI: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ALMOST_URI: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(?!//)")
_HINT: Final = (
    "use a local directory or a pyarrow.fs URI, e.g. file:///abs/dir, s3://bucket/prefix?region=us-east-1 "
    "(S3-compatible servers: add endpoint_override=HOST:PORT&scheme=http; credentials come from "
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or s3://KEY:SECRET@bucket/prefix), gs://bucket/prefix"
)

Ref = Path | str
"""A file or directory for people and other libraries: a ``Path`` on local disk, else a full URI."""


class LakeLocationError(ConfigError):
    """A lake location that cannot be opened (unknown scheme, bad query parameter, no bucket...)."""


def is_uri(location: str | Path) -> bool:
    """Whether ``location`` is written as a URI (``scheme://...``) rather than a local path."""
    return isinstance(location, str) and bool(_URI.match(location))


def redact(location: str) -> str:
    """``location`` with the password of a URI's user info masked (for messages and logs)."""
    if not is_uri(location):
        return location
    parts = urlsplit(location)
    if parts.password is None:
        return location
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


@dataclass(frozen=True, eq=False)
class Storage:
    """One location: ``fs`` with ``base`` (its path on ``fs``), and ``location`` (the string that
    names it: an absolute local path, or the URI as given). Methods take paths relative to ``base``."""

    fs: pafs.FileSystem
    base: str
    location: str

    @property
    def local(self) -> bool:
        """On this machine's disk (DuckDB can glob the files itself)."""
        return self.fs.type_name == "local"

    @property
    def object_store(self) -> bool:
        return self.fs.type_name in OBJECT_STORES

    def __str__(self) -> str:
        return redact(self.location)

    def path(self, rel: str = "") -> str:
        """The path of ``rel`` on :attr:`fs`."""
        rel = rel.strip("/")
        return f"{self.base.rstrip('/')}/{rel}" if rel else self.base

    def ref(self, rel: str = "") -> Ref:
        """``rel`` as a ``Path`` (local) or a URI that ``FileSystem.from_uri`` opens (elsewhere)."""
        if self.local:
            return Path(self.path(rel))
        parts = urlsplit(self.location)
        path = parts.path.rstrip("/") + ("/" + quote(rel.strip("/"), safe="/=") if rel else "")
        return urlunsplit(parts._replace(path=path))

    def check(self) -> None:
        """On object stores, fail with :class:`LakeLocationError` unless the bucket exists and can
        be reached (a typo would otherwise look like an empty lake, and writes would fail later).
        Costs one request; directories (local, HDFS) are created by the first write instead."""
        if not self.object_store:
            return
        bucket = self.base.split("/", 1)[0]
        try:
            info = self.fs.get_file_info(bucket)
        except OSError as e:
            raise LakeLocationError(f"cannot reach the lake at {self}: {_first_line(e)}; check the endpoint, "
                                    "region and credentials", location=str(self)) from None
        if info.type == pafs.FileType.NotFound:
            raise LakeLocationError(f"the bucket {bucket!r} of the lake at {self} does not exist (or these "
                                    "credentials cannot see it): create it or fix the name", location=str(self))

    # --- reading ---------------------------------------------------------------------------
    def is_file(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type == pafs.FileType.File

    def file_infos(self, rel: str = "", *, suffix: str = "", recursive: bool = False) -> list[pafs.FileInfo]:
        """Files under ``rel`` whose names end with ``suffix`` (dot-prefixed names skipped), sorted
        by path; empty when ``rel`` does not exist. On object stores one (paginated) listing, not
        one request per directory."""
        selector = pafs.FileSelector(self.path(rel), recursive=recursive, allow_not_found=True)
        infos = [
            i for i in self.fs.get_file_info(selector)
            if i.type == pafs.FileType.File and i.base_name.endswith(suffix) and not i.base_name.startswith(".")
        ]
        return sorted(infos, key=lambda i: i.path)

    def files(self, rel: str = "", *, suffix: str = "", recursive: bool = False) -> list[str]:
        """Like :meth:`file_infos`, as paths relative to the location."""
        cut = len(self.base.rstrip("/")) + 1
        return [i.path[cut:] for i in self.file_infos(rel, suffix=suffix, recursive=recursive)]

    def dirs(self, rel: str = "") -> list[str]:
        """Names of the directories right under ``rel`` (on object stores: the common prefixes), sorted."""
        selector = pafs.FileSelector(self.path(rel), recursive=False, allow_not_found=True)
        return sorted(i.base_name for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.Directory)

    def read_bytes(self, rel: str) -> bytes:
        """A file's content; ``FileNotFoundError`` when it does not exist (or was deleted while being read)."""
        with self._found(rel), self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def read_table(self, rel: str, columns: Sequence[str] | None = None) -> pa.Table:
        """One Parquet file as a table; ``FileNotFoundError`` as :meth:`read_bytes`."""
        if self.local:
            return pq.read_table(self.path(rel), columns=columns)
        with self._found(rel):
            return pq.read_table(self.path(rel), columns=columns, filesystem=self.fs)

    @contextmanager
    def _found(self, rel: str) -> Iterator[None]:
        """A file deleted between the request for its size and the one for its bytes (another process removed
        it) fails on an object store as a plain ``OSError`` (S3: ``NO_SUCH_KEY`` / ``RESOURCE_NOT_FOUND`` during
        GetObject), not ``FileNotFoundError``: raise that when the file is gone, so callers that expect a
        file to vanish (a memory log file folded in by a compaction) can tell it from a failing store."""
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as e:
            if self.is_file(rel):
                raise
            raise FileNotFoundError(errno.ENOENT, f"deleted while being read: {e}", self.path(rel)) from e

    def dataset(self, files: Sequence[pafs.FileInfo], base_rel: str, *, schema: pa.Schema,
                partitioning: ds.Partitioning | None = None) -> ds.Dataset:
        """A Parquet dataset of ``files`` (from :meth:`file_infos`) in ``schema``, hive keys read from their
        paths below ``base_rel``: what DuckDB scans where it cannot read the files itself."""
        return ds.dataset(list(files), schema=schema, format="parquet", filesystem=self.fs,
                          partitioning=partitioning, partition_base_dir=self.path(base_rel))

    # --- writing ---------------------------------------------------------------------------
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Create or replace a file atomically (see the module docstring)."""
        if self.object_store:
            self._upload(rel, data)
        else:
            self._replace(rel, lambda tmp: self._upload_path(tmp, data))

    def write_parquet(self, rel_dir: str, table: pa.Table, **options: Any) -> str:
        """Write ``table`` as a new ``part-<uuid>.parquet`` in ``rel_dir`` (``options`` go to
        ``pq.write_table``); returns the new file's relative path. The file appears whole or not at all."""
        rel = _join(rel_dir, f"part-{uuid.uuid4().hex}.parquet")
        if self.object_store:
            sink = pa.BufferOutputStream()  # encoded first: a failed encoding uploads nothing
            pq.write_table(table, sink, **options)
            self._upload(rel, sink.getvalue())
        elif self.local:
            self._replace(rel, lambda tmp: pq.write_table(table, tmp, **options))
        else:
            self._replace(rel, lambda tmp: pq.write_table(table, tmp, filesystem=self.fs, **options))
        return rel

    def delete(self, rel: str) -> None:
        """Remove a file; a missing one is fine."""
        with suppress(FileNotFoundError):
            self.fs.delete_file(self.path(rel))

    def _upload(self, rel: str, data: bytes | pa.Buffer) -> None:
        self._upload_path(self.path(rel), data)

    def _upload_path(self, path: str, data: bytes | pa.Buffer) -> None:
        with self.fs.open_output_stream(path) as out:
            out.write(data)

    def _replace(self, rel: str, write: Callable[[str], object]) -> None:
        """Write through a dot-prefixed temporary file beside the target, then rename it into place."""
        target = self.path(rel)
        parent, name = target.rsplit("/", 1)
        tmp = f"{parent}/.{name}.{uuid.uuid4().hex}.tmp"
        if self.local:
            os.makedirs(parent, exist_ok=True)
        else:
            self.fs.create_dir(parent, recursive=True)
        try:
            write(tmp)
            if self.local:
                os.replace(tmp, target)
            else:
                self.fs.move(tmp, target)
        except BaseException:
            with suppress(OSError):
                self.fs.delete_file(tmp)
            raise


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _local(location: str | Path) -> Storage:
    path = str(Path(location).expanduser().resolve())
    return Storage(pafs.LocalFileSystem(), path, path)


@functools.lru_cache(maxsize=32)
def _from_uri(location: str) -> Storage:
    scheme = location.split("://", 1)[0].lower()
    try:
        fs, base = pafs.FileSystem.from_uri(location)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise LakeLocationError(f"lake location {redact(location)!r} cannot be opened: {_first_line(e)}; {_HINT}",
                                location=redact(location)) from None
    if fs.type_name in OBJECT_STORES and not base.strip("/"):
        raise LakeLocationError(f"lake location {redact(location)!r} names no bucket: write "
                                f"{scheme}://BUCKET/PREFIX; {_HINT}", location=redact(location))
    return Storage(fs, base.rstrip("/") if fs.type_name != "local" else base, location)


def open_storage(location: str | Path | Storage) -> Storage:
    """The storage at ``location`` (a :class:`Storage` is returned as is). URIs are opened once per
    process and cached; :class:`LakeLocationError` says what is wrong with a bad one."""
    if isinstance(location, Storage):
        return location
    if isinstance(location, str) and is_uri(location):
        return _from_uri(location)
    text = str(location)
    if not text.strip():
        raise LakeLocationError(f"the lake location is empty; {_HINT}")
    almost = _ALMOST_URI.match(text)  # also a URI that became a Path ("s3://b" -> "s3:/b")
    if almost:
        raise LakeLocationError(f"lake location {redact(text)!r} looks like a URI without '//': write "
                                f"{almost.group(1)}://... (or ./{text} for a local directory); {_HINT}",
                                location=text)
    return _local(location)


def normalize(location: str | Path | Storage) -> str:
    """The string that names a location everywhere (actor arguments, ``Troupe.lake``): an absolute
    local path, or the URI as given, after checking that it opens."""
    return open_storage(location).location


__all__ = [
    "OBJECT_STORES",
    "LakeLocationError",
    "Ref",
    "Storage",
    "is_uri",
    "normalize",
    "open_storage",
    "redact",
]
