"""The CLI's bad-input paths and `events sql`, without Ray (errors come before Ray starts)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from troupe.runtime.api import Troupe
from troupe.runtime.cli.main import main
from tests.conftest import EXAMPLE_TEAM


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_malformed_team_file_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "team.yaml"
    bad.write_text("name: x\nentry: lead\nagents:\n  - id: lead\n    tools: calculator\n")
    code, out, err = run_cli(capsys, "run", str(bad), "--input", "hi")
    assert code == 2 and out == ""
    assert "invalid team file" in err and "agents.0.tools: Input should be a valid list (got 'calculator')" in err


def test_yaml_syntax_error_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "team.yaml"
    bad.write_text("name: [unclosed\n")
    code, _, err = run_cli(capsys, "run", str(bad), "--input", "hi")
    assert code == 2 and "not valid YAML" in err
    code, _, err = run_cli(capsys, "run", str(tmp_path / "nope.yaml"), "--input", "hi")
    assert code == 2 and "does not exist" in err


def test_unknown_tool_and_unknown_model_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (EXAMPLE_TEAM / "team.yaml").read_text().replace("tools: [calculator, blackboard_put, task_update]",
                                                           "tools: [calculater, blackboard_put, task_update]")
    (tmp_path / "team.yaml").write_text(text)
    code, _, err = run_cli(capsys, "run", str(tmp_path), "--input", "hi")
    assert code == 2
    assert "agent 'worker_a': unknown tool 'calculater'; did you mean 'calculator'?" in err
    code, _, err = run_cli(capsys, "run", str(EXAMPLE_TEAM), "--input", "hi", "--model", "gpt-9")
    assert code == 2 and "unknown model profile 'gpt-9'" in err and "scripted" in err


def test_events_sql_formats_and_errors(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async def one_run() -> str:
        troupe = Troupe.local(lake=lake)
        result = await troupe.run(EXAMPLE_TEAM, "go", timeout=30)
        await troupe.shutdown()
        return str(result.session_id)

    session_id = asyncio.run(one_run())
    q = f"select count(distinct agent) agents, count(*) filter (where type='tool.call') calls from events where session_id='{session_id}'"
    code, out, _ = run_cli(capsys, "events", "sql", q, "--lake", str(lake), "--format", "json")
    assert code == 0 and json.loads(out) == [{"agents": 5, "calls": 11}]
    code, out, _ = run_cli(capsys, "events", "sql", "select 1 as one", "--lake", str(lake), "--format", "csv")
    assert out.strip().splitlines() == ["one", "1"]
    code, out, _ = run_cli(capsys, "events", "sql", "select 'x' as col", "--lake", str(lake))
    assert "col" in out and "x" in out
    code, _, err = run_cli(capsys, "events", "sql", "select nope from events", "--lake", str(lake))
    assert code == 2 and 'Referenced column "nope" not found' in err


def test_events_sql_on_an_empty_lake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "events", "sql", "select count(*) n from events", "--lake", str(tmp_path / "none"),
                           "--format", "json")
    assert code == 0 and json.loads(out) == [{"n": 0}]
