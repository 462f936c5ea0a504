"""``troupe a2a serve TEAM``: publish a team as an A2A agent (docs/a2a.md)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from troupe.runtime.config import Placement
from troupe.runtime.errors import ConfigError


def _serve(args: argparse.Namespace) -> int:
    try:
        from troupe.runtime.a2a.server import A2AOptions, serve
    except ImportError as e:
        raise ConfigError(f"troupe a2a needs the a2a-sdk package ({e}): pip install 'troupe-runtime[a2a]'") from e
    options = A2AOptions(team=args.team, host=args.host, port=args.port, lake=args.lake, local=args.local,
                         address=args.address, placement=args.placement, model=args.model, public_url=args.public_url,
                         turn_timeout_s=args.turn_timeout)
    try:
        asyncio.run(serve(options))
    except KeyboardInterrupt:
        pass
    return 0


def add_parser(sub: Any) -> None:
    a2a = sub.add_parser("a2a", help="the Agent2Agent protocol: publish a team as an A2A agent")
    a2a_sub = a2a.add_subparsers(dest="a2a_command", required=True)
    serve = a2a_sub.add_parser(
        "serve", help="serve a team as an A2A agent (agent card, message send and stream, tasks get and cancel)",
        description="Serve TEAM over A2A (JSON-RPC over HTTP). Each A2A context is a Troupe session (a conversation); "
                    "each message is a turn; tasks stream the session's progress; blackboard entries come back as artifacts.")
    serve.add_argument("team", help="team YAML file, or a folder with team.yaml")
    serve.add_argument("--host", default="127.0.0.1",
                       help="interface to listen on (default 127.0.0.1; beyond loopback needs API keys: troupe keys create)")
    serve.add_argument("--port", type=int, default=8040, help="port (default 8040)")
    serve.add_argument("--public-url", help="URL the agent card advertises (default http://HOST:PORT/)")
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="run sessions in this process, without Ray")
    where.add_argument("--address", help="Ray address (default: a running cluster, else a new local one)")
    serve.add_argument("--placement", choices=[p.value for p in Placement], default=None,
                       help="on Ray: dedicated (one actor per agent) or packed (pooled host actors)")
    serve.add_argument("--lake", help="event lake: a directory or a pyarrow.fs URI (default $TROUPE_LAKE or ./.troupe/lake)")
    serve.add_argument("--model", help="model profile every agent uses (a profile of the team, 'local' or 'local:/path.gguf')")
    serve.add_argument("--turn-timeout", type=float, default=None, help="seconds a task (one turn) may run")
    serve.set_defaults(func=_serve)


__all__ = ["add_parser"]
