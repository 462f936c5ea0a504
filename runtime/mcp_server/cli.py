"""``troupe mcp serve``: the command line of the MCP server."""

from __future__ import annotations

import argparse
from typing import Any

EXIT_FAILED = 1
EXIT_USAGE = 2


def _leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in _leaves(sub)]
    return [e]


def _serve(args: argparse.Namespace) -> int:
    import logging
    import sys
    from pathlib import Path

    from troupe.runtime.errors import TroupeError
    from troupe.runtime.mcp_server.core import ServiceOptions
    from troupe.runtime.mcp_server.serve import configure_logging, run

    for folder in args.teams_dir or []:
        if not Path(folder).expanduser().is_dir():
            print(f"troupe: error: --teams-dir {folder}: no such folder", file=sys.stderr)
            return EXIT_USAGE
    if args.max_sessions < 1:
        print("troupe: error: --max-sessions must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(args.log_level)
    options = ServiceOptions(address=args.address, local=args.local, placement=args.placement, lake=args.lake,
                             model=args.model, teams_dirs=args.teams_dir or [], max_sessions=args.max_sessions,
                             conformance=args.conformance)
    try:
        return run(options, http_port=args.http, host=args.host)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # startup failures (Ray unreachable, port taken) arrive in exception groups
        leaves = [leaf for leaf in _leaves(e) if not isinstance(leaf, (KeyboardInterrupt, SystemExit))]
        if not leaves:
            raise
        for leaf in leaves:
            logging.getLogger("troupe.mcp").debug("server failed", exc_info=leaf)
            text = leaf.message if isinstance(leaf, TroupeError) else f"{type(leaf).__name__}: {leaf}"
            print(f"troupe: error: the MCP server stopped: {text}", file=sys.stderr)
        return EXIT_USAGE if all(isinstance(leaf, (OSError, TroupeError)) for leaf in leaves) else EXIT_FAILED


def add_parser(sub: Any) -> None:
    mcp = sub.add_parser("mcp", help="serve Troupe over the Model Context Protocol")
    mcp_sub = mcp.add_subparsers(dest="mcp_command", required=True)
    serve = mcp_sub.add_parser(
        "serve", help="an MCP server (stdio, or streamable HTTP with --http) with tools to run teams, drive "
                      "sessions, read their blackboard and tasks, and query the event lake",
        description="Serve Troupe as an MCP server. stdio by default (stdout carries only the protocol; logs go "
                    "to stderr); --http PORT serves streamable HTTP at http://HOST:PORT/mcp instead.")
    serve.add_argument("--http", type=int, metavar="PORT", default=None,
                       help="serve streamable HTTP on this port instead of stdio")
    serve.add_argument("--host", default="127.0.0.1",
                       help="interface for --http (default 127.0.0.1; beyond loopback needs API keys: troupe keys create)")
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--address", help="Ray address: 'local' starts a private Ray in this process, 'auto' or "
                                         "ray://... joins a cluster (default: a running cluster, else a new local one)")
    where.add_argument("--local", action="store_true",
                       help="run sessions in this process, without Ray (fast start; for small teams and tests)")
    serve.add_argument("--placement", choices=["dedicated", "packed"], default=None,
                       help="on Ray: dedicated (one actor per agent, default) or packed (agents share pooled "
                            "host actors: faster to start)")
    serve.add_argument("--lake", help="event lake: a directory or a pyarrow.fs URI (default $TROUPE_LAKE or ./.troupe/lake)")
    serve.add_argument("--model", help="model profile for sessions whose request names none (default: each "
                                       "team's own default model)")
    serve.add_argument("--teams-dir", action="append", metavar="DIR",
                       help="folder clients may run team files from (repeatable; default: the working directory)")
    serve.add_argument("--max-sessions", type=int, default=32, help="sessions open at once (default 32)")
    serve.add_argument("--conformance", action="store_true",
                       help="also serve the official MCP conformance suite's test_* tools, resources and prompts "
                            "(for running the suite against this server; docs/cluster.md)")
    serve.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                       help="log level on stderr (default WARNING)")
    serve.set_defaults(func=_serve)


__all__ = ["add_parser"]
