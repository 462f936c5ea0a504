"""``troupe serve``: the HTTP API (docs/server.md), on Ray Serve (default) or in this process (``--local``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_USAGE = 2
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API for sessions (Ray Serve, or --local in this process)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8321)
    p.add_argument("--teams", nargs="+", default=[], metavar="DIR", help="folders teams may be run from (default: .)")
    p.add_argument("--lake", default=None)
    p.add_argument("--local", action="store_true", help="run in this process with uvicorn, sessions without Ray")
    p.add_argument("--address", default=None, help="Ray address to attach to (default: a running one, else a new one)")
    p.add_argument("--placement", choices=["dedicated", "packed"], default=None)
    p.add_argument("--num-replicas", type=int, default=1)
    p.add_argument("--autoscaling", default=None, metavar="JSON", help="Ray Serve autoscaling_config, as JSON")
    p.add_argument("--max-sessions", type=int, default=256)
    p.set_defaults(func=_cmd_serve)


def _settings(args: argparse.Namespace) -> Any:
    from troupe.runtime.server.settings import ServerSettings

    return ServerSettings(host=args.host, port=args.port, teams=args.teams, lake=args.lake, local=args.local,
                          address=args.address, placement=args.placement, num_replicas=args.num_replicas,
                          autoscaling=json.loads(args.autoscaling) if args.autoscaling else None,
                          max_sessions=args.max_sessions)


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    refusal = _bind_refusal(settings)
    if refusal:
        print(f"troupe: error: {refusal}", file=sys.stderr)
        return EXIT_USAGE
    if settings.local:
        import uvicorn

        from troupe.runtime.server.app import build_app

        print(f"troupe serve: http://{settings.host}:{settings.port}/api/v1 (local, in this process)", file=sys.stderr)
        uvicorn.run(build_app(settings), host=settings.host, port=settings.port, log_level="warning")
        return 0
    from troupe.runtime.server.deploy import serve_forever

    return serve_forever(settings)


def _bind_refusal(settings: Any) -> str | None:
    """Why the server must not listen on ``settings.host`` (beyond loopback with no API key), or None."""
    from troupe.runtime.errors import ConfigError

    try:
        from troupe.runtime.access.guard import check_bind
        from troupe.runtime.access.keystore import KeyStore
    except ImportError:  # the access layer is not installed: loopback only
        return None if settings.host in LOOPBACK else f"will not listen on {settings.host} without API keys"
    try:
        check_bind(settings.host, KeyStore(settings.keys_path), what="troupe serve")
    except ConfigError as e:
        return e.message
    return None


__all__ = ["add_parser"]
