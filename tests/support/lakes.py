"""Reading a test's lake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from troupe.runtime.eventlog.lake import query


def rows(lake: Path, sql: str) -> list[dict[str, Any]]:
    """``sql`` over the lake's ``events`` view, as a list of dicts."""
    return query(lake, sql).to_pylist()
