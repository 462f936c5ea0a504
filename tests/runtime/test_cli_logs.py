"""What the CLI prints without a terminal (a log, ``ray job logs``) and the address mistakes it names,
without Ray (tests/actors/test_job_submit.py runs the same commands as real Ray jobs)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from unittest import mock

import pytest

from tests.conftest import EXAMPLE_TEAM, REPO
from troupe.evals.cli import progress_printer
from troupe.evals.sweep import Progress
from troupe.runtime.cli.main import main


def test_sweep_progress_without_a_terminal_is_whole_lines_at_most_every_few_seconds() -> None:
    out = io.StringIO()
    show = progress_printer(out, every_s=5.0)
    p = Progress(total=10, started=90.0)
    now = [100.0]

    def at(t: float) -> None:
        now[0] = t
        show(p)

    with mock.patch("time.monotonic", lambda: now[0]):
        p.running = 4
        at(100.0)  # the first: printed
        p.done = 2
        at(101.0)  # 1 s later: held back
        p.done = 5
        at(103.0)  # 3 s later: held back
        at(106.0)  # 6 s after the last line: printed
        at(112.0)  # nothing moved since: held back
        p.done = 6
        at(113.0)  # moved, 7 s after the last line: printed
        p.done, p.running, p.passed = 10, 0, 9
        at(113.5)  # finished: printed at once
        at(114.0)  # the same again (the sweep's end reports twice): once is enough
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 4
    assert [line.split(" · ")[0] for line in lines] == ["[eval] 0/10", "[eval] 5/10", "[eval] 6/10", "[eval] 10/10"]
    assert lines[3].startswith("[eval] 10/10 · 0 running · 0 failed · 9 passed")


def test_run_takes_the_message_as_an_argument_or_input_but_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(EXAMPLE_TEAM)]) == 2
    assert main(["run", str(EXAMPLE_TEAM), "hi", "--input", "hello"]) == 2
    assert 'troupe run TEAM "TEXT"' in capsys.readouterr().err


@pytest.mark.parametrize("where", ["flag", "env"])
def test_a_dashboard_url_as_the_ray_address_is_named_as_such(where: str) -> None:
    url = "http://127.0.0.1:9"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    argv = [sys.executable, "-m", "troupe.runtime.cli.main", "run", str(EXAMPLE_TEAM), "hi"]
    if where == "flag":
        argv += ["--address", url]
    else:
        env["RAY_ADDRESS"] = url
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"Ray address '{url}' is a dashboard (job submission) address" in done.stderr
    assert "ray job submit" in done.stderr
