"""``troupe run|chat --server URL`` answer an MCP server's form as the local CLI does: the field prompts of
runtime/cli/elicitation_prompt.py, over HTTP (a misfit answer is refused by the server with what is wrong
and asked again); a chat that cannot prompt declines at once (not on the server's timeout)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.access.conftest import Keyed
from tests.access.test_cli_remote import _troupe
from tests.support.booking_team import write_booking_team


def tool_result(keyed: Keyed, key: str, sid: str) -> str:
    timeline = httpx.get(f"{keyed.url}/api/v1/sessions/{sid}/timeline", headers={"Authorization": f"Bearer {key}"},
                         timeout=30).json()
    [result] = [json.loads(e["payload"]) for e in timeline if e["type"] == "tool.result"]
    return str(result["result"])


def test_run_over_http_prompts_for_the_fields_and_asks_again_after_a_misfit(keyed: Keyed, tmp_path: Path) -> None:
    write_booking_team(tmp_path / "teams")
    key = keyed.keys["alice"]
    done = _troupe("run", "booking", "book", "--server", keyed.url, "--approve", "ask", "--json", key=key,
                   stdin="y\nGrace\nmany\nGrace\n4\n")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["status"], out["reply"]) == ("completed", "done")
    assert "[input] MCP server 'own' asks: Who is the booking for?" in done.stderr
    assert "(integer; default 2; optional)" in done.stderr
    assert "does not fit the form: seats: 'many' is not of type 'integer'" in done.stderr
    assert tool_result(keyed, key, out["session_id"]) == "booked 4 seats for Grace"


def test_chat_over_http_declines_when_nobody_can_answer(keyed: Keyed, tmp_path: Path) -> None:
    write_booking_team(tmp_path / "teams")  # chat's stdin carries the turns: not a terminal, so it declines at once
    key = keyed.keys["alice"]
    done = _troupe("chat", "booking", "--server", keyed.url, "--json", key=key, stdin="book\n")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["replies"] == ["done"]
    assert tool_result(keyed, key, out["session_id"]) == "not booked (decline)"
