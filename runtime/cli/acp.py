"""``troupe acp TEAM``: serve a team to an editor over the Agent Client Protocol (stdio; docs/acp.md).

Stdout carries the protocol only: it is claimed before Ray or the team starts, and everything else
(logs, Ray's output, a tool's prints) goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from troupe.runtime.config import Placement
from troupe.runtime.errors import ConfigError


async def _serve(args: argparse.Namespace) -> int:
    from troupe.runtime.acp.agent import TroupeAgent, serve
    from troupe.runtime.api import Troupe, as_team, validate_team
    from troupe.tools.builtins import default_registry

    team = as_team(args.team)
    if args.model:
        team = team.with_model(args.model)
    if team.user is not None:
        raise ConfigError("this team has a simulated user, which talks for the user: an editor cannot drive it")
    validate_team(team, default_registry())
    troupe = await Troupe.start(local=args.local, lake=args.lake, address=args.address, placement=args.placement)
    try:
        await serve(TroupeAgent(team, troupe, placement=args.placement))
    finally:
        await troupe.shutdown()
    return 0


def _cmd_acp(args: argparse.Namespace) -> int:
    from troupe.runtime.acp.stdio import claim_stdout

    claim_stdout(logging.DEBUG if args.verbose else logging.WARNING)  # before anything can print
    if args.local and args.address:
        raise ConfigError("give --local or --address, not both")
    try:
        return asyncio.run(_serve(args))
    except (KeyboardInterrupt, BrokenPipeError):
        return 0


def add_parser(sub: Any) -> None:
    acp = sub.add_parser("acp", help="serve a team to an editor over the Agent Client Protocol (stdio)")
    acp.add_argument("team", help="team YAML file, or a folder with team.yaml")
    acp.add_argument("--local", action="store_true", help="run sessions in this process, without Ray")
    acp.add_argument("--address", help="Ray address HOST:PORT (default: $RAY_ADDRESS, else a running cluster, "
                                       "else a new local one)")
    acp.add_argument("--lake", help="event lake: a directory or a pyarrow.fs URI (default $TROUPE_LAKE or ./.troupe/lake)")
    acp.add_argument("--placement", choices=[p.value for p in Placement], default=None,
                     help="dedicated: one Ray actor per agent; packed: agents share pooled host actors")
    acp.add_argument("--model", help="model profile every agent uses (a profile of the team, 'local' or 'local:/path.gguf')")
    acp.add_argument("--verbose", "-v", action="store_true", help="log the protocol's traffic to stderr")
    acp.set_defaults(func=_cmd_acp)


__all__ = ["add_parser"]
