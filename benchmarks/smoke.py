"""Run every benchmark at its ``--smoke`` size, so none can rot unnoticed (CI calls this).

Each ``benchmarks/<name>.py`` (every one but this runner) runs once as a file,
``python benchmarks/<name>.py --smoke``, and must exit 0 with a JSON object as its last line; then
each is started as a module, ``python -m benchmarks.<name> --help``, which imports it the other way
without running it (``--both``: a whole ``--smoke`` run that way too). Stops at the first failure,
with the tail of its output. Exit status: 0 when all passed.

    python -m benchmarks.smoke [--only sweep,lake] [--both]     (or python benchmarks/smoke.py)

A benchmark that needs an optional extra (``local_model``: the 'local' extra; ``knowledge``: the
'knowledge' extra) is skipped with a
note when the extra is missing, except under CI (``CI`` set), where that fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNNER = "smoke"
NEEDS = {"local_model": "xllamacpp", "knowledge": "wordllama"}
"""Benchmarks that need an optional package: name -> the module that must import."""
TIMEOUT_S = 300


def benchmarks() -> list[str]:
    """Every benchmark script: the ``.py`` files of ``benchmarks/`` but this runner and ``__init__``."""
    return sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_") and p.stem != RUNNER)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # Every process would compile the code from source again (STACK.md: Ray start 15 s, not 4.5 s).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(cmd: list[str], *, want_json: bool) -> tuple[bool, float, str]:
    """Run one command from the repository root: (passed, seconds, output tail)."""
    started = time.monotonic()
    try:
        done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return False, time.monotonic() - started, f"timed out after {TIMEOUT_S} s\n{out[-3000:]}"
    seconds = time.monotonic() - started
    tail = (done.stdout[-2000:] + "\n--- stderr ---\n" + done.stderr[-4000:]).strip()
    if done.returncode != 0:
        return False, seconds, f"exit status {done.returncode}\n{tail}"
    if want_json:
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        try:
            ok = isinstance(json.loads(lines[-1]), dict)
        except (IndexError, ValueError):
            ok = False
        if not ok:
            return False, seconds, f"the last line of its output is not a JSON object\n{tail}"
    return True, seconds, ""


def _missing_extra(name: str) -> str | None:
    module = NEEDS.get(name)
    return module if module and importlib.util.find_spec(module) is None else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--both", action="store_true", help="a whole --smoke run as a module too, not just --help")
    args = parser.parse_args(argv)
    names = benchmarks()
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"no such benchmark: {', '.join(unknown)} (there are: {', '.join(names)})")
        names = [n for n in names if n in wanted]
    plan: list[tuple[str, list[str], bool]] = []
    for name in names:
        missing = _missing_extra(name)
        if missing and not os.environ.get("CI"):
            print(f"skip  {name}: needs {missing} (an optional extra); under CI this fails", flush=True)
            continue
        plan.append((f"python benchmarks/{name}.py --smoke", [sys.executable, f"benchmarks/{name}.py", "--smoke"], True))
    for name in [n for n in names if not (_missing_extra(n) and not os.environ.get("CI"))]:
        how = ["--smoke"] if args.both else ["--help"]
        plan.append((f"python -m benchmarks.{name} {how[0]}", [sys.executable, "-m", f"benchmarks.{name}", *how],
                     args.both))
    started = time.monotonic()
    for label, cmd, want_json in plan:
        ok, seconds, detail = _run(cmd, want_json=want_json)
        print(f"{'ok  ' if ok else 'FAIL'}  {label}  ({seconds:.1f} s)", flush=True)
        if not ok:
            print(detail, flush=True)
            return 1
    print(f"all {len(plan)} passed in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
