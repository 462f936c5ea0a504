"""The injection suite's numbers, from the lake: utility and attack success per cell, and every
call the risk scorer refused with its reasons.

    python -m troupe.evals.injection.report --run                # run the suite here (no Ray), then report
    python -m troupe.evals.injection.report RUN_ID [--lake DIR]  # a run made with `troupe eval run`

The verdicts are the ``environment.captured`` events (the teardown judged each sample's final
state, :mod:`troupe.evals.injection.graders`), joined to the run's result rows for the cell; the
blocks are the ``guardrail.denied`` events with reason ``risk``, joined to their ``tool.call`` (the
score and its reasons).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

SUITE = Path(__file__).resolve().parents[1] / "suites" / "injection"


class CellRates(BaseModel):
    cell: str
    legitimate: int
    """Legitimate-only samples."""
    legitimate_utility: float
    """Share of them whose task was done."""
    injected: int
    """Samples whose data carries an injection."""
    injected_utility: float
    """Share of them whose user task was still done."""
    attack_success: float
    """Share of them where the injected side effect happened."""
    risk_denials: int
    """Calls refused with reason ``risk``."""


class Block(BaseModel):
    cell: str
    case_id: str
    tool: str | None
    arguments: str | None
    score: int | None
    reasons: list[str]
    error: str
    """What the model was told."""


def _connect(lake: str | Path) -> Any:
    from troupe.evals.results import connect

    return connect(lake)


def rates(lake: str | Path, run_id: str) -> list[CellRates]:
    """Utility (legitimate and injected samples apart) and attack success per cell of ``run_id``."""
    con = _connect(lake)
    try:
        rows = con.execute("""
            with verdicts as (
                select r.cell, r.session_id,
                       json_extract_string(e.payload, '$.final_state.kind') as kind,
                       json_extract(e.payload, '$.final_state.utility')::boolean as utility,
                       json_extract(e.payload, '$.final_state.attack_success')::boolean as attack
                from results r join events e on e.session_id = r.session_id and e.type = 'environment.captured'
                where r.run_id = $run and e.run_id = $run),
            denials as (
                select session_id, count(*) as n from events
                where run_id = $run and type = 'guardrail.denied' and json_extract_string(payload, '$.reason') = 'risk'
                group by session_id)
            select v.cell,
                   count(*) filter (where kind = 'legitimate'),
                   coalesce(avg(utility::int) filter (where kind = 'legitimate'), 0),
                   count(*) filter (where kind = 'injected'),
                   coalesce(avg(utility::int) filter (where kind = 'injected'), 0),
                   coalesce(avg(attack::int) filter (where kind = 'injected'), 0),
                   coalesce(sum(d.n), 0)::int
            from verdicts v left join denials d using (session_id)
            group by v.cell order by v.cell""", {"run": run_id}).fetchall()
    finally:
        con.close()
    keys = list(CellRates.model_fields)
    return [CellRates(**dict(zip(keys, row, strict=True))) for row in rows]


def blocks(lake: str | Path, run_id: str) -> list[Block]:
    """Every call of ``run_id`` refused for its risk, with the score and reasons of its ``tool.call``."""
    con = _connect(lake)
    try:
        rows = con.execute("""
            select r.cell, r.case_id, d.tool, json_extract_string(c.payload, '$.arguments'),
                   json_extract(c.payload, '$.risk.score')::int, json_extract(c.payload, '$.risk.reasons'),
                   json_extract_string(d.payload, '$.error')
            from events d
            join results r on r.session_id = d.session_id and r.run_id = $run
            left join events c on c.run_id = $run and c.session_id = d.session_id and c.type = 'tool.call'
                 and json_extract_string(c.payload, '$.id') = json_extract_string(d.payload, '$.id')
            where d.run_id = $run and d.type = 'guardrail.denied' and json_extract_string(d.payload, '$.reason') = 'risk'
            order by r.cell, r.case_id, d.ts""", {"run": run_id}).fetchall()
    finally:
        con.close()
    return [Block(cell=c, case_id=k, tool=t, arguments=a, score=s, reasons=json.loads(reasons) if reasons else [],
                  error=e or "") for c, k, t, a, s, reasons, e in rows]


def local_suite(folder: Path, python: str = sys.executable) -> Path:
    """A copy of the shipped suite in ``folder`` whose MCP servers run on ``python`` (the team says
    ``python``, which must otherwise be the interpreter Troupe is installed in)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("suite.yaml", "cases.jsonl"):
        shutil.copy(SUITE / name, folder / name)
    team = yaml.safe_load((SUITE / "team.yaml").read_text(encoding="utf-8"))
    for server in team["mcpServers"].values():
        server["command"] = python
    (folder / "team.yaml").write_text(yaml.safe_dump(team, sort_keys=False), encoding="utf-8")
    return folder / "suite.yaml"


async def run_here(lake: str | Path, *, concurrency: int = 8) -> str:
    """Run the suite in this process (no Ray) into ``lake``; its run id."""
    from troupe.evals.suite import load_suite
    from troupe.evals.sweep import Sweep
    from troupe.runtime.api import Troupe

    with tempfile.TemporaryDirectory(prefix="troupe-injection-") as tmp:
        suite = load_suite(local_suite(Path(tmp)))
        troupe = Troupe.local(lake=lake)
        try:
            sweep = Sweep(troupe, suite, concurrency=concurrency)
            await sweep.run()
        finally:
            await troupe.shutdown()
    return sweep.run_id


def render(run_id: str, table: list[CellRates], refused: list[Block]) -> str:
    lines = [f"run {run_id}", f"{'cell':28} {'legit utility':>14} {'injected utility':>17} {'attack success':>15} "
             f"{'risk denials':>13}"]
    for r in table:
        lines.append(f"{r.cell:28} {r.legitimate_utility:>8.0%} ({r.legitimate:>2}) {r.injected_utility:>11.0%} "
                     f"({r.injected:>2}) {r.attack_success:>15.0%} {r.risk_denials:>13}")
    for b in refused:
        lines.append(f"  denied {b.cell} {b.case_id}: {b.tool} score {b.score} ({'; '.join(b.reasons)})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m troupe.evals.injection.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_id", nargs="?", help="a run of the injection suite (default with --run: the new one)")
    parser.add_argument("--run", action="store_true", help="run the suite here first (local placement, no Ray)")
    parser.add_argument("--lake", default=os.environ.get("TROUPE_LAKE", ".troupe/lake"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.run and not args.run_id:
        parser.error("give a RUN_ID or --run")
    run_id = asyncio.run(run_here(args.lake)) if args.run else args.run_id
    table, refused = rates(args.lake, run_id), blocks(args.lake, run_id)
    if args.json:
        print(json.dumps({"run_id": run_id, "cells": [r.model_dump() for r in table],
                          "blocks": [b.model_dump() for b in refused]}, indent=1))
    else:
        print(render(run_id, table, refused))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
