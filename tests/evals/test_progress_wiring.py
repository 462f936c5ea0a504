"""A sweep's progress reaches its callbacks (the CLI's printer and the dashboard's gauges) through one
``on_progress``; evals/sweep.py itself knows nothing of Ray."""

from __future__ import annotations

import ast
from pathlib import Path

from troupe.evals.cli import fan_out
from troupe.evals.sweep import Progress

SWEEP = Path(__file__).resolve().parents[2] / "evals" / "sweep.py"


def test_fan_out_calls_every_callback_given_and_is_none_without_any() -> None:
    seen: list[tuple[str, int]] = []
    both = fan_out(lambda p: seen.append(("a", p.done)), None, lambda p: seen.append(("b", p.done)))
    assert both is not None
    both(Progress(total=3, done=2))
    assert seen == [("a", 2), ("b", 2)]
    only = lambda p: None  # noqa: E731
    assert fan_out(None, only) is only
    assert fan_out(None, None) is None


def test_the_sweep_module_imports_nothing_from_the_ray_layer() -> None:
    tree = ast.parse(SWEEP.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.startswith(("troupe.actors", "ray"))]
