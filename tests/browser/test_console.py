"""The web console in a real browser (headless Chromium): a live session's lanes, a tool call, an
approval given by a click, and a finished run opened from the lake by another server process's view."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import Page, Server, colours, start_server

pytestmark = pytest.mark.browser

AGENTS = ("lead", "worker")


def lane_items(page: Page, agent: str) -> int:
    """Timeline entries drawn in an agent's lane (tool calls, replies, notes)."""
    return int(page.page.locator(f".timeline .item[data-lane='{agent}']").count())


def assert_picture(page: Page, name: str) -> None:
    """A screenshot of the whole page and of each agent's lane header: none is a blank picture."""
    whole = page.screenshot(name)
    assert colours(whole) > 50, f"{name}.png is nearly blank"
    for agent in AGENTS:
        head = page.screenshot(f"{name}-{agent}", f".lane-head[data-lane='{agent}']")
        assert colours(head) > 5, f"the {agent} lane header of {name}.png is blank"


def test_live_session_lanes_tool_call_and_approval_by_click(server: Server, page: Page) -> None:
    p = page.page
    p.goto(f"{server.url}/console/")
    p.select_option("form.new-session select[name=team]", "console_demo")
    p.fill("form.new-session input[name=input]", "go")
    p.click("form.new-session button[type=submit]")

    # A lane for every agent of the team (from session.started), and the first tool call, done.
    for agent in AGENTS:
        p.wait_for_selector(f".lane-head[data-lane='{agent}']")
    p.wait_for_selector(".item.tool[data-tool='calculator'].status-ok")
    # The gated call waits: the worker's lane says so and the call has the buttons.
    approve = p.locator(".item.tool[data-tool='approved_write'] button.approve")
    approve.wait_for()
    assert p.inner_text(".lane-head[data-lane='worker'] .state") == "waiting approval"
    assert p.inner_text(".lane-head[data-lane='lead'] .state") == "calling tool"
    assert "assign_tasks" in p.inner_text(".lane-head[data-lane='lead'] .running")
    assert p.locator(".arrow-row[data-from='user'][data-to='lead']").count() == 1
    assert p.locator(".arrow-row[data-from='lead'][data-to='worker']").count() == 1  # the task
    assert not server.out.exists()
    assert_picture(page, "live-waiting")

    approve.click()
    p.wait_for_selector(".session-status.status-completed")
    assert server.out.read_text() == "approved"
    card = p.locator(".item.tool[data-tool='approved_write']")
    assert "status-ok" in (card.get_attribute("class") or "")
    assert "approved by client" in card.inner_text()
    assert p.locator("button.approve").count() == 0
    for agent in AGENTS:
        assert p.inner_text(f".lane-head[data-lane='{agent}'] .state") == "done"
        assert lane_items(page, agent) >= 2
    assert p.inner_text("table.blackboard tr[data-key='answer']").split("\t")[:2] == ["answer", "42"]
    assert "The answer is 42." in p.inner_text(".side .reply")
    assert_picture(page, "live-done")
    assert page.errors == []


def run_session_over_http(server: Server) -> str:
    """A whole session through the API (the approval answered over HTTP too): its id, once finished."""
    api = f"{server.url}/api/v1"
    with httpx.Client(timeout=10) as http:
        created = http.post(f"{api}/sessions", json={"team": "console_demo", "input": "go"})
        assert created.status_code == 201, created.text
        sid = str(created.json()["id"])
        deadline = time.monotonic() + 20
        pending: list[dict[str, Any]] = []
        while not pending and time.monotonic() < deadline:
            pending = http.get(f"{api}/approvals", params={"session": sid}).json()
            time.sleep(0.05)
        assert [a["tool"] for a in pending] == ["approved_write"]
        assert http.post(f"{api}/approvals/{pending[0]['id']}/approve", json={"reason": "ok"}).status_code == 200
        result = http.get(f"{api}/sessions/{sid}/result", params={"wait_s": 20}).json()
        assert result["status"] == "completed", result
    return sid


def test_a_finished_run_opens_from_the_lake(server: Server, page: Page, tmp_path: Path) -> None:
    sid = run_session_over_http(server)
    # Another server over the same lake holds no session: what it shows comes from the Parquet files.
    reader = start_server(tmp_path / "reader", lake=server.lake)
    try:
        p = page.page
        p.goto(f"{reader.url}/console/#/runs")
        link = p.locator(f"table.past a.session-link[data-session='{sid}']")
        link.click()
        p.wait_for_selector(".session-status.status-completed")
        assert p.locator(".session-head .connection").inner_text().strip().startswith("· ended")
        for agent in AGENTS:
            assert p.inner_text(f".lane-head[data-lane='{agent}'] .state") == "done"
            assert lane_items(page, agent) >= 2
        tools = p.locator(".item.tool").evaluate_all("els => els.map(e => [e.dataset.tool, e.className])")
        assert [t for t, _ in tools] == ["assign_tasks", "calculator", "approved_write", "blackboard_put"]
        assert all("status-ok" in cls for _, cls in tools)
        assert "approved by client: ok" in p.inner_text(".item.tool[data-tool='approved_write']")
        assert p.locator(".side ul.tasks li .badge").inner_text() == "done"
        assert_picture(page, "finished-from-lake")
        assert page.errors == []
    finally:
        reader.stop()
