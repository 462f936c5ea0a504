"""Diff two recorded sessions (a replay, a fork, two samples of a sweep) from the lake.

    diff = diff_sessions(lake, "s-1a2b...", "s-3c4d...")
    diff.first_divergence        # the first event where they differ, with both sides
    diff.agents                  # per-agent usage on each side and the delta (B - A)
    diff.tool_calls              # tool calls with other arguments or results, or on one side only
    diff.table()                 # the aligned timeline as an Arrow table
    print(diff.text())           # or diff.model_dump_json(), diff.html()

``troupe diff A B [--json] [--html FILE]`` prints the same. See docs/replay.md.
"""

from __future__ import annotations

from pathlib import Path

from troupe.runtime.sessiondiff.align import build_diff
from troupe.runtime.sessiondiff.model import (
    AgentDelta,
    EventView,
    ReplyDiff,
    SessionDiff,
    SideInfo,
    Step,
    ToolCallDiff,
    ToolCallView,
    Usage,
)
from troupe.runtime.sessiondiff.records import UnknownSessionError, load
from troupe.runtime.storage.location import Storage


def diff_sessions(lake: str | Path | Storage, session_a: str, session_b: str) -> SessionDiff:
    """Compare two sessions of the lake (ids, or unique id prefixes); :class:`UnknownSessionError`
    when one is not there."""
    info_a, events_a = load(lake, session_a)
    info_b, events_b = load(lake, session_b)
    return build_diff(info_a, events_a, info_b, events_b)


__all__ = [
    "AgentDelta",
    "EventView",
    "ReplyDiff",
    "SessionDiff",
    "SideInfo",
    "Step",
    "ToolCallDiff",
    "ToolCallView",
    "UnknownSessionError",
    "Usage",
    "diff_sessions",
]
