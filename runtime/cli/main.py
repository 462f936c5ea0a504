"""The ``troupe`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from troupe.runtime.config import Placement
from troupe.runtime.errors import ConfigError, RunError, TroupeError

EXIT_OK = 0
EXIT_SESSION_FAILED = 1
EXIT_USAGE = 2


def _lake(value: str | None) -> str:
    """The lake to use: ``--lake``, ``$TROUPE_LAKE`` or ``./.troupe/lake``; an absolute local path
    or a ``pyarrow.fs`` URI (``s3://...``), checked here so a bad one is a usage error."""
    from troupe.runtime.eventlog.lake import default_lake
    from troupe.runtime.storage.location import normalize

    return normalize(value or default_lake())


async def _run_session(args: argparse.Namespace, team: Any, text: str) -> dict[str, Any]:
    """Run one session of ``team`` on ``text``; stream progress unless ``--json``; return the outcome."""
    from troupe.runtime.api import validate_team
    from troupe.tools.builtins import default_registry

    if args.model:
        team = team.with_model(args.model)
    validate_team(team, default_registry())  # fail before starting Ray

    async def start(troupe: Any) -> Any:
        session = await troupe.open(team, placement=args.placement, stream_tokens=not args.json)
        await session.send(text)
        return session

    return await _follow(args, start)


async def _follow(args: argparse.Namespace, start: Any) -> dict[str, Any]:
    """Connect, ``start(troupe)`` a session, show its progress (unless ``--json``) until it ends,
    and return the outcome. Ctrl-C or SIGTERM cancels it, and so does ``--timeout``: it bounds
    the whole run (starting, following and waiting for the reply), not only the wait at the end."""
    from troupe.runtime.api import Troupe

    troupe = await Troupe.connect(address=args.address, lake=_lake(args.lake), placement=getattr(args, "placement", None),
                                  logging_level=logging.WARNING)
    _cancel_on_sigterm()
    timeout = args.timeout
    opened: list[Any] = []
    try:
        try:
            async with asyncio.timeout(timeout) as deadline:
                result = await _start_and_watch(args, troupe, start, opened)
        except TimeoutError:
            if not deadline.expired():
                raise
            if not opened:
                raise RunError(f"the session did not start within {timeout:g}s (--timeout)") from None
            print(f"troupe: no result within {timeout:g}s (--timeout); the session was cancelled", file=sys.stderr)
            await opened[0].cancel(f"no result within {timeout:g}s (--timeout)")
            result = await opened[0].result(timeout=30)
    except (KeyboardInterrupt, asyncio.CancelledError):
        if opened:
            await opened[0].cancel("interrupted (Ctrl-C or SIGTERM)")
            await opened[0].result(timeout=30)
        raise
    finally:
        if opened:
            await opened[0].close()
        await troupe.shutdown()
    session = opened[0]
    return {
        "session_id": str(result.session_id), "run_id": str(result.run_id), "status": str(result.status),
        "reply": result.reply, "error": result.error, "lake": troupe.lake, "usage": result.usage.model_dump(),
        "duration_s": result.duration_s, "placement": str(session.spec.placement), "ok": result.ok,
    }


async def _start_and_watch(args: argparse.Namespace, troupe: Any, start: Any, opened: list[Any]) -> Any:
    """``start(troupe)``, show the session's events until it ends, and return its result."""
    from troupe.runtime.cli.approval_prompt import ApprovalPrompt, default_mode
    from troupe.runtime.cli.progress import ProgressPrinter

    session = await start(troupe)
    opened.append(session)
    show = None if args.json else ProgressPrinter()
    approvals = ApprovalPrompt(session, default_mode(getattr(args, "approve", None)))
    async for event in session.events():
        if show is not None:
            show(event)
        await approvals(event)
    return await session.result()


def _cancel_on_sigterm() -> None:
    """SIGTERM (``ray job stop``, a process manager) cancels the session like Ctrl-C does, so it
    ends as ``cancelled`` with every event in the lake. Installed after ``ray.init``, which sets its own."""
    task = asyncio.current_task()
    if task is not None and hasattr(signal, "SIGTERM"):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def _print_outcome(out: dict[str, Any]) -> None:
    print(out["reply"] if out["reply"] is not None else f"(no reply: {out['status']}: {out['error']})")
    print(f"\nsession {out['session_id']}  run {out['run_id']}  status {out['status']}  lake {out['lake']}",
          file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    from troupe.runtime.api import as_team

    if (args.input is None) == (args.text is None):
        raise ConfigError('give the message once: troupe run TEAM "TEXT" (or --input TEXT)')
    text = args.input if args.input is not None else args.text
    if args.server:  # a client of a running `troupe serve`: no Ray here
        from troupe.runtime.cli.remote import cmd_run

        return cmd_run(args, text)
    out = asyncio.run(_run_session(args, as_team(args.team), text))
    return _report(args, out)


def _cmd_resume(args: argparse.Namespace) -> int:
    if args.server:
        from troupe.runtime.cli.remote import cmd_resume

        return cmd_resume(args)
    from troupe.runtime.api import check_resumable
    from troupe.runtime.storage.checkpoint import CheckpointError, checkpoint_location, store_at

    location = checkpoint_location(_lake(args.lake), True)
    assert location is not None
    check_resumable(store_at(location), args.session_id)  # an ended or never-made session: say so before Ray starts

    async def start(troupe: Any) -> Any:
        session = await troupe.resume(args.session_id, stream_tokens=not args.json)
        if not session._started:  # opened but never given its input: following it would wait forever
            await session.close()
            raise CheckpointError(f"session {args.session_id} never received its input (it was opened, then its "
                                  "process stopped before anything was sent); nothing to resume: run the team again",
                                  session=args.session_id)
        return session

    return _report(args, asyncio.run(_follow(args, start)))


def _report(args: argparse.Namespace, out: dict[str, Any]) -> int:
    """Print a session's outcome (one JSON object with ``--json``); its exit status."""
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if k != "ok"}))
    else:
        _print_outcome(out)
    return EXIT_OK if out["ok"] else EXIT_SESSION_FAILED


def _cmd_sessions_list(args: argparse.Namespace) -> int:
    if args.server:
        from troupe.runtime.cli.remote import cmd_sessions

        return cmd_sessions(args)
    from troupe.runtime.eventlog.lake import format_table
    from troupe.runtime.storage.checkpoint import CheckpointStore, checkpoint_location

    location = args.checkpoints or checkpoint_location(_lake(args.lake), True)
    assert location is not None  # True asks for the lake's own store
    rows = [s.model_dump(mode="json") for s in CheckpointStore(location).summaries()]
    if args.json:
        print(json.dumps(rows))
        return EXIT_OK
    if not rows:
        print(f"no checkpointed sessions in {location}", file=sys.stderr)
        return EXIT_OK
    import pyarrow as pa

    cols = ["session_id", "status", "team", "placement", "created_at", "saved_at", "run_id"]
    print(format_table(pa.Table.from_pylist([{c: r[c] for c in cols} for r in rows])))
    resumable = [r["session_id"] for r in rows if r["status"] == "running"]
    if resumable:
        print(f"\nresume one with: troupe resume {resumable[0]} --lake {_lake(args.lake)}", file=sys.stderr)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from troupe.runtime.demo import QUESTION, answer_is_correct, demo_team
    from troupe.runtime.eventlog.lake import format_table
    from troupe.runtime.eventlog.summary import per_agent

    if not args.json:
        print(f"Q: {QUESTION}\n", file=sys.stderr)
    out = asyncio.run(_run_session(args, demo_team(), QUESTION))
    summary = per_agent(out["lake"], out["session_id"])
    out["correct"] = answer_is_correct(out["reply"])
    if args.json:
        out["summary"] = summary.to_pylist()
        print(json.dumps({k: v for k, v in out.items() if k != "ok"}, default=str))
    else:
        print(f"\nA: {out['reply'] if out['reply'] is not None else '(no reply: ' + str(out['error']) + ')'}")
        print(f"\nsession {out['session_id']}  status {out['status']}  in {out['duration_s']:.1f} s"
              f"  (answer {'contains' if out['correct'] else 'does NOT contain'} 7006652 and 17:30)")
        print(f"lake    {out['lake']}")
        print(f"\nWhat happened (DuckDB over the lake):\n{format_table(summary)}")
        print(f'\nMore: troupe events sql "select agent, type, tool, duration_ms from events '
              f"where session_id='{out['session_id']}' order by ts\" --lake {out['lake']}")
    return EXIT_OK if out["ok"] else EXIT_SESSION_FAILED


def _cmd_events_sql(args: argparse.Namespace) -> int:
    from troupe.runtime.eventlog.lake import format_table, query

    table = query(_lake(args.lake), args.query)
    text = format_table(table, args.format, max_width=None if args.format != "table" else 60)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")  # csv ends in a newline already
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from troupe.runtime.cli.remote import add_server_options

    parser = argparse.ArgumentParser(prog="troupe", description="Run teams of LLM agents as actors on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)

    def session_options(p: argparse.ArgumentParser, *, model_default: str | None, model_help: str) -> None:
        p.add_argument("--model", default=model_default, help=model_help)
        p.add_argument("--placement", choices=[p.value for p in Placement], default=None,
                       help="dedicated: one Ray actor per agent; packed: agents share pooled host actors")
        following_options(p)

    def following_options(p: argparse.ArgumentParser) -> None:
        """Where a session runs and how it is shown (``run``, ``demo``, ``resume``)."""
        p.add_argument("--lake", help="event lake: a directory or a pyarrow.fs URI such as s3://bucket/lake "
                                      "(default $TROUPE_LAKE or ./.troupe/lake)")
        p.add_argument("--address", help="Ray address HOST:PORT (default: $RAY_ADDRESS, as in a `ray job submit` "
                                         "job, else a running cluster, else a new local one)")
        p.add_argument("--timeout", type=float, default=None, help="seconds to wait for the reply")
        p.add_argument("--json", action="store_true", help="print one JSON object instead of progress")
        p.add_argument("--approve", choices=["ask", "yes", "no"], default=None,
                       help="tool calls that need approval: ask on the terminal (default when interactive), "
                            "approve all, or deny all (default when not interactive)")

    run = sub.add_parser("run", help="run a team session and print its reply")
    run.add_argument("team", help="team YAML file, or a folder with team.yaml")
    run.add_argument("text", nargs="?", help="the user's message to the team's entry agent (or --input)")
    run.add_argument("--input", "-i", help="the user's message to the team's entry agent")
    session_options(run, model_default=None,
                    model_help="model profile every agent uses (a profile of the team, 'local' or 'local:/path.gguf')")
    add_server_options(run)
    run.set_defaults(func=_cmd_run)

    resume = sub.add_parser("resume", help="continue a checkpointed session (after a crash or a cluster stop)")
    resume.add_argument("session_id", help="the session's id (troupe sessions list shows them; its "
                                           "checkpoints are in <lake>/checkpoints)")
    following_options(resume)
    add_server_options(resume)
    resume.set_defaults(func=_cmd_resume)

    sessions = sub.add_parser("sessions", help="checkpointed sessions")
    sessions_sub = sessions.add_subparsers(dest="sessions_command", required=True)
    listing = sessions_sub.add_parser("list", help="list checkpointed sessions and their status, newest first")
    listing.add_argument("--lake", help="event lake whose checkpoints to list (default $TROUPE_LAKE or ./.troupe/lake)")
    listing.add_argument("--checkpoints", help="a checkpoint store elsewhere than <lake>/checkpoints")
    listing.add_argument("--json", action="store_true", help="print a JSON list")
    add_server_options(listing)
    listing.set_defaults(func=_cmd_sessions_list)

    demo = sub.add_parser("demo", help="run the built-in three-agent demo on a question with a checkable answer")
    session_options(demo, model_default="local",
                    model_help="'local' (embedded model, default), 'scripted' (deterministic), 'local:/path.gguf', "
                               "or another profile of the demo team")
    demo.set_defaults(func=_cmd_demo)

    events = sub.add_parser("events", help="query the event lake")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    sql = events_sub.add_parser("sql", help="run DuckDB SQL over the `events` view")
    sql.add_argument("query", help='e.g. "select type, count(*) from events group by type"')
    sql.add_argument("--lake", help="event lake: a directory or a pyarrow.fs URI such as s3://bucket/lake "
                                    "(default $TROUPE_LAKE or ./.troupe/lake)")
    sql.add_argument("--format", choices=["table", "json", "csv"], default="table")
    sql.set_defaults(func=_cmd_events_sql)
    from troupe.runtime.cli.otel import add_parser as add_otel_parser

    add_otel_parser(events_sub)

    from troupe.evals.cli import add_parser as add_eval_parser
    from troupe.runtime.cli.a2a import add_parser as add_a2a_parser
    from troupe.runtime.cli.acp import add_parser as add_acp_parser
    from troupe.runtime.cli.chat import add_parser as add_chat_parser
    from troupe.runtime.cli.diff import add_parser as add_diff_parser
    from troupe.runtime.cli.keys import add_parser as add_keys_parser
    from troupe.runtime.cli.knowledge import add_parser as add_knowledge_parser
    from troupe.runtime.cli.replay import add_parser as add_replay_parser
    from troupe.runtime.cli.serve import add_parser as add_serve_parser
    from troupe.runtime.cli.workspace import add_parser as add_workspace_parser
    from troupe.runtime.mcp_server.cli import add_parser as add_mcp_parser

    add_chat_parser(sub)
    add_workspace_parser(sub)
    add_replay_parser(sub)
    add_diff_parser(sub)
    add_eval_parser(sub)
    add_mcp_parser(sub)
    add_acp_parser(sub)
    add_a2a_parser(sub)
    add_serve_parser(sub)
    add_keys_parser(sub)
    add_knowledge_parser(sub)
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
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("troupe: interrupted; the session was cancelled", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
