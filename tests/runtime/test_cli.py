"""The CLI's bad-input paths and `events sql`, without Ray (errors come before Ray starts)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from benchmarks.support.openai_server import OpenAICompatServer, TextReply
from tests.conftest import EXAMPLE_TEAM
from troupe.runtime.api import Troupe
from troupe.runtime.cli.main import main
from troupe.runtime.config import parse_team
from troupe.runtime.errors import ConfigError
from troupe.runtime.storage.checkpoint import CheckpointError


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


def test_events_sql_csv_ends_with_its_last_row(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "events", "sql", "select 1 as one", "--lake", str(lake), "--format", "csv")
    assert code == 0 and out.splitlines()[-1] == "1" and out.endswith("1\n")  # `| tail -1` gives the last row


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test if the CLI tries to connect to Ray."""
    calls: list[str] = []

    async def connect(*args: object, **kwargs: object) -> Troupe:
        calls.append("connect")
        raise AssertionError("Ray was started before the configuration was checked")

    monkeypatch.setattr(Troupe, "connect", connect)
    return calls


def keyed_team(tmp_path: Path, variable: str) -> Path:
    (tmp_path / "team.yaml").write_text(
        "name: keyed\nentry: a\ndefault_model: main\nmodels:\n"
        f"  main: {{provider: openai, model: m, base_url: 'http://127.0.0.1:9/v1', api_key_env: {variable}}}\n"
        "agents:\n  - id: a\n")
    return tmp_path / "team.yaml"


def test_a_missing_api_key_variable_fails_before_ray_and_leaves_no_checkpoint(
    tmp_path: Path, lake: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_ray: list[str]
) -> None:
    monkeypatch.delenv("TROUPE_TEST_NO_SUCH_KEY", raising=False)
    code, out, err = run_cli(capsys, "run", str(keyed_team(tmp_path, "TROUPE_TEST_NO_SUCH_KEY")), "hi",
                             "--lake", str(lake))
    assert code == 2 and out == "" and no_ray == []
    assert "'TROUPE_TEST_NO_SUCH_KEY', which is not set" in err
    code, out, err = run_cli(capsys, "sessions", "list", "--lake", str(lake), "--json")
    assert code == 0 and json.loads(out) == []


def test_a_session_whose_creation_failed_is_not_resumable(lake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A failure while the session's actors are made (here an MCP server that cannot start, found
    only then) leaves a checkpoint that says so: listed as failed, and resume answers at once."""
    team = parse_team({"name": "t", "entry": "a", "models": {"default": {"provider": "scripted", "scripts": {
        "*": [{"text": "done"}]}}}, "agents": [{"id": "a", "tools": ["broken__x"]}],
        "mcpServers": {"broken": {"command": "/nonexistent/troupe-mcp-server"}}})

    async def open_it() -> None:
        troupe = Troupe.local(lake=lake, checkpoints=True)
        try:
            with pytest.raises(ConfigError, match="MCP server 'broken' did not start"):
                await troupe.open(team)
            [summary] = await troupe.sessions()
            assert summary.status == "failed" and "did not start" in (summary.error or "")
            with pytest.raises(CheckpointError, match="failed when it was created"):
                await asyncio.wait_for(troupe.resume(summary.session_id), 10)
        finally:
            await troupe.shutdown()

    asyncio.run(open_it())
    code, out, err = run_cli(capsys, "sessions", "list", "--lake", str(lake))
    assert code == 0 and "failed" in out and "troupe resume" not in err


class _SlowTroupe:
    """``Troupe.connect`` that gives an in-process runtime (no Ray) on ``lake``."""

    def __init__(self, lake: Path) -> None:
        self.lake = lake

    async def __call__(self, *args: object, **kwargs: object) -> Troupe:
        return Troupe.local(lake=self.lake)


def test_timeout_bounds_the_whole_run(tmp_path: Path, lake: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Troupe, "connect", _SlowTroupe(lake))
    with OpenAICompatServer(default=TextReply("far too late", delay_s=20)) as server:
        (tmp_path / "team.yaml").write_text(
            "name: slow\nentry: a\ndefault_model: main\nmodels:\n"
            f"  main: {{provider: openai, model: m, base_url: '{server.base_url}', timeout_s: 60}}\n"
            "agents:\n  - id: a\n")
        started = time.monotonic()
        code, out, err = run_cli(capsys, "run", str(tmp_path / "team.yaml"), "hi", "--timeout", "1", "--json",
                                 "--lake", str(lake))
        elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    assert code == 1
    result = json.loads(out)
    assert result["status"] == "cancelled" and "no result within 1s" in result["error"]
    assert "troupe: no result within 1s (--timeout); the session was cancelled" in err


def test_resume_of_a_session_that_never_got_its_input_answers_at_once(
    lake: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    team = parse_team({"name": "t", "entry": "a", "models": {"default": {"provider": "scripted", "scripts": {
        "*": [{"text": "done"}]}}}, "agents": [{"id": "a"}]})

    async def open_only() -> str:
        troupe = Troupe.local(lake=lake, checkpoints=True)
        session = await troupe.open(team)  # its process stops before anything is sent
        await troupe.shutdown()
        return str(session.id)

    session_id = asyncio.run(open_only())

    async def connect(*args: object, **kwargs: object) -> Troupe:
        return Troupe.local(lake=lake, checkpoints=True)

    monkeypatch.setattr(Troupe, "connect", connect)
    started = time.monotonic()
    code, _, err = run_cli(capsys, "resume", session_id, "--lake", str(lake), "--json")
    assert time.monotonic() - started < 10
    assert code == 2 and "never received its input" in err
