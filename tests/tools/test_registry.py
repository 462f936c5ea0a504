"""Tool lookup: a plain function listed by import path resolves the same way every time."""

from __future__ import annotations

from pathlib import Path

import pytest

from troupe.runtime.api import Troupe
from troupe.runtime.config import parse_team
from troupe.tools.builtins import default_registry
from troupe.tools.registry import ToolRegistry, import_tool
from troupe.tools.spec import tool

PLAIN = "tests.tools.test_registry:plain_wait"


async def plain_wait(seconds: float) -> str:
    """Wait a little (a plain, undecorated function: the registry makes the tool)."""
    return f"waited {seconds}"


def test_a_plain_function_by_import_path_resolves_twice() -> None:
    registry = ToolRegistry()
    [first] = registry.resolve([PLAIN])
    [again] = registry.resolve([PLAIN])
    assert first is again and first.name == "plain_wait"
    assert import_tool(PLAIN) is first  # made once per function


def test_a_different_tool_under_a_taken_name_is_still_refused() -> None:
    registry = ToolRegistry()
    registry.resolve([PLAIN])

    @tool(name="plain_wait")
    async def impostor(seconds: float) -> str:
        """Not the same tool."""
        return ""

    with pytest.raises(ValueError, match="tool 'plain_wait' .* has the name of the tool 'plain_wait'"):
        registry.register(impostor)


async def test_the_same_team_opens_twice_in_one_process(tmp_path: Path) -> None:
    team = parse_team({"name": "t", "entry": "a", "models": {"default": {"provider": "scripted", "scripts": {
        "*": [{"text": "done"}]}}}, "agents": [{"id": "a", "tools": [PLAIN]}]})
    troupe = Troupe(Troupe.local(lake=tmp_path / "lake").backend, registry=default_registry())
    try:
        for _ in range(2):
            session = await troupe.open(team)
            await session.close()
    finally:
        await troupe.shutdown()
