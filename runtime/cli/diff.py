"""``troupe diff SESSION_A SESSION_B``: two recorded sessions side by side, read from the lake.

    troupe diff A B                 header, per-agent table, first divergence, aligned timelines
    troupe diff A B --json          the SessionDiff model as JSON
    troupe diff A B --html d.html   a self-contained page (two aligned columns, divergences marked)

No Ray is needed. The exit status is 0 whether or not the sessions differ (``--fail-on-diff``: 1
when they do), 2 for an unknown session.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any


def _lake(value: str | None) -> str:
    from troupe.runtime.eventlog.lake import default_lake
    from troupe.runtime.storage.location import normalize

    return normalize(value or default_lake())


def _cmd_diff(args: argparse.Namespace) -> int:
    from troupe.runtime.sessiondiff import diff_sessions

    diff = diff_sessions(_lake(args.lake), args.session_a, args.session_b)
    if args.html:
        path = Path(args.html)
        path.write_text(diff.html(), encoding="utf-8")
        if not args.json:
            print(f"wrote {path}", file=sys.stderr if args.quiet else sys.stdout)
    if args.json:
        print(diff.model_dump_json(indent=2))
    elif not args.quiet:
        width = args.width or max(shutil.get_terminal_size((150, 40)).columns, 80)
        sys.stdout.write(diff.text(width=width, full=args.full))
    return 1 if args.fail_on_diff and not diff.identical else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("diff", help="compare two recorded sessions (a replay, a fork, two samples): aligned "
                                    "timelines, the first divergence, token and latency deltas, differing tool calls")
    p.add_argument("session_a", help="the first session's id (or a unique prefix of it)")
    p.add_argument("session_b", help="the second session's id (or a unique prefix of it)")
    p.add_argument("--lake", help="event lake: a directory or a pyarrow.fs URI (default $TROUPE_LAKE or ./.troupe/lake)")
    p.add_argument("--json", action="store_true", help="print the diff as JSON")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page to FILE")
    p.add_argument("--full", action="store_true", help="show every aligned event (long runs of equal ones are folded)")
    p.add_argument("--width", type=int, default=None, help="text width (default: the terminal's)")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing (with --html or --fail-on-diff)")
    p.add_argument("--fail-on-diff", action="store_true", help="exit 1 when the sessions differ")
    p.set_defaults(func=_cmd_diff)


__all__ = ["add_parser"]
