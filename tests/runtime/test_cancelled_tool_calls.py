"""A session cancelled while a tool call is in flight: the call still ends in the lake, with a
``tool.error`` (``error_type`` ``cancelled``) after its ``tool.call``, so no call is left open."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.runtime.teams import call, team
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query


async def test_a_cancelled_session_closes_its_in_flight_tool_calls(lake: Path, tmp_path: Path) -> None:
    cfg = team([{"id": "lead", "tools": ["tests.support.tool_fixtures:io_wait"]}],
               scripts={"lead": [{"tool_calls": [call("io_wait", seconds=30, folder=str(tmp_path), tag="slow")]},
                                 {"text": "done"}]})
    troupe = Troupe.local(lake=lake)
    try:
        session = await troupe.open(cfg)
        await session.send("go")
        for _ in range(200):
            if (tmp_path / "slow.start").exists():
                break
            await asyncio.sleep(0.02)
        assert (tmp_path / "slow.start").exists()
        await session.cancel("the client went away")
        result = await session.result(timeout=10)
        assert str(result.status) == "cancelled"
        await session.close()
    finally:
        await troupe.shutdown()
    assert (tmp_path / "slow.cancelled").exists()  # the tool itself was stopped
    rows = query(lake, f"select type, tool, status, payload->>'error_type' error_type, payload->>'id' id from events "
                       f"where session_id = '{session.id}' and type like 'tool.%' order by ts").to_pylist()
    assert [(r["type"], r["tool"]) for r in rows] == [("tool.call", "io_wait"), ("tool.error", "io_wait")]
    assert rows[1]["status"] == "cancelled" and rows[1]["error_type"] == "cancelled" and rows[1]["id"] == rows[0]["id"]
