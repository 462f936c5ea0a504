"""``troupe run|chat|sessions list|resume --server URL``: the same commands against a running
``troupe serve``, over HTTP with an API key (``--key`` or ``$TROUPE_API_KEY``), without starting Ray.

Events arrive over the session's SSE stream and print as the local commands print them; approvals and
MCP servers' requests for input (elicitations: the same field prompts) are answered as locally
(``--approve``); Ctrl-C or ``--timeout`` cancels the session on the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from troupe.runtime.cli.approval_prompt import ApprovalPrompt, default_mode
from troupe.runtime.cli.progress import ProgressPrinter
from troupe.runtime.errors import ConfigError
from troupe.runtime.events import Event

if TYPE_CHECKING:
    from troupe.runtime.client import TroupeClient

RESULT_WAIT_S = 30.0


def add_server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", metavar="URL", help="talk to a running `troupe serve` at URL instead of starting Ray "
                                                  "(e.g. http://127.0.0.1:8321)")
    p.add_argument("--key", help="API key for --server (default $TROUPE_API_KEY; none for a keyless server on loopback)")


class _Approvals:
    """The session side of :class:`ApprovalPrompt` (approvals, and MCP elicitations for
    :mod:`troupe.runtime.cli.elicitation_prompt`), over HTTP."""

    def __init__(self, client: TroupeClient, session_id: str) -> None:
        self.client = client
        self.session_id = session_id

    async def approve(self, approval_id: str, reason: str = "") -> None:
        await self.client.approve(approval_id, reason)

    async def deny(self, approval_id: str, reason: str = "") -> None:
        await self.client.deny(approval_id, reason)

    async def elicitations(self) -> list[dict[str, Any]]:
        return [e.model_dump() for e in await self.client.elicitations(self.session_id)]

    async def answer_elicitation(self, elicitation_id: str, action: str = "accept",
                                 content: dict[str, Any] | None = None, reason: str = "") -> dict[str, Any]:
        from troupe.runtime.client import ApiError  # here: as in _client

        try:
            return (await self.client.answer_elicitation(elicitation_id, action, content, reason)).model_dump()
        except ApiError as e:
            if e.status == 422:  # the form does not fit: the prompt says why and asks again
                raise ConfigError(f"the answer does not fit the form: {e.reason}") from None
            raise


async def _watch(client: TroupeClient, sid: str, args: argparse.Namespace, *, after: int | None = None,
                 on_event: Any = None) -> None:
    show = None if getattr(args, "json", False) else ProgressPrinter()
    approvals = ApprovalPrompt(_Approvals(client, sid), default_mode(getattr(args, "approve", None)))
    async for event in client.events(sid, after=after):
        if show is not None:
            show(event)
        await approvals(event)
        if on_event is not None:
            await on_event(event)


async def _follow(client: TroupeClient, sid: str, args: argparse.Namespace, *, after: int | None = None) -> dict[str, Any]:
    """Show the session until it ends (``--timeout`` or Ctrl-C cancels it); its outcome."""
    try:
        try:
            async with asyncio.timeout(args.timeout):
                await _watch(client, sid, args, after=after)
        except TimeoutError:
            print(f"troupe: no result within {args.timeout:g}s (--timeout); the session was cancelled", file=sys.stderr)
            await client.cancel(sid)
    except (KeyboardInterrupt, asyncio.CancelledError):
        await client.cancel(sid)
        raise
    result = await client.result(sid, wait_s=RESULT_WAIT_S)
    info = await client.session(sid)
    return {"session_id": sid, "run_id": info.run_id, "status": result.status, "reply": result.output,
            "error": result.error, "user": info.user, "team": info.team, "server": client.url,
            "ok": result.status == "completed"}


def _client(args: argparse.Namespace) -> TroupeClient:
    from troupe.runtime.client import TroupeClient  # here: the CLI's other commands need no HTTP client

    return TroupeClient(args.server, key=args.key)


def _report(args: argparse.Namespace, out: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps({k: v for k, v in out.items() if k != "ok"}))
    else:
        print(out["reply"] if out["reply"] is not None else f"(no reply: {out['status']}: {out['error']})")
        print(f"\nsession {out['session_id']}  run {out['run_id']}  status {out['status']}  server {out['server']}",
              file=sys.stderr)
    return 0 if out["ok"] else 1


def cmd_run(args: argparse.Namespace, text: str) -> int:
    async def go() -> dict[str, Any]:
        async with _client(args) as client:
            info = await client.create_session(args.team, text, placement=args.placement, model=args.model,
                                               stream_tokens=not args.json)
            return await _follow(client, info.id, args)

    return _report(args, asyncio.run(go()))


def cmd_resume(args: argparse.Namespace) -> int:
    async def go() -> dict[str, Any]:
        async with _client(args) as client:
            seen = len(await client.timeline(args.session_id))  # show what happens from here on
            await client.resume(args.session_id)
            return await _follow(client, args.session_id, args, after=seen)

    return _report(args, asyncio.run(go()))


def cmd_sessions(args: argparse.Namespace) -> int:
    async def go() -> list[dict[str, Any]]:
        async with _client(args) as client:
            return [s.model_dump(mode="json") for s in await client.sessions()]

    rows = asyncio.run(go())
    if args.json:
        print(json.dumps(rows))
    elif not rows:
        print(f"no sessions of yours on {args.server}", file=sys.stderr)
    else:
        print(f"{'id':<20} {'status':<16} {'user':<12} {'team':<20} created")
        for r in rows:
            print(f"{r['id']:<20} {r['status']:<16} {r['user'] or '-':<12} {r['team']:<20} {r['created_at'][:19]}")
    return 0


async def _read_line() -> str:
    if sys.stdin.isatty():
        print("you> ", end="", file=sys.stderr, flush=True)
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def _chat(args: argparse.Namespace) -> int:
    """Each stdin line is a turn; a turn ends at its ``turn.finished`` (or the session's end)."""
    async with _client(args) as client:
        first = ""
        while not first.strip():
            first = await _read_line()
            if first == "":
                return 0
        info = await client.create_session(args.team, first.rstrip("\n"), placement=args.placement, model=args.model,
                                           stream_tokens=not args.json, conversation=True)
        turns: asyncio.Queue[Event | None] = asyncio.Queue()

        async def on_event(event: Event) -> None:
            if event.type == "turn.finished":
                await turns.put(event)

        async def watch() -> None:
            try:
                await _watch(client, info.id, args, on_event=on_event)
            finally:
                await turns.put(None)  # the session ended

        watcher = asyncio.get_running_loop().create_task(watch())
        replies: list[str] = []
        try:
            while True:
                async with asyncio.timeout(args.timeout):
                    done = await turns.get()
                if done is None:
                    break
                replies.append(done.data.get("reply", ""))
                if not args.json:
                    print(replies[-1], flush=True)
                line = await _read_line()
                while line != "" and not line.strip():
                    line = await _read_line()
                if line == "":
                    break
                await client.send(info.id, line.rstrip("\n"))
        except (KeyboardInterrupt, asyncio.CancelledError, TimeoutError):
            await client.cancel(info.id)
            raise
        finally:
            if not watcher.done():
                await client.cancel(info.id)  # end of input ends the conversation
            await asyncio.wait([watcher], timeout=30)
            watcher.cancel()
        result = await client.result(info.id, wait_s=RESULT_WAIT_S)
    ok = result.status == "completed" or (result.status == "cancelled" and bool(replies))
    if args.json:
        print(json.dumps({"session_id": info.id, "status": result.status, "replies": replies, "error": result.error}))
    else:
        print(f"\nsession {info.id}  status {result.status}  turns {len(replies)}  server {args.server}", file=sys.stderr)
    return 0 if ok else 1


def cmd_chat(args: argparse.Namespace) -> int:
    return asyncio.run(_chat(args))


__all__ = ["add_server_options", "cmd_chat", "cmd_resume", "cmd_run", "cmd_sessions"]
