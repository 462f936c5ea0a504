"""``troupe chat TEAM``: a multi-turn conversation with a team on the terminal (or a pipe).

Each line read from stdin is the user's next turn; the entry agent's reply is printed to stdout
(progress, tokens included, streams to stderr as in ``troupe run``). End of input (Ctrl-D) ends
the conversation; its summary goes to stderr, or the whole result to stdout with ``--json``. Ctrl-C
while a turn runs cancels that turn (the conversation goes on, the cancelled turn in its context); a
second Ctrl-C ends the conversation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from troupe.runtime.config import Placement
from troupe.runtime.errors import ConfigError


async def _read_line() -> str:
    if sys.stdin.isatty():
        print("you> ", end="", file=sys.stderr, flush=True)
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def _show(session: Any, quiet: bool) -> None:
    from troupe.runtime.cli.progress import ProgressPrinter

    show = None if quiet else ProgressPrinter()
    async for event in session.events():
        if show is not None:
            show(event)


async def _turn_result(session: Any, timeout: float | None) -> Any:
    """The turn's result; Ctrl-C while it runs cancels the turn (``Session.cancel_turn``), a second one quits."""
    loop, main = asyncio.get_running_loop(), asyncio.current_task()
    cancelling: list[asyncio.Task[Any]] = []

    def interrupted() -> None:
        if cancelling and main is not None:
            main.cancel()  # the second Ctrl-C: end the conversation
            return
        print("\n(cancelling the turn; Ctrl-C again to quit)", file=sys.stderr, flush=True)
        cancelling.append(loop.create_task(session.cancel_turn("interrupted (Ctrl-C)")))

    before = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, interrupted)
    except (NotImplementedError, RuntimeError, ValueError):  # no signals here (not the main thread)
        return await session.result(timeout=timeout)
    try:
        result = await session.result(timeout=timeout)
        if cancelling:
            await cancelling[0]
        return result
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, before)


async def _chat(args: argparse.Namespace) -> int:
    from troupe.runtime.api import Troupe, as_team, validate_team
    from troupe.runtime.session.supervisor import SessionStatus
    from troupe.tools.builtins import default_registry

    team = as_team(args.team)
    if args.model:
        team = team.with_model(args.model)
    if team.user is not None:
        raise ConfigError("this team has a simulated user, which talks for you: use troupe run")
    validate_team(team, default_registry())
    troupe = await Troupe.start(local=args.local, lake=args.lake, address=args.address, placement=args.placement)
    session = await troupe.open(team, placement=args.placement, stream_tokens=not args.json, conversation=True)
    watcher = asyncio.get_running_loop().create_task(_show(session, args.json))
    result = None
    try:
        while (line := await _read_line()) != "":
            text = line.rstrip("\n")
            if not text.strip():
                continue
            await session.send(text)
            result = await _turn_result(session, args.timeout)
            if result.status is not SessionStatus.RUNNING:
                break
            if result.reply is None:  # cancelled (Ctrl-C)
                print(f"({result.error})", file=sys.stderr, flush=True)
            elif not args.json:
                print(result.reply, flush=True)
        if result is None or result.status is SessionStatus.RUNNING:
            result = await session.end()
    except (KeyboardInterrupt, asyncio.CancelledError, TimeoutError):
        await session.cancel("interrupted (Ctrl-C, SIGTERM or --timeout)")
        raise
    finally:
        await asyncio.wait([watcher], timeout=5)
        watcher.cancel()
        await session.close()
        await troupe.shutdown()
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        if result.status is not SessionStatus.COMPLETED:
            print(f"(the conversation ended: {result.status}: {result.error})", flush=True)
        print(f"\nsession {result.session_id}  run {result.run_id}  status {result.status}  "
              f"turns {len(result.turns)}  lake {troupe.lake}", file=sys.stderr)
    return 0 if result.ok else 1


def _cmd_chat(args: argparse.Namespace) -> int:
    if args.server:  # a client of a running `troupe serve`: no Ray here
        from troupe.runtime.cli.remote import cmd_chat

        return cmd_chat(args)
    try:
        return asyncio.run(_chat(args))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C outside a turn, or twice in one
        return 130


def add_parser(sub: Any) -> None:
    chat = sub.add_parser("chat", help="talk with a team over many turns (a line per turn; Ctrl-D ends)")
    chat.add_argument("team", help="team YAML file, or a folder with team.yaml")
    chat.add_argument("--model", help="model profile every agent uses (a profile of the team, 'local' or 'local:/path.gguf')")
    chat.add_argument("--placement", choices=[p.value for p in Placement], default=None,
                      help="dedicated: one Ray actor per agent; packed: agents share pooled host actors")
    chat.add_argument("--local", action="store_true", help="run in this process, without Ray")
    chat.add_argument("--lake", help="event lake: a directory or a pyarrow.fs URI (default $TROUPE_LAKE or ./.troupe/lake)")
    chat.add_argument("--address", help="Ray address HOST:PORT (default: $RAY_ADDRESS, else a running cluster, else a new local one)")
    chat.add_argument("--timeout", type=float, default=None, help="seconds to wait for each reply")
    chat.add_argument("--json", action="store_true", help="no progress; print the whole conversation as JSON at the end")
    from troupe.runtime.cli.remote import add_server_options

    add_server_options(chat)
    chat.set_defaults(func=_cmd_chat)


__all__ = ["add_parser"]
