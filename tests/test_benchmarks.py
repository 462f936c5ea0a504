"""Benchmarks that cannot rot: static checks over ``benchmarks/`` (no Ray, no run).

Each benchmark script must take ``--smoke`` (``benchmarks.support.cli.parse_args`` with smoke sizes),
run as a file as well as a module (it puts the repository on ``sys.path`` before importing
``benchmarks.*``), and depend on nothing under ``tests/``. CI runs them all at their smoke sizes
with ``python -m benchmarks.smoke``, which finds them the way :func:`scripts` does.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
from pathlib import Path

import pytest

from benchmarks import smoke
from benchmarks.support.cli import parse_args

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
TESTS_PATH = re.compile(r"(^|[\s'\"])tests[./]")
"""A module path or file path into tests/ (``tests.support.x``, ``tests/support/x.py``)."""


def scripts() -> list[Path]:
    return sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.stem != smoke.RUNNER)


def all_modules() -> list[Path]:
    return sorted(BENCH.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the string nodes that are docstrings (module, class, function, attribute)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for stmt in body:
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                    out.add(id(stmt.value))
    return out


def test_the_runner_finds_every_benchmark() -> None:
    assert [p.stem for p in scripts()] == smoke.benchmarks()
    assert {"sweep", "messaging", "lake", "fanout", "density"} <= set(smoke.benchmarks())
    assert set(smoke.NEEDS) <= set(smoke.benchmarks())


@pytest.mark.parametrize("path", all_modules(), ids=lambda p: str(p.relative_to(BENCH)))
def test_nothing_in_benchmarks_depends_on_tests(path: Path) -> None:
    tree = _tree(path)
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m == "tests" or m.startswith("tests.")], f"{path.name} imports from tests/"
    docs = _docstrings(tree)
    paths = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and id(n) not in docs and TESTS_PATH.search(n.value)]
    assert not paths, f"{path.name} names code under tests/ (a tool path, a subprocess module): {paths}"


@pytest.mark.parametrize("path", scripts(), ids=lambda p: p.stem)
def test_every_benchmark_has_a_smoke_size(path: Path) -> None:
    tree = _tree(path)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module == "benchmarks.support.cli"]
    assert any(a.name == "parse_args" for n in imports for a in n.names), \
        f"{path.name}: parse its command line with benchmarks.support.cli.parse_args (it adds --smoke)"
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id == "parse_args"]
    smoke_sizes = [k.value for c in calls for k in c.keywords if k.arg == "smoke"]
    assert smoke_sizes and all(isinstance(v, ast.Dict) and v.keys for v in smoke_sizes), \
        f"{path.name}: parse_args(parser, smoke={{...}}) with the tiny sizes of --smoke"


@pytest.mark.parametrize("path", scripts(), ids=lambda p: p.stem)
def test_every_benchmark_runs_as_a_file(path: Path) -> None:
    """``python benchmarks/x.py`` starts with ``benchmarks/`` on sys.path, not the repository: the
    script must put the repository there (at module level) before its first ``benchmarks.*`` import."""
    body = _tree(path).body
    first = next((i for i, s in enumerate(body) if isinstance(s, ast.ImportFrom) and (s.module or "").startswith("benchmarks")),
                 None)
    assert first is not None, f"{path.name} imports nothing from benchmarks.support at module level"
    before = ast.unparse(ast.Module(body=body[:first], type_ignores=[]))
    assert "sys.path.insert(0, str(Path(__file__).resolve().parents[1]))" in before, path.name
    assert "if __name__ == '__main__':" in ast.unparse(_tree(path)), f"{path.name} runs nothing as a file"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200)
    return parser


@pytest.fixture(autouse=True)
def _keep_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    """parse_args puts the repository on PYTHONPATH for the processes a benchmark starts: here it
    must not leak into the tests that run after these (a pip run in a fresh venv, say)."""
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", ""))


def test_smoke_swaps_the_default_sizes_for_tiny_ones() -> None:
    args = parse_args(_parser(), smoke={"samples": 20, "concurrency": 10}, argv=["--smoke"])
    assert (args.samples, args.concurrency, args.smoke) == (20, 10, True)


def test_sizes_given_on_the_command_line_win_over_smoke_ones() -> None:
    args = parse_args(_parser(), smoke={"samples": 20, "concurrency": 10}, argv=["--smoke", "--samples", "50"])
    assert (args.samples, args.concurrency) == (50, 10)
    plain = parse_args(_parser(), smoke={"samples": 20}, argv=[])
    assert (plain.samples, plain.smoke) == (1000, False)


def test_a_smoke_size_for_an_option_the_benchmark_lacks_is_an_error() -> None:
    with pytest.raises(ValueError, match="samplez"):
        parse_args(_parser(), smoke={"samplez": 20}, argv=["--smoke"])
