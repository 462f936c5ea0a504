"""Garbage-collector settings for Troupe's long-lived actor processes.

A host actor allocates and frees many small objects per session (events, envelopes, models) and
lives for the whole run. With CPython's defaults (a young collection every 700 allocations, and
full collections that walk every object, the imported modules included) the collector cost a host
about a sixth of its CPU in the sweep benchmark. Freezing what exists once the actor has started
(imports, its own setup) takes those objects out of every later collection, and a larger young
generation makes collections rarer; reference cycles are still collected, just in bigger batches.
"""

from __future__ import annotations

import gc
import os
from typing import Final

YOUNG_THRESHOLD: Final = 20_000
"""Allocations between young collections (CPython's default is 700)."""

_tuned = False


def tune_gc() -> bool:
    """Apply the settings once per process; ``TROUPE_GC=default`` keeps CPython's. Returns whether
    they were applied now."""
    global _tuned
    if _tuned or os.environ.get("TROUPE_GC", "").lower() == "default":
        return False
    _tuned = True
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    return True


__all__ = ["YOUNG_THRESHOLD", "tune_gc"]
