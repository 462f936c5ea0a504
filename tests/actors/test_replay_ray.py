"""Replay and fork on dedicated placement (one Ray actor per agent): zero model calls (the model fails
every request once a marker file exists, in whichever process it runs), the same path and reply."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from benchmarks.support.recovery_team import expected_reply, ledger_items, recovery_team, request_text
from tests.runtime.teams import team
from tests.runtime.test_recovery_local import crash, resume_in_a_new_process
from troupe.runtime.api import Troupe
from troupe.runtime.cli.main import main
from troupe.runtime.config import load_team
from troupe.runtime.eventlog.lake import query
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall

# DOWN is one flag file for the machine (the model runs in Ray workers): the tests that use it must not run at once
# (.ci/run's xdist hands out whole files).
pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_session")]

DOWN = Path(tempfile.gettempdir()) / f"troupe-replay-model-down-{os.getuid()}"


def down_when_marked(request: LLMRequest, agent: str) -> LLMResponse | str:
    """Answers from the request; fails every request while the marker file exists."""
    if DOWN.exists():
        raise RuntimeError("the model endpoint is down (a replay must not ask it)")
    last = request.messages[-1]
    if last.role == "tool":
        return f"calculated: {last.content}"
    return LLMResponse(tool_calls=[ToolCall(id="c1", name="calculator", arguments='{"expression": "6 * 7"}')])


@pytest.fixture
def marker() -> Iterator[None]:
    DOWN.unlink(missing_ok=True)
    yield
    DOWN.unlink(missing_ok=True)


async def test_replays_and_a_fork_on_dedicated_placement(lake: Path, marker: Any) -> None:
    troupe = await Troupe.connect(lake=lake, placement="dedicated")
    try:
        calc = team([{"id": "a", "tools": ["calculator"]}], function=f"{__name__}:down_when_marked")
        first = await troupe.run(calc, "what is 6 * 7?", timeout=60)
        example = await troupe.run(load_team(Path(__file__).resolve().parents[2] / "examples" / "research_team"),
                                   "compute", timeout=60)
        assert first.reply == "calculated: 42" and example.ok, example.error
        DOWN.touch()
        for source in (first, example):
            report = await troupe.replay(source.session_id)
            assert report.identical, report.summary()
            assert report.reply == source.reply
        call_id = query(lake, f"""select json_extract_string(payload, '$.id') as id from events
                                  where session_id = '{first.session_id}' and type = 'tool.result'""").to_pylist()[0]["id"]
        DOWN.unlink()
        forked = await troupe.fork(first.session_id, tool_results={call_id: "41"})
        assert forked.reply == "calculated: 41"
    finally:
        await troupe.shutdown()
    parents = query(lake, """select json_extract_string(payload, '$.forked_from') as parent from events
                             where type = 'session.started' and json_extract_string(payload, '$.forked_from') is not null""")
    assert parents.to_pylist() == [{"parent": first.session_id}]


def doctor(lake: Path, event_id: str, old: str, new: str) -> None:
    """Change one recorded event's payload in the lake's Parquet files (a record the code no longer matches)."""
    for part in (lake / "events").rglob("*.parquet"):
        table = pq.read_table(part, partitioning=None)
        rows = table.to_pylist()
        hit = [r for r in rows if r["event_id"] == event_id]
        if hit:
            hit[0]["payload"] = hit[0]["payload"].replace(old, new)
            pq.write_table(table.from_pylist(rows, schema=table.schema), part)
            return
    raise AssertionError(f"no event {event_id} in {lake}")


def test_troupe_replay_and_troupe_fork_on_the_command_line(lake: Path, tmp_path: Path, marker: Any,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    async def record() -> str:
        local = Troupe.local(lake=lake)  # recorded without Ray; replayed and forked on Ray (dedicated)
        try:
            calc = team([{"id": "a", "tools": ["calculator"]}], function=f"{__name__}:down_when_marked")
            result = await local.run(calc, "what is 6 * 7?", timeout=30)
        finally:
            await local.shutdown()
        assert result.reply == "calculated: 42"
        return str(result.session_id)

    source = asyncio.run(record())
    DOWN.touch()
    assert main(["replay", source, "--lake", str(lake), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["identical"] and report["source"] == source and report["reply"] == "calculated: 42"
    assert report["divergence"] is None and report["steps"]["a"] > 0

    # the same record, its model's answer changed as if the tool's schema had: exit status 1, the divergence
    asked = query(lake, f"""select event_id from events where session_id = '{source}' and type = 'llm.response'
                            and json_array_length(payload, '$.tool_calls') > 0""").to_pylist()[0]["event_id"]
    changed = tmp_path / "changed"
    shutil.copytree(lake, changed)
    doctor(changed, asked, '\\"expression\\"', '\\"expr\\"')
    assert main(["replay", source, "--lake", str(lake), "--source-lake", str(changed), "--json"]) == 1
    diverged = json.loads(capsys.readouterr().out)
    assert not diverged["identical"] and diverged["status"] == "failed"
    div = diverged["divergence"]
    assert div["agent"] == "a" and div["replayed"]["type"] == "tool.call" and "expr\"" in div["replayed"]["key"]["arguments"]

    DOWN.unlink()
    [result] = query(lake, f"""select event_id, json_extract_string(payload, '$.id') as id from events
                               where session_id = '{source}' and type = 'tool.result'""").to_pylist()
    assert main(["fork", source, "--lake", str(lake), "--at", result["event_id"],
                 "--tool-result", f"{result['id']}=41", "--json"]) == 0
    forked = json.loads(capsys.readouterr().out)
    assert forked["reply"] == "calculated: 41" and forked["status"] == "completed"
    link = query(lake, f"""select json_extract_string(payload, '$.forked_from') as parent,
                                  json_extract_string(payload, '$.fork_point') as point from events
                           where session_id = '{forked["session_id"]}' and type = 'session.started'""").to_pylist()
    assert link == [{"parent": source, "point": f"event:{result['event_id']}"}]


async def test_a_resumed_session_replays_on_dedicated_placement(lake: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded in one process across a crash and a resume (two runs, the lead's notices in other batches
    than an undisturbed run makes); replayed by agents in their own actors: the same path, no side effect."""
    monkeypatch.setenv("TROUPE_CHAOS_STEP_S", "0.05")
    ledger = tmp_path / "ledger"
    first = Troupe.local(lake=lake, checkpoints=True)
    session = await first.open(recovery_team())
    await session.send(request_text(ledger, "x"))
    while len(ledger_items(ledger)) < 2:
        await asyncio.sleep(0.01)
    await first.backend.flush()
    crash(first)
    assert (await resume_in_a_new_process(lake, session.id)).reply == expected_reply("x")
    troupe = await Troupe.connect(lake=lake, placement="dedicated")
    try:
        report = await troupe.replay(str(session.id))
    finally:
        await troupe.shutdown()
    assert report.identical, report.summary()
    assert report.reply == expected_reply("x")
    assert sorted(ledger_items(ledger)) == ["x-worker_a", "x-worker_b"]
