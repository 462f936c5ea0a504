"""A whole session (in-process, scripted model) whose team file's ``sandbox:`` block decides how its shell runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import call, team
from tests.support.lakes import rows
from tests.tools.test_sandbox import bwrap_here  # noqa: F401  (skip locally, fail under CI, without bwrap)
from troupe.runtime.api import Troupe
from troupe.runtime.session.supervisor import SessionStatus


def shell_team(tmp_path: Path, outside: Path, sandbox: Any) -> Any:
    return team(
        [{"id": "lead", "tools": ["shell"], "permissions": {"level": "L3", "scopes": ["shell:exec"]}}],
        scripts={"lead": [{"tool_calls": [call("shell", command=f"cat {outside}; python3 -c \"b = b'x' * (200 << 20)\"")]},
                          {"text": "done"}]},
        workspace={"root": str(tmp_path / "ws")}, sandbox=sandbox,
    )


async def shell_output(troupe: Troupe, lake: Path, cfg: Any) -> str:
    result = await troupe.run(cfg, "go", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    [out] = rows(lake, f"select payload from events where session_id='{result.session_id}' and type='tool.result'")
    return str(json.loads(out["payload"])["result"])


@pytest.mark.parametrize("sandbox", [{"memory_mb": 64}, "off"])
async def test_the_team_files_sandbox_block_takes_effect(troupe: Troupe, lake: Path, tmp_path: Path,
                                                         sandbox: Any) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host-only words")
    out = await shell_output(troupe, lake, shell_team(tmp_path, outside, sandbox))
    if sandbox == "off":
        assert out.startswith("host-only words") and out.endswith("[exit code 0]")
    else:  # confined, and its memory limit is the team's 64 MB (200 MB is refused)
        assert "host-only words" not in out and "No such file or directory" in out
        assert "[exit code 0]" not in out
