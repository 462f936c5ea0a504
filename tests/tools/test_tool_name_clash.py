"""A team's Python tool named like a built-in (``write_file``) is a clear configuration error naming the tool,
both origins and the fix, for every command (they all check the team before they start), not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from troupe.runtime.cli.main import main
from troupe.tools.builtins import default_registry
from troupe.tools.registry import ToolNameClashError
from troupe.tools.spec import tool


@tool
def write_file(path: str) -> str:
    """A team's own write_file: its name is a built-in's."""
    return path


OWN = f"{__name__}:write_file"


def _team(tmp_path: Path) -> Path:
    team = tmp_path / "team.yaml"
    team.write_text(yaml.safe_dump({
        "name": "clash", "entry": "a", "default_model": "m",
        "models": {"m": {"provider": "scripted", "scripts": {"a": [{"text": "hi"}]}}},
        "agents": [{"id": "a", "tools": [OWN]}]}))
    return team


def test_the_registry_names_both_tools_and_the_fix() -> None:
    with pytest.raises(ToolNameClashError) as info:
        default_registry().resolve([OWN])
    message = info.value.message
    assert message.startswith(f"tool 'write_file' ({OWN}) has the name of the built-in tool 'write_file' (troupe.tools.")
    assert 'rename yours (@tool(name="my_write_file"))' in message


@pytest.mark.parametrize("command", [["run"], ["a2a", "serve"]])
def test_every_command_says_so_and_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    monkeypatch.setenv("TROUPE_HOME", str(tmp_path / "home"))
    extra = ["hi"] if command == ["run"] else ["--local", "--port", "1"]
    assert main([*command, str(_team(tmp_path)), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("troupe: error: agent 'a': tool 'write_file' (") and "Traceback" not in err
    assert "has the name of the built-in tool 'write_file'" in err and "rename yours" in err
