"""``troupe replay SESSION`` and ``troupe fork SESSION --at ...``: a recorded session again, from the lake.

    troupe replay S [--lake L] [--json]            zero model calls, zero tool side effects; the first divergence
    troupe fork S --at EVENT_ID|TURN [--model P] [--set path=value ...] [--tool-result CALL_ID=text ...] [--input T]

Both run on the placement asked for (``--placement``; Ray as ``troupe run`` uses it). See docs/replay.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any

from troupe.runtime.errors import ConfigError


def _lake(value: str | None) -> str:
    from troupe.runtime.eventlog.lake import default_lake
    from troupe.runtime.storage.location import normalize

    return normalize(value or default_lake())


def _pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} takes KEY=VALUE, got {item!r}")
        out[key] = value
    return out


async def _with_troupe(args: argparse.Namespace, work: Any) -> Any:
    from troupe.runtime.api import Troupe

    troupe = await Troupe.connect(address=args.address, lake=_lake(args.lake), placement=args.placement,
                                  logging_level=logging.WARNING)
    try:
        return await work(troupe)
    finally:
        await troupe.shutdown()


def _cmd_replay(args: argparse.Namespace) -> int:
    source = _lake(args.source_lake) if args.source_lake else None
    report = asyncio.run(_with_troupe(args, lambda t: t.replay(args.session_id, lake=source, timeout=args.timeout)))
    print(report.model_dump_json(indent=2) if args.json else report.summary())
    return 0 if report.identical else 1


def _cmd_fork(args: argparse.Namespace) -> int:
    sets = _pairs(args.set, "--set")
    results = _pairs(args.tool_result, "--tool-result")
    if args.at is None and not results:
        raise ConfigError("troupe fork needs --at EVENT_ID|TURN (or a --tool-result, whose result is the fork point)")

    async def work(troupe: Any) -> Any:
        return await troupe.fork(args.session_id, at=args.at, model=args.model, set=sets, tool_results=results,
                                 input=args.input, timeout=args.timeout)

    result = asyncio.run(_with_troupe(args, work))
    if args.json:
        print(json.dumps(result.model_dump(mode="json")))
    else:
        print(f"fork {result.session_id} of {args.session_id}: {result.status}")
        print(result.reply if result.reply is not None else f"error: {result.error}")
    return 0 if result.ok else 1


def add_parser(sub: Any) -> None:
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("session_id", help="the recorded session's id")
        p.add_argument("--lake", help="event lake: a directory or a pyarrow.fs URI (default $TROUPE_LAKE or ./.troupe/lake)")
        p.add_argument("--address", help="Ray address (default: a running cluster, else a new local one)")
        p.add_argument("--placement", choices=["dedicated", "packed"], default=None, help="where the actors run")
        p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each reply")
        p.add_argument("--json", action="store_true", help="print one JSON object")

    replay = sub.add_parser("replay", help="run a recorded session again with zero model calls and zero tool side "
                                           "effects, and report the first divergence")
    common(replay)
    replay.add_argument("--source-lake", help="read the record from this lake (default: --lake)")
    replay.set_defaults(func=_cmd_replay)

    fork = sub.add_parser("fork", help="replay a recorded session up to a point, then go on live with changes")
    common(fork)
    fork.add_argument("--at", help="the fork point: an event id of the session, a user turn number, or a named step "
                                       "(after-first-tool-result, after-tool-result:N, before-llm:N, turn:N)")
    fork.add_argument("--model", help="the model profile every agent uses after the fork point")
    fork.add_argument("--set", action="append", metavar="PATH=VALUE",
                      help="change the recorded team config (agents.0.instructions=..., agents.lead.tools=[...])")
    fork.add_argument("--tool-result", action="append", metavar="CALL_ID=TEXT",
                      help="replace a recorded tool result (the fork point is that result)")
    fork.add_argument("--input", help="the user's message of the turn the fork starts")
    fork.set_defaults(func=_cmd_fork)


__all__ = ["add_parser"]
