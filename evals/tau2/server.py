"""A τ² domain's tools as an MCP server over one session's database file.

    python -m troupe.evals.tau2.server --domain airline --task 12 --dir ${sample_dir}

On start it seeds ``<dir>/db.json`` with the task's starting db (the domain db with the task's
initial state applied) unless the file is already there; it writes the file back after every call
that changes the db, so the file always holds the session's current state (the grader reads it).
Declared with ``scope: session`` in a team's ``mcpServers``, every sample gets its own process and
its own copy.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from troupe.evals.tau2.domains import DOMAINS, toolkit
from troupe.evals.tau2.domains.common import Db, TauToolError
from troupe.evals.tau2.grade import DB_FILE
from troupe.evals.tau2.task import base_db, initial_db, tasks


def starting_db(domain: str, task_id: str | None) -> Db:
    task = tasks(domain).get(task_id or "")
    return initial_db(domain, task) if task is not None else base_db(domain)


def _bound(fn: Callable[..., str], db: Db, save: Callable[[], None] | None) -> Callable[..., Any]:
    """``fn`` with the db filled in, and the signature (with resolved types) the model sees."""
    hints = typing.get_type_hints(fn)
    params = [p.replace(annotation=hints.get(p.name, Any)) for p in list(inspect.signature(fn).parameters.values())[1:]]

    @functools.wraps(fn)
    async def tool(**kwargs: Any) -> str:  # async: calls run one at a time on the server's loop
        try:
            out = fn(db, **kwargs)
        except TauToolError as e:
            raise ToolError(str(e)) from e
        if save is not None:
            save()
        return out

    tool.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    tool.__annotations__ = {**{p.name: p.annotation for p in params}, "return": str}
    del tool.__wrapped__
    return tool


def build(domain: str, folder: Path, task_id: str | None = None) -> MCPServer:
    """The server of ``domain`` over ``folder/db.json`` (seeded for ``task_id`` when absent)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DB_FILE
    if path.is_file():
        db = json.loads(path.read_text(encoding="utf-8"))
    else:
        db = starting_db(domain, task_id)
        path.write_text(json.dumps(db), encoding="utf-8")

    def save() -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(db), encoding="utf-8")
        tmp.replace(path)

    module = toolkit(domain)
    server: MCPServer = MCPServer(f"tau2-{domain}", version="1.0", log_level="WARNING")
    for name, fn in module.TOOLS.items():
        server.add_tool(_bound(fn, db, save if name in module.WRITES else None), name=name,
                        description=inspect.getdoc(fn) or name)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m troupe.evals.tau2.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--domain", choices=DOMAINS, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="the session's folder (its db.json)")
    parser.add_argument("--task", default=None, help="the task whose starting state seeds a new db.json")
    args = parser.parse_args(argv)
    build(args.domain, args.dir, args.task).run("stdio")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
