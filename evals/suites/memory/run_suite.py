"""The long-horizon memory suite: each case is a list of sessions, each a list of turns (what the user says,
the reply expected); a case passes when every turn's reply matches (stripped, case-insensitive). Each case gets
a project of its own, so cases never see each other's memory; a turn is a conversation turn, a session is a new
session of the same project.

    .venv/bin/python evals/suites/memory/run_suite.py [--profile det|local] [--lake DIR]

The last line printed is JSON: the score and each case's outcome (docs/memory.md reports them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load_cases() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (HERE / "cases.jsonl").read_text().splitlines() if line.strip()]


async def run_case(troupe: Any, team: Any, case: dict[str, Any], timeout: float) -> dict[str, Any]:
    cfg = team.model_copy(update={"project": f"memsuite-{case['id']}-{uuid.uuid4().hex[:6]}"})
    turns: list[dict[str, Any]] = []
    for number, session_turns in enumerate(case["sessions"], 1):
        session = await troupe.open(cfg, conversation=True)
        try:
            for turn in session_turns:
                await session.send(turn["say"])
                result = await session.result(timeout=timeout)
                reply = (result.reply or "").strip()
                turns.append({"session": number, "say": turn["say"], "expect": turn["expect"], "reply": reply,
                              "ok": reply.lower().strip(" .") == turn["expect"].lower().strip(" .")})
            await session.end()
        finally:
            await session.close()
    return {"id": case["id"], "behaviour": case["behaviour"], "passed": all(t["ok"] for t in turns), "turns": turns}


async def run_suite(lake: Path | str, profile: str = "det", timeout: float = 60.0) -> dict[str, Any]:
    from troupe.runtime.api import Troupe
    from troupe.runtime.config import load_team

    team = load_team(HERE / "team.yaml")
    team = team.model_copy(update={"default_model": profile})
    troupe = Troupe.local(lake=lake)
    try:
        cases = [await run_case(troupe, team, c, timeout) for c in load_cases()]
    finally:
        await troupe.shutdown()
    passed = sum(c["passed"] for c in cases)
    return {"suite": "memory", "profile": profile, "score": round(passed / len(cases), 3), "passed": passed,
            "cases": len(cases), "results": cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="det", help="the team's model profile (det, local)")
    parser.add_argument("--lake", default=None, help="default: a temporary folder")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory(prefix="troupe-memory-suite-") as tmp:
        out = asyncio.run(run_suite(args.lake or tmp, args.profile))
    for c in out["results"]:
        print(f"{'PASS' if c['passed'] else 'FAIL'} {c['id']:<14} {c['behaviour']}", file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
