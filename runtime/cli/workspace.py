"""``troupe workspace log|diff|rollback SESSION``: a session's workspace snapshots, read from the lake.

    troupe workspace log S                      every snapshot: id, when, why, files, bytes (new)
    troupe workspace diff S [SNAPSHOT] [--to B] from SNAPSHOT (default: the latest) to B (default: the folder now)
    troupe workspace rollback S [--to SNAPSHOT] restore the folder (default: the latest snapshot that differs
                                                from it now); its state before is snapshotted first

No Ray is needed: snapshots are in ``<lake>/workspaces`` and the folder is on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _lake(value: str | None) -> str:
    from troupe.runtime.eventlog.lake import default_lake
    from troupe.runtime.storage.location import normalize

    return normalize(value or default_lake())


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _cmd_log(args: argparse.Namespace) -> int:
    from troupe.runtime.session.workspace_history import log_of

    snaps = log_of(_lake(args.lake), args.session_id)
    if args.json:
        print(json.dumps([s.model_dump(mode="json", exclude={"files"}) | {"files": len(s.files)} for s in snaps], indent=2))
        return 0
    if not snaps:
        print(f"session {args.session_id} has no workspace snapshots", file=sys.stderr)
        return 1
    for s in snaps:
        print(f"{s.id:<16} {s.created_at:%Y-%m-%d %H:%M:%S}  {len(s.files):>6} files  {_size(s.bytes_total):>9}  "
              f"new {_size(s.bytes_new):>9}  {s.reason}")
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from troupe.runtime.session.workspace_history import diff_of

    change = diff_of(_lake(args.lake), args.session_id, args.snapshot, args.to)
    if args.json:
        print(change.model_dump_json(indent=2))
    else:
        for line in change.lines():
            print(line)
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from troupe.runtime.session.workspace_history import rollback

    result = rollback(_lake(args.lake), args.session_id, args.to, by="cli", timeout_s=args.wait)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        d = result.diff
        print(f"{result.folder}: rolled back to {result.to} ({len(d.added)} added, {len(d.removed)} removed, "
              f"{len(d.changed)} changed); the state it replaced is snapshot {result.replaced}")
    return 0


def add_parser(sub: Any) -> None:
    ws = sub.add_parser("workspace", help="a session's workspace snapshots: log, diff, rollback")
    ws_sub = ws.add_subparsers(dest="workspace_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("session_id", help="the session's id")
        p.add_argument("--lake", help="event lake: a directory or a pyarrow.fs URI (default $TROUPE_LAKE or ./.troupe/lake)")
        p.add_argument("--json", action="store_true", help="print JSON")

    log = ws_sub.add_parser("log", help="list the session's workspace snapshots, oldest first")
    common(log)
    log.set_defaults(func=_cmd_log)
    diff = ws_sub.add_parser("diff", help="what changed between two snapshots, or since one (A added, D removed, M changed)")
    common(diff)
    diff.add_argument("snapshot", nargs="?", help="from this snapshot (id, number or prefix; default: the latest)")
    diff.add_argument("--to", help="to this snapshot (default: the folder as it is now)")
    diff.set_defaults(func=_cmd_diff)
    back = ws_sub.add_parser("rollback", help="restore the session's folder to a snapshot (recorded as an event)")
    common(back)
    back.add_argument("--to", help="the snapshot (id, number or prefix; default: the latest that differs from the folder)")
    back.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a writing tool call to end")
    back.set_defaults(func=_cmd_rollback)


__all__ = ["add_parser"]
