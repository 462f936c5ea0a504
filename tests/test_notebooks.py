"""The notebooks in ``notebooks/`` run headless, start to finish, on the deterministic stand-in model.

Each notebook runs in its own kernel (the venv's Python, from a kernelspec written here, so no
system-wide ``python3`` kernel can stand in for it), in the notebooks' folder (where Ray's workers
find ``nbhelpers``), with its own lake in a temporary folder (``TROUPE_NOTEBOOK_LAKE``). A kernel is a
separate process: it starts its own private Ray (``address="local"``), whatever this process holds.

Checked: no cell fails (the notebooks assert on their own results too), the tagged cells show what
they should, the plots were drawn, what the notebooks wrote to their lakes, and that the committed
notebooks carry no outputs and keep the model choice in one tagged cell.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

if not os.environ.get("CI"):  # under CI they fail instead: a green CI run must have run the notebooks
    for _module in ("nbformat", "nbclient", "ipykernel", "matplotlib"):
        pytest.importorskip(_module, reason="the notebook tests need the 'dev' extra")

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = REPO / "notebooks"
KERNEL = "troupe-notebook-tests"
NAMES = ["quickstart", "trace_analysis", "eval_sweep"]


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernelspec that runs ipykernel on this very interpreter (the venv's)."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Troupe notebook tests", "language": "python",
    }))
    return root


def execute(name: str, kernel_dir: Path, lake: Path) -> Any:
    """Run ``notebooks/<name>.ipynb`` headless; returns the executed notebook (raises on a failing cell)."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    scratch = lake.parent / f"{name}-kernel"
    scratch.mkdir(parents=True, exist_ok=True)
    km = AsyncKernelManager(kernel_name=KERNEL, connection_file=str(scratch / "connection.json"),
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    # MPLBACKEND=Agg (common in CI) would stop plt.show() from emitting images; RAY_ADDRESS is irrelevant
    # (the notebooks start a private Ray) but must not leak into the kernel.
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "RAY_ADDRESS")}
    env.update(TROUPE_NOTEBOOK_LAKE=str(lake), RAY_AUTH_MODE="disabled", IPYTHONDIR=str(scratch / "ipython"),
               PYDEVD_DISABLE_FILE_VALIDATION="1")
    client = NotebookClient(nb, km=km, timeout=300, startup_timeout=120,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env)
    return nb


def tagged(nb: Any, tag: str) -> Any:
    [cell] = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    return cell


def text(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def images(cell: Any) -> int:
    return sum(1 for o in cell.outputs if "image/png" in o.get("data", {}))


def check_no_errors(nb: Any) -> None:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{out.ename}: {out.evalue}"
            if out.output_type == "stream" and out.name == "stderr":
                assert "Traceback" not in out.text, out.text


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_clean(name: str) -> None:
    """No outputs in the repository, and the model is chosen in exactly one tagged cell near the top."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs committed"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    model_cells = [i for i, c in enumerate(nb.cells) if "model" in c.get("metadata", {}).get("tags", [])]
    assert len(model_cells) == 1 and model_cells[0] <= 2, model_cells
    assigns = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
               and re.search(r"^MODEL\s*=", c.source, flags=re.M)]
    assert assigns == model_cells, f"{name}: MODEL is set outside its cell"
    assert re.search(r'^MODEL = "stub"', tagged(nb, "model").source, flags=re.M)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quickstart(kernel_dir: Path, tmp_path: Path) -> None:
    from troupe.runtime.eventlog.lake import query

    nb = execute("quickstart", kernel_dir, tmp_path / "lake")
    check_no_errors(nb)
    out = text(tagged(nb, "result"))
    assert "status:   completed" in out and "7006652" in out and "17:30" in out, out
    # The session's events reached the notebook's own lake, and the notebook shut its Ray down.
    finished = query(tmp_path / "lake", "select status, count(*) n from events where type = 'session.finished' "
                                        "group by status").to_pylist()
    assert finished == [{"status": "completed", "n": 1}]
    agents = {r["agent"] for r in query(tmp_path / "lake", "select distinct agent from events").to_pylist()}
    assert {"lead", "math", "clock", "session"} <= agents
    assert "Ray running: False" in text(nb.cells[-1])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_trace_analysis(kernel_dir: Path, tmp_path: Path) -> None:
    from troupe.runtime.eventlog.lake import query

    nb = execute("trace_analysis", kernel_dir, tmp_path / "lake")
    check_no_errors(nb)
    assert images(tagged(nb, "timeline")) == 1
    assert images(tagged(nb, "time-per-agent")) == 1
    assert "6 LLM calls, 3 tool calls" in text(tagged(nb, "checks"))
    calls = query(tmp_path / "lake", "select tool, count(*) n from events where type = 'tool.call' "
                                     "group by tool order by tool").to_pylist()
    assert calls == [{"tool": "assign_tasks", "n": 1}, {"tool": "calculator", "n": 1},
                     {"tool": "convert_time", "n": 1}]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_eval_sweep(kernel_dir: Path, tmp_path: Path) -> None:
    from troupe.evals.results import connect

    nb = execute("eval_sweep", kernel_dir, tmp_path / "lake")
    check_no_errors(nb)
    assert images(tagged(nb, "plots")) == 1
    assert "{'baseline': 8, 'brief': 6} samples passed per variant" in text(tagged(nb, "checks"))
    summary = text(tagged(nb, "summary"))
    assert re.search(r"8/12\s+67%\s+\[39%, 86%\]", summary) and re.search(r"6/12\s+50%\s+\[25%, 75%\]", summary), summary
    # The sweep's rows, read back from the notebook's lake by this process.
    con = connect(tmp_path / "lake")
    try:
        rows = con.sql("""
            select json_extract_string(cell, '$.prompt') = '' as baseline, count(*) n,
                   count(*) filter (where passed) passed,
                   count(*) filter (where status = 'budget_exceeded') over_budget
            from results group by all order by baseline
        """).fetchall()
    finally:
        con.close()
    assert rows == [(False, 12, 6, 2), (True, 12, 8, 2)]
    assert (tmp_path / "lake" / "report.html").is_file()
