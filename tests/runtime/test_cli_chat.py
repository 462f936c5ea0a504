"""``troupe chat`` over a pipe: each line a turn, end of input ends the conversation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.lakes import rows

TEAM = """\
name: chatty
entry: a
default_model: m
models:
  m: {provider: scripted, scripts: {a: [{text: "hello there"}, {text: "goodbye now"}]}}
agents: [{id: a}]
"""


def chat(tmp_path: Path, text: str, *extra: str, team: str = TEAM) -> subprocess.CompletedProcess[str]:
    (tmp_path / "team.yaml").write_text(team)
    return subprocess.run([sys.executable, "-m", "troupe.runtime.cli.main", "chat", str(tmp_path / "team.yaml"),
                           "--local", "--lake", str(tmp_path / "lake"), *extra],
                          input=text, capture_output=True, text=True, timeout=120)


def test_chat_over_a_pipe_takes_a_turn_per_line_and_ends_at_eof(tmp_path: Path) -> None:
    done = chat(tmp_path, "hi\n\nand now?\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["hello there", "goodbye now"]
    assert "status completed  turns 2" in done.stderr
    assert "<- user: and now?" in done.stderr  # progress streams to stderr
    turns = rows(tmp_path / "lake", "select json_extract(payload, '$.turn')::int t, status from events "
                                    "where type='turn.finished' order by t")
    assert [r["t"] for r in turns] == [1, 2]
    finished = rows(tmp_path / "lake", "select status from events where type='session.finished'")
    assert finished == [{"status": "completed"}]


def test_chat_json_prints_the_whole_conversation(tmp_path: Path) -> None:
    done = chat(tmp_path, "hi\nand now?", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["status"], out["reply"]) == ("completed", "goodbye now")
    assert [(t["input"], t["reply"]) for t in out["turns"]] == [("hi", "hello there"), ("and now?", "goodbye now")]


@pytest.mark.parametrize("text", [""])
def test_chat_with_no_input_ends_at_once(tmp_path: Path, text: str) -> None:
    done = chat(tmp_path, text)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "turns 0" in done.stderr


def test_ctrl_c_during_a_turn_cancels_the_turn_and_the_chat_goes_on(tmp_path: Path) -> None:
    import os
    import signal
    import time

    import yaml

    repo = Path(__file__).resolve().parents[2]
    team = {"name": "canceller", "entry": "a", "default_model": "m",
            "models": {"m": {"provider": "function", "function": "tests.support.turn_cancel_team:reply"}},
            "agents": [{"id": "a", "tools": ["tests.support.tool_fixtures:io_wait"]}]}
    (tmp_path / "team.yaml").write_text(yaml.safe_dump(team))
    work = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-m", "troupe.runtime.cli.main", "chat", str(tmp_path / "team.yaml"),
                             "--local", "--lake", str(tmp_path / "lake")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        assert proc.stdin is not None
        proc.stdin.write(f"wait in {work}\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while not (work / "slow.start").exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the tool did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        while not (work / "slow.cancelled").exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the tool was not stopped"
            time.sleep(0.05)
        out, err = proc.communicate("what did I ask first?\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out.splitlines() == [f"first: wait in {work} | stopped: 1 | noted: True"]
    assert "(turn 1 was cancelled)" in err and "status completed  turns 2" in err
