"""On Ray: a cpu tool with ``sandbox=True`` runs as a Ray task whose function runs in the sandbox there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.teams import call, team
from tests.support.lakes import rows
from tests.tools.test_sandbox import bwrap_here  # noqa: F401  (skip locally, fail under CI, without bwrap)
from troupe.runtime.api import Troupe
from troupe.runtime.session.supervisor import SessionStatus
from troupe.tools.spec import tool

pytestmark = pytest.mark.ray
HERE = "tests.tools.test_sandbox_ray"


def _peek(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror}"


@tool(sandbox=True, timeout_s=30)
def peek_boxed(path: str) -> str:
    """Read a file (sandboxed)."""
    return _peek(path)


@tool(execution="cpu", timeout_s=30)
def peek_open(path: str) -> str:
    """Read a file."""
    return _peek(path)


async def test_sandboxed_cpu_tool_on_ray(troupe_ray: Troupe, lake: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("host data")
    cfg = team([{"id": "lead", "tools": [f"{HERE}:peek_boxed", f"{HERE}:peek_open"]}],
               scripts={"lead": [{"tool_calls": [call("peek_boxed", path=str(outside)),
                                                 call("peek_open", path=str(outside))]}, {"text": "done"}]},
               workspace={"root": str(tmp_path / "ws")})
    result = await troupe_ray.run(cfg, "go", timeout=120, placement="packed")
    assert result.status is SessionStatus.COMPLETED, result.error
    outs = rows(lake, f"select tool, payload from events where session_id='{result.session_id}' and type='tool.result'")
    by_tool = {o["tool"]: json.loads(o["payload"])["result"] for o in outs}
    assert by_tool == {"peek_boxed": "FileNotFoundError: No such file or directory", "peek_open": "host data"}
