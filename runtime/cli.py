"""The ``troupe`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from runtime.config import Placement
from runtime.errors import ConfigError, RunError, TroupeError

EXIT_OK = 0
EXIT_SESSION_FAILED = 1
EXIT_USAGE = 2


def _lake(value: str | None) -> str:
    from runtime.lake import default_lake

    return str(value or default_lake())


async def _run_session(args: argparse.Namespace) -> int:
    from runtime.api import Troupe, as_team, validate_team
    from runtime.progress import ProgressPrinter
    from tools.builtins import default_registry

    team = as_team(args.team)
    if args.model:
        team = team.with_model(args.model)
    validate_team(team, default_registry())  # fail before starting Ray
    troupe = await Troupe.connect(address=args.address, lake=_lake(args.lake), placement=args.placement,
                                  logging_level=logging.WARNING)
    session = None
    try:
        session = await troupe.open(team, placement=args.placement, stream_tokens=not args.json)
        await session.send(args.input)
        if not args.json:
            show = ProgressPrinter()
            async for event in session.events():
                show(event)
        result = await session.result(timeout=args.timeout)
    except (KeyboardInterrupt, asyncio.CancelledError):
        if session is not None:
            await session.cancel("interrupted (Ctrl-C)")
            result = await session.result(timeout=30)
        raise
    finally:
        if session is not None:
            await session.close()
        await troupe.shutdown()
    out: dict[str, Any] = {
        "session_id": str(result.session_id), "run_id": str(result.run_id), "status": str(result.status),
        "reply": result.reply, "error": result.error, "lake": troupe.lake, "usage": result.usage.model_dump(),
        "duration_s": result.duration_s, "placement": str(session.spec.placement),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(result.reply if result.reply is not None else f"(no reply: {result.status}: {result.error})")
        print(f"\nsession {out['session_id']}  run {out['run_id']}  status {out['status']}  lake {out['lake']}",
              file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_SESSION_FAILED


def _cmd_run(args: argparse.Namespace) -> int:
    return asyncio.run(_run_session(args))


def _cmd_events_sql(args: argparse.Namespace) -> int:
    from runtime.lake import format_table, query

    table = query(_lake(args.lake), args.query)
    print(format_table(table, args.format, max_width=None if args.format != "table" else 60))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="troupe", description="Run teams of LLM agents as actors on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a team session and print its reply")
    run.add_argument("team", help="team YAML file, or a folder with team.yaml")
    run.add_argument("--input", "-i", required=True, help="the user's message to the team's entry agent")
    run.add_argument("--model", help="model profile every agent uses (overrides the team file)")
    run.add_argument("--placement", choices=[p.value for p in Placement], default=None,
                     help="dedicated: one Ray actor per agent; packed: agents share pooled host actors")
    run.add_argument("--lake", help="event lake directory (default $TROUPE_LAKE or ./.troupe/lake)")
    run.add_argument("--address", help="Ray address (default: a running cluster, else a new local one)")
    run.add_argument("--timeout", type=float, default=None, help="seconds to wait for the reply")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of progress")
    run.set_defaults(func=_cmd_run)

    events = sub.add_parser("events", help="query the event lake")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    sql = events_sub.add_parser("sql", help="run DuckDB SQL over the `events` view")
    sql.add_argument("query", help='e.g. "select type, count(*) from events group by type"')
    sql.add_argument("--lake", help="event lake directory (default $TROUPE_LAKE or ./.troupe/lake)")
    sql.add_argument("--format", choices=["table", "json", "csv"], default="table")
    sql.set_defaults(func=_cmd_events_sql)
    return parser


def _choose_auth_mode(address: str | None) -> None:
    """Joining a running cluster with token auth (Ray's default) needs RAY_AUTH_MODE=token, read
    when ``ray`` is imported; pick it when the user chose no mode and a token is at hand."""
    if not address or address == "local" or "RAY_AUTH_MODE" in os.environ:
        return
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.exists(token_file):
        os.environ["RAY_AUTH_MODE"] = "token"


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    args = build_parser().parse_args(argv)
    _choose_auth_mode(getattr(args, "address", None) or os.environ.get("RAY_ADDRESS"))
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"troupe: error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except RunError as e:
        print(f"troupe: run failed: {e.message}", file=sys.stderr)
        return EXIT_SESSION_FAILED
    except TroupeError as e:
        print(f"troupe: error: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("troupe: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
