"""``troupe eval`` as a user runs it: a sweep on Ray, its resume, the report, list, baselines and
the compare gate's exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from tests.conftest import REPO
from tests.support.eval_suites import write_suite

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.usefixtures("ray_session")]


def troupe(*args: str, lake: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "troupe.runtime.cli.main", *args, "--lake", str(lake)], cwd=REPO,
                          env={**os.environ}, capture_output=True, text=True, timeout=300)


def test_eval_run_resume_report_and_compare_gates(lake: Path, tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite")
    address = ray.get_runtime_context().gcs_address
    first = troupe("eval", "run", str(suite), "--json", "--concurrency", "4", "--address", address, lake=lake)
    assert first.returncode == 0, first.stderr[-3000:]
    out = json.loads(first.stdout)
    assert (out["total"], out["ran"], out["recorded_before"], out["passed"]) == (6, 6, 0, 3)
    run_id = out["run_id"]

    again = troupe("eval", "run", str(suite), "--json", "--address", address, lake=lake)
    assert json.loads(again.stdout)["recorded_before"] == 6 and json.loads(again.stdout)["ran"] == 0

    html = tmp_path / "report.html"
    report = troupe("eval", "report", run_id, "--out", str(html), lake=lake)
    assert report.returncode == 0, report.stderr
    page = html.read_text()
    assert "<svg" in page and "crashed on purpose" in page and run_id in page
    assert "ok-1" in report.stdout or "pass" in report.stdout.lower()

    listed = troupe("eval", "list", "--json", lake=lake)
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [run_id]

    strict = troupe("eval", "compare", run_id, run_id, "--min-pass-rate", "0.9", lake=lake)
    assert strict.returncode == 1 and "pass rate" in strict.stdout.lower()
    lenient = troupe("eval", "compare", run_id, run_id, "--min-pass-rate", "0.1", lake=lake)
    assert lenient.returncode == 0, lenient.stdout
    assert troupe("eval", "baseline", "main", run_id, lake=lake).returncode == 0
    assert troupe("eval", "compare", run_id, "--baseline", "main", lake=lake).returncode == 0
    unknown = troupe("eval", "report", "r-nope", lake=lake)
    assert unknown.returncode == 2 and "r-nope" in unknown.stderr
