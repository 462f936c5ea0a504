"""The base generations of one memory namespace on storage, and why concurrent compactions lose nothing.

Any number of processes (sessions, clusters) may write and compact the same namespace at once, on a folder
or on an object store with no atomic rename. Everything on storage is immutable once written:

- a **log file** (``log/part-*.parquet``) holds the entries of one write; it is deleted only by a compaction
  whose base names it in ``covered`` and is complete (its manifest written) before the delete;
- a **base generation** (``base/<gen>/``) is complete once its ``manifest.json`` (written last, in one
  upload) exists. Its manifest names the log files it folded in (``covered``) and the generations it folded
  in (``parents``): a generation holds every entry of its parents and of its covered log files.

A reader takes the **heads** (complete generations that no complete generation names as a parent), the
newest as its primary base, the others' entries that the primary lacks (two compactions that ran at once
each folded different log files), and every log file no complete generation covers; entries are the same
by id wherever they are read. An entry is therefore always in a log file on storage or in a complete
generation that is a head or folded into one. A listing raced by a compaction (a log file gone between the
base listing and the log listing) is detected by listing the bases again and retried.

A generation that another complete generation folded in is deleted :data:`GRACE_S` after that one was
written (readers of the old one have long moved on); an incomplete one (a compactor that died) after
:data:`STALE_S`.
"""

from __future__ import annotations

import time
import uuid
from typing import Final

from pydantic import BaseModel, Field

from troupe.runtime.storage.location import Storage

GRACE_S: Final = 600.0
"""How long a generation folded into a newer one stays readable."""
STALE_S: Final = 3600.0
"""How old an incomplete generation (no manifest) is when it is removed."""


class Manifest(BaseModel):
    """``base/<gen>/manifest.json``: written last; its existence makes the generation complete."""

    n_docs: int = 0
    """Documents in the postings (current, live entries) and their mean length in tokens."""
    avg_len: float = 0.0
    rows: int = 0
    covered: list[str] = Field(default_factory=list)
    """Names of the log files whose entries this generation holds (deleted after it is complete)."""
    parents: list[str] = Field(default_factory=list)
    """The generations this one folded in (it holds all their entries)."""


def new_gen() -> str:
    """A generation's name: sorts by the time it was made."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


def gen_age_s(gen: str, now_ns: int | None = None) -> float:
    try:
        made = int(gen.split("-", 1)[0])
    except ValueError:
        return 0.0
    return ((now_ns or time.time_ns()) - made) / 1e9


class Generations:
    """The complete generations of a namespace's ``base/`` folder, their manifests read once each."""

    def __init__(self, storage: Storage, root: str) -> None:
        self.storage, self.base = storage, f"{root}/base"
        self.complete: dict[str, Manifest] = {}
        self._dirs: list[str] = []

    def scan(self) -> dict[str, Manifest]:
        """List ``base/`` and return the complete generations (a manifest is read the first time it is seen)."""
        self._dirs = self.storage.dirs(self.base)
        found: dict[str, Manifest] = {}
        for gen in self._dirs:
            if gen in self.complete:
                found[gen] = self.complete[gen]
                continue
            try:
                found[gen] = Manifest.model_validate_json(self.storage.read_bytes(f"{self.base}/{gen}/manifest.json"))
            except FileNotFoundError:
                continue  # being written (or its writer died)
        self.complete = found
        return found

    def heads(self) -> list[str]:
        """Complete generations no complete generation folded in, oldest first."""
        folded = {p for m in self.complete.values() for p in m.parents}
        return sorted(g for g in self.complete if g not in folded)

    def covered(self) -> set[str]:
        """Names of the log files some complete generation holds."""
        return {f for m in self.complete.values() for f in m.covered}

    def write(self, gen: str, manifest: Manifest) -> None:
        """Complete ``gen`` (its data files written before this)."""
        self.storage.write_bytes(f"{self.base}/{gen}/manifest.json", manifest.model_dump_json().encode())
        self.complete[gen] = manifest

    def collect(self, grace_s: float = GRACE_S, stale_s: float = STALE_S) -> list[str]:
        """Delete generations folded into one written over ``grace_s`` ago (oldest first, so that a generation
        is never left without the one that folded it in), and incomplete ones older than ``stale_s``."""
        now = time.time_ns()
        done: dict[str, float] = {}  # gen -> age of the oldest complete generation that folded it in
        for gen, m in self.complete.items():
            for p in m.parents:
                done[p] = max(done.get(p, 0.0), gen_age_s(gen, now))
        doomed = sorted(g for g, age in done.items() if age >= grace_s and g in self.complete)
        doomed += sorted(g for g in self._dirs if g not in self.complete and gen_age_s(g, now) >= stale_s)
        for gen in doomed:
            folder = f"{self.base}/{gen}"
            self.storage.delete(f"{folder}/manifest.json")  # incomplete first: no reader takes it up again
            for f in self.storage.files(folder, recursive=True):
                self.storage.delete(f)
            self.complete.pop(gen, None)
        return doomed


__all__ = ["GRACE_S", "STALE_S", "Generations", "Manifest", "gen_age_s", "new_gen"]
