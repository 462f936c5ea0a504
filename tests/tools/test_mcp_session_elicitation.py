"""Elicitation and roots in whole sessions: an MCP server's request for input during a tool call reaches the
session and is answered like an approval (by the client through the Session handle or the CLI prompt, by the
team's approval policy, or declined on the server's ``elicitation_timeout_s``), in process and on the
session-wide Ray; the session's workspace is one of the server's roots."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.lakes import rows
from tests.support.mcp_servers import stdio_config
from tests.tools.test_mcp_sessions import mcp_team
from troupe.runtime.api import Troupe
from troupe.runtime.cli.approval_prompt import ApprovalPrompt, ApproveMode
from troupe.runtime.config import parse_team
from troupe.runtime.errors import ConfigError
from troupe.runtime.session.supervisor import SessionStatus


def booking_team(**extra: Any) -> Any:
    server = stdio_config(elicitation_timeout_s=extra.pop("timeout_s", 20.0)).model_dump(exclude_defaults=True)
    return parse_team(mcp_team({"own": server}, [{"id": "lead", "tools": ["own__book", "own__roots"],
                                                   "permissions": {"level": "L2"}}],
                               {"lead": [{"tool_calls": [{"name": "own__book", "arguments": {}},
                                                         {"name": "own__roots", "arguments": {}}]},
                                         {"text": "done"}]}, **extra))


async def run_answering(troupe: Troupe, cfg: Any, answer: Any) -> tuple[Any, list[Any]]:
    """Run a session, handing each ``elicitation.requested`` event to ``answer(session, event)``."""
    seen = []
    async with await troupe.open(cfg) as session:
        await session.send("go")
        async for event in session.events():
            seen.append(event)
            if event.type == "elicitation.requested" and answer is not None:
                await answer(session, event)
        return await session.result(timeout=30), seen


def outcomes(lake: Path, session_id: str) -> dict[str, dict[str, Any]]:
    sql = (f"select type, tool, payload from events where session_id='{session_id}' and type in "
           "('tool.result','tool.error','elicitation.requested','elicitation.answered')")
    return {f"{r['type']}:{r['tool']}": {"type": r["type"], **json.loads(r["payload"])} for r in rows(lake, sql)}


async def client_answers(session: Any, event: Any) -> None:
    with pytest.raises(ConfigError, match="does not fit the form"):  # seats must be an integer: asked again
        await session.answer_elicitation(event.data["id"], "accept", {"name": "Ada", "seats": "many"})
    await session.answer_elicitation(event.data["id"], "accept", {"name": "Ada"})


def check_answered_by_client(lake: Path, result: Any, seen: list[Any]) -> None:
    assert result.status is SessionStatus.COMPLETED, result.error
    got = outcomes(lake, result.session_id)
    assert got["tool.result:own__book"]["result"] == "booked 2 seats for Ada"  # the schema's default filled in
    asked = got["elicitation.requested:own__book"]
    assert asked["message"] == "Who is the booking for?" and asked["fields"] == ["name", "seats"]
    assert asked["requested_schema"]["properties"]["seats"]["default"] == 2
    answered = got["elicitation.answered:own__book"]
    assert (answered["action"], answered["by"], answered["content_keys"]) == ("accept", "client", ["name", "seats"])
    assert [e.type for e in seen].count("elicitation.requested") == 1  # recorded once, live, by the session


async def test_the_client_answers_a_servers_form_through_the_session(troupe: Troupe, lake: Path) -> None:
    result, seen = await run_answering(troupe, booking_team(), client_answers)
    check_answered_by_client(lake, result, seen)
    roots = outcomes(lake, result.session_id)["tool.result:own__roots"]["result"]
    assert result.session_id in roots and roots.startswith("file://")  # the session's workspace is a root


async def test_the_cli_prompt_collects_the_fields(troupe: Troupe, lake: Path) -> None:
    answers = iter(["y\n", "Grace\n", "4\n"])
    out = io.StringIO()

    async def prompt(session: Any, event: Any) -> None:
        await ApprovalPrompt(session, ApproveMode.ASK, read_line=lambda: next(answers), out=out)(event)

    result, _ = await run_answering(troupe, booking_team(), prompt)
    assert outcomes(lake, result.session_id)["tool.result:own__book"]["result"] == "booked 4 seats for Grace"
    assert "asks: Who is the booking for?" in out.getvalue() and "(integer; default 2; optional)" in out.getvalue()


async def test_the_teams_policy_answers_or_declines(troupe: Troupe, lake: Path) -> None:
    policy = {"default": "ask", "elicitation": [{"server": "own", "message": "who is*", "action": "accept",
                                                 "content": {"name": "Policy", "seats": 1}}]}
    result, _ = await run_answering(troupe, booking_team(approval_policy=policy), None)
    got = outcomes(lake, result.session_id)
    assert got["tool.result:own__book"]["result"] == "booked 1 seats for Policy"
    assert got["elicitation.answered:own__book"]["by"] == "policy"
    result, _ = await run_answering(troupe, booking_team(approval_policy={"default": "no"}), None)
    got = outcomes(lake, result.session_id)
    assert got["tool.result:own__book"]["result"] == "not booked (decline)"
    assert got["elicitation.answered:own__book"]["reason"] == "approval policy default: no"


async def test_nobody_answers_within_the_servers_timeout(troupe: Troupe, lake: Path) -> None:
    result, _ = await run_answering(troupe, booking_team(timeout_s=0.3), None)
    got = outcomes(lake, result.session_id)
    assert got["tool.result:own__book"]["result"] == "not booked (decline)"
    answered = got["elicitation.answered:own__book"]
    assert (answered["by"], answered["reason"]) == ("timeout", "no answer within 0.3s")


@pytest.mark.ray
async def test_on_ray_the_node_actors_request_reaches_the_session(troupe_ray: Troupe, lake: Path) -> None:
    result, seen = await run_answering(troupe_ray, booking_team(), client_answers)
    check_answered_by_client(lake, result, seen)
    roots = outcomes(lake, result.session_id)["tool.result:own__roots"]["result"]
    assert result.session_id in roots
