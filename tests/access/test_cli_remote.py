"""``troupe run|chat|sessions list|resume --server URL`` against a real server with keys: the
commands talk HTTP, print what the local ones print, and never import Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.access.conftest import Keyed
from tests.support.mcp_serve_teams import REPO
from troupe.runtime.cli.main import main

NO_RAY = ("import sys; from troupe.runtime.cli.main import main; rc = main(sys.argv[1:]); "
          "assert 'ray' not in sys.modules, 'the client path imported ray'; sys.exit(rc)")


def _troupe(*args: str, key: str | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TROUPE_API_KEY"} | ({"TROUPE_API_KEY": key} if key else {})
    return subprocess.run([sys.executable, "-c", NO_RAY, *args], cwd=REPO, env=env, input=stdin, text=True,
                          capture_output=True, timeout=120)


def test_run_over_http_streams_progress_and_prints_the_reply_without_ray(keyed: Keyed,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    done = _troupe("run", "echo", "hi", "--server", keyed.url, key=keyed.keys["alice"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello back\n"
    assert "[session] session s-" in done.stderr and "[lead] <- user: hi" in done.stderr
    assert "] session finished: completed" in done.stderr
    assert "status completed" in done.stderr and keyed.url in done.stderr
    assert main(["sessions", "list", "--server", keyed.url, "--json", "--key", keyed.keys["alice"]]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["user"], row["team"], row["status"]) == ("alice", "echo", "completed")
    assert main(["sessions", "list", "--server", keyed.url, "--json", "--key", keyed.keys["bob"]]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_run_json_answers_approvals_and_a_refusal_is_a_clear_error(keyed: Keyed, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "gated", "go", "--server", keyed.url, "--key", keyed.keys["alice"], "--approve", "yes", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and (out["status"], out["reply"], out["user"]) == ("completed", "finished", "alice")
    code = main(["run", "echo", "hi", "--server", keyed.url, "--key", keyed.keys["vic"]])
    err = capsys.readouterr().err
    assert code == 2 and "HTTP 403 role_too_low" in err and "role viewer" in err
    code = main(["resume", out["session_id"], "--server", keyed.url, "--key", keyed.keys["bob"]])
    assert code == 2 and "belongs to another user" in capsys.readouterr().err
    code = main(["sessions", "list", "--server", keyed.url, "--key", "trp_0123456789abcdef_nope"])
    assert code == 2 and "HTTP 401 invalid_key" in capsys.readouterr().err


def test_chat_over_http_one_line_per_turn(keyed: Keyed) -> None:
    done = _troupe("chat", "echo", "--server", keyed.url, key=keyed.keys["alice"], stdin="hi\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello back\n" and "turns 1" in done.stderr
