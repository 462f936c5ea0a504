"""Team files for the ``troupe mcp serve`` tests, and the deterministic model one of them uses."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from troupe.runtime.llm.types import LLMRequest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_TEAM = REPO / "examples" / "research_team"

ECHO_TEAM = """\
name: echo
description: One agent that echoes; "sleep N" makes it take N seconds first.
entry: echo
default_model: fn
models:
  fn: {provider: function, function: "tests.support.mcp_serve_teams:echo_reply"}
  other: {provider: scripted, scripts: {"*": [{text: "scripted hello"}]}}
agents:
  - id: echo
    role: echoes the user
  - id: helper
    role: idle helper
"""


async def echo_reply(request: LLMRequest, agent: str) -> str:
    """Reply ``echo: <last user message>``; a message ``sleep N`` first waits N seconds."""
    text = next((m.content or "" for m in reversed(request.messages) if m.role == "user"), "")
    words = text.split()
    if len(words) == 2 and words[0] == "sleep":
        await asyncio.sleep(float(words[1]))
    return f"echo: {text}"


def write_teams(folder: Path) -> Path:
    """``folder`` with ``research_team/`` (the example), ``echo.yaml`` and a broken ``broken/team.yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(EXAMPLE_TEAM, folder / "research_team")
    (folder / "echo.yaml").write_text(ECHO_TEAM)
    (folder / "broken").mkdir()
    (folder / "broken" / "team.yaml").write_text("name: broken\nentry: nobody\nagents: []\n")
    (folder / "notes.yaml").write_text("just: a yaml file\n")
    return folder


__all__ = ["ECHO_TEAM", "echo_reply", "write_teams"]
