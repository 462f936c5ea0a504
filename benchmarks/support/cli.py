"""The command line every benchmark shares: its own sizes plus ``--smoke``.

``--smoke`` swaps the default sizes for tiny ones (the same code path, seconds instead of minutes):
a check that the benchmark still runs, whose figures mean nothing. Sizes given on the command line
win over the smoke ones.

Run as a file (``python benchmarks/x.py``), a script's ``sys.path`` starts at ``benchmarks/``, not
at the repository; each script puts the repository first itself before importing
``benchmarks.support``. Ray workers that the benchmark starts import its tools and models by path
(``benchmarks.sweep:reply``), so :func:`parse_args` also puts the repository on ``PYTHONPATH``,
which they inherit.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SMOKE_HELP = "tiny sizes: checks that the benchmark runs (seconds); its figures mean nothing"


def export_repo_path() -> None:
    """Put the repository first on ``PYTHONPATH`` (for the processes this one starts)."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO) not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *parts])


def parse_args(parser: argparse.ArgumentParser, smoke: dict[str, Any], argv: list[str] | None = None
               ) -> argparse.Namespace:
    """Parse the command line with ``--smoke`` added: under it, each option named in ``smoke`` that
    was left at its default takes the smoke value instead."""
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    unknown = [key for key in smoke if not hasattr(args, key)]
    if unknown:
        raise ValueError(f"smoke sizes for options the parser lacks: {unknown}")
    if args.smoke:
        for key, value in smoke.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    export_repo_path()
    return args
