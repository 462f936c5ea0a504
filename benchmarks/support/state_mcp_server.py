"""A small stateful MCP server for the environment tests and the sweep benchmark: a key-value store
in this process's memory, mirrored to ``<state dir>/state.json`` after every change, and an arrival log.

``python -m benchmarks.support.state_mcp_server --stdio [--state-dir DIR] [--log FILE] [--marker TOKEN]``:
``--log`` appends the argument of every ``record`` call as it arrives (the ordering tests read it);
``--marker`` is only there to be found in the command line (the process-count tests look for it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer

REPO = Path(__file__).resolve().parents[2]
server: MCPServer = MCPServer("troupe-state", version="1.0", log_level="WARNING")
STATE: dict[str, int | str] = {}
OPTIONS: dict[str, Path | None] = {"state_dir": None, "log": None}


def _save() -> None:
    folder = OPTIONS["state_dir"]
    if folder is not None:
        (folder / "state.json").write_text(json.dumps(STATE, sort_keys=True))


@server.tool()
def put(key: str, value: str) -> str:
    """Set ``key`` to ``value``."""
    STATE[key] = value
    _save()
    return "ok"


@server.tool()
def get(key: str) -> str:
    """The value of ``key`` (empty when unset)."""
    return str(STATE.get(key, ""))


@server.tool()
def incr(key: str) -> int:
    """Add one to ``key`` (0 when unset); returns the new value."""
    value = int(STATE.get(key, 0)) + 1
    STATE[key] = value
    _save()
    return value


@server.tool()
async def record(n: int) -> str:
    """Append ``n`` to the arrival log, then take a little while (so calls running at once would overlap)."""
    log = OPTIONS["log"]
    if log is not None:
        with open(log, "a") as f:
            f.write(f"{n}\n")
    await asyncio.sleep(random.uniform(0, 0.02))
    return f"recorded {n}"


@server.tool()
async def wait(seconds: float) -> str:
    """Take ``seconds`` to answer (a call that is still in flight while something else happens)."""
    await asyncio.sleep(seconds)
    return f"waited {seconds}"


def command(*args: str) -> dict[str, object]:
    """An ``mcpServers`` entry that runs this server over stdio (plus ``args``)."""
    return {"command": sys.executable, "args": ["-m", "benchmarks.support.state_mcp_server", "--stdio", *args],
            "cwd": str(REPO), "timeout_s": 20, "connect_timeout_s": 30}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stdio", action="store_true")
    parser.add_argument("--state-dir")
    parser.add_argument("--log")
    parser.add_argument("--marker")
    args = parser.parse_args()
    OPTIONS["state_dir"] = Path(args.state_dir) if args.state_dir else None
    OPTIONS["log"] = Path(args.log) if args.log else None
    if OPTIONS["state_dir"] is not None and (OPTIONS["state_dir"] / "state.json").exists():
        STATE.update(json.loads((OPTIONS["state_dir"] / "state.json").read_text()))  # seeded by a setup hook
    server.run("stdio")


if __name__ == "__main__":
    main()
