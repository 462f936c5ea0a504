"""Setup and teardown hooks for the environment tests (``tests.support.env_hooks:seed`` ...)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from troupe.runtime.session.environment import EnvironmentContext


def seed(ctx: EnvironmentContext) -> None:
    """Start the sample's counter at ``params.start`` (sync hook)."""
    (ctx.sample_dir / "state.json").write_text(json.dumps({"n": ctx.params.get("start", 0), "case": ctx.case_id}))


async def capture(ctx: EnvironmentContext) -> dict[str, Any]:
    """The state the server left in the sample dir (async hook), and what the hook was told."""
    await asyncio.sleep(0)
    path = ctx.sample_dir / "state.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    (ctx.sample_dir / "torn_down").write_text("yes")
    return {"state": state, "case_id": ctx.case_id, "sample": ctx.sample, "session_id": ctx.session_id}


def broken(ctx: EnvironmentContext) -> None:
    raise RuntimeError("the database would not load")
