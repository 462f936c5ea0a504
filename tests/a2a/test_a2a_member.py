"""A remote A2A agent as a team member: a2a-sdk's own server (the calculator peer, in a venv of its own) takes
the lead's task and message; the answers come back as the task's result and a reply; the calls are in the lake."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.a2a_peers import CALC_SCRIPT
from tests.support.a2a_teams import MEMBER_TEAM
from tests.support.lakes import rows
from tests.support.mcp_servers import free_port
from troupe.runtime.api import Troupe
from troupe.runtime.config import parse_team
from troupe.runtime.session.supervisor import SessionStatus


@pytest.fixture(scope="module")
def calc_url(a2a_peer_python: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([str(a2a_peer_python), str(CALC_SCRIPT), str(port)], stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/.well-known/agent-card.json", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the calculator peer did not start"
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _run(troupe: Troupe, url: str, text: str, **open_kwargs: object) -> tuple[object, str]:
    team = parse_team(yaml.safe_load(MEMBER_TEAM % url))
    async with await troupe.open(team, **open_kwargs) as session:  # type: ignore[arg-type]
        result = await session.run(text, timeout=60)
        await session.backend.flush()
        return result, str(session.id)


async def test_lead_assigns_and_messages_a_remote_member_and_the_calls_are_in_the_lake(calc_url: str, tmp_path: Path) -> None:
    troupe = Troupe.local(lake=tmp_path / "lake")
    try:
        result, sid = await _run(troupe, calc_url, "add 2 and 3")
        assert result.status is SessionStatus.COMPLETED, result.error  # type: ignore[attr-defined]
        assert result.reply.startswith("calc says:") and "5" in result.reply  # type: ignore[attr-defined]
        asked, _ = await _run(troupe, calc_url, "ask add 4 and 5")
        assert asked.reply == "calc replied: 9", asked  # type: ignore[attr-defined]
        failed, sid3 = await _run(troupe, calc_url, "add fail")
        assert failed.status is SessionStatus.COMPLETED and "ended its task failed" in failed.reply  # type: ignore[attr-defined]
    finally:
        await troupe.shutdown()
    lake = tmp_path / "lake"
    calls = rows(lake, f"SELECT type, agent, status, task_id, payload FROM events WHERE session_id = '{sid}' "
                       "AND type LIKE 'a2a.%' ORDER BY seq")
    types = [r["type"] for r in calls]
    assert types[0] == "a2a.request" and types[-1] == "a2a.response" and "a2a.update" in types
    assert {r["agent"] for r in calls} == {"calc"} and calls[-1]["status"] == "ok" and calls[0]["task_id"]
    assert '"agent_name":"calc"' in calls[0]["payload"].replace(" ", "")
    published = rows(lake, f"SELECT payload FROM events WHERE session_id = '{sid}' AND type = 'blackboard.put'")
    assert any("results/" in r["payload"] for r in published)  # publish_results works for a remote member too
    statuses = rows(lake, f"SELECT status FROM events WHERE session_id = '{sid3}' AND type = 'task.status'")
    assert "failed" in [r["status"] for r in statuses]
    no_llm = rows(lake, "SELECT count(*) AS n FROM events WHERE agent = 'calc' AND type LIKE 'llm.%'")
    assert no_llm[0]["n"] == 0


async def test_an_unreachable_remote_member_fails_the_session_with_a_provider_error(tmp_path: Path) -> None:
    troupe = Troupe.local(lake=tmp_path / "lake")
    try:
        result, _ = await _run(troupe, f"http://127.0.0.1:{free_port()}", "add 1 and 1")
    finally:
        await troupe.shutdown()
    assert result.status is SessionStatus.FAILED and "could not be reached" in result.error  # type: ignore[attr-defined]


@pytest.mark.ray
async def test_remote_member_on_ray(calc_url: str, troupe_ray: Troupe) -> None:
    result, _ = await _run(troupe_ray, calc_url, "add 20 and 22", placement="packed")
    assert result.status is SessionStatus.COMPLETED and "42" in result.reply, result  # type: ignore[attr-defined]
