"""Guardrails in whole sessions (no Ray): permissions, approval granted / denied / timed out, budgets."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import call, team
from tests.support.lakes import rows
from troupe.runtime.api import Troupe
from troupe.runtime.cli.approval_prompt import ApprovalPrompt, ApproveMode
from troupe.runtime.errors import ConfigError
from troupe.runtime.session.approvals import Approvals
from troupe.runtime.session.supervisor import SessionStatus

APPROVED = "tests.support.tool_fixtures:approved_write"
MARKER = "tests.support.tool_fixtures:write_marker"


def one_call_team(tool: str, name: str, path: Path, **extra: Any):
    return team([{"id": "lead", "tools": [tool], "permissions": {"level": "L1"}}],
                scripts={"lead": [{"tool_calls": [call(name, path=str(path))]}, {"text": "finished"}]}, **extra)


async def run_with(troupe: Troupe, cfg: Any, decide: Any) -> tuple[Any, list[Any]]:
    """Run a session, answering approval requests with ``decide(session, event)``."""
    seen = []
    async with await troupe.open(cfg) as session:
        await session.send("go")
        async for event in session.events():
            seen.append(event)
            if event.type == "approval.requested" and decide is not None:
                await decide(session, event)
        return await session.result(timeout=10), seen


def last_tool_result(lake: Path) -> dict[str, Any]:
    [row] = rows(lake, "select type, payload from events where type in ('tool.result','tool.error')")
    return {"type": row["type"], **json.loads(row["payload"])}


async def test_permission_beyond_the_agent_never_executes(troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    result, _ = await run_with(troupe, one_call_team(MARKER, "write_marker", marker), None)
    assert result.status is SessionStatus.COMPLETED and result.reply == "finished"
    assert not marker.exists()
    denied = rows(lake, "select tool, payload from events where type='guardrail.denied'")
    assert [d["tool"] for d in denied] == ["write_marker"]
    assert json.loads(denied[0]["payload"])["reason"] == "level"
    out = last_tool_result(lake)
    assert out["type"] == "tool.error" and "needs level L3" in out["result"]


async def test_approval_granted_runs_the_call(troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    target = tmp_path / "ok.txt"

    async def approve(session: Any, event: Any) -> None:
        assert [p["tool"] for p in await session.approvals()] == ["approved_write"]
        await session.approve(event.data["id"], "looks fine")

    result, seen = await run_with(troupe, one_call_team(APPROVED, "approved_write", target), approve)
    assert result.status is SessionStatus.COMPLETED
    assert target.read_text() == "approved"
    decided = [e for e in seen if e.type == "approval.decided"]
    assert [(e.status, e.data["by"], e.data["reason"]) for e in decided] == [("approved", "client", "looks fine")]
    assert last_tool_result(lake)["type"] == "tool.result"


async def test_approval_denied_is_a_model_visible_error(troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    target = tmp_path / "no.txt"

    async def deny(session: Any, event: Any) -> None:
        await session.deny(event.data["id"], "not today")

    result, _ = await run_with(troupe, one_call_team(APPROVED, "approved_write", target), deny)
    assert result.status is SessionStatus.COMPLETED and result.reply == "finished"
    assert not target.exists()
    out = last_tool_result(lake)
    assert out["type"] == "tool.error" and "did not get it (not today)" in out["result"]
    types = [r["type"] for r in rows(lake, "select type from events where type like 'approval.%' "
                                           "or type='guardrail.denied' order by ts, seq")]
    assert types == ["approval.requested", "approval.decided", "guardrail.denied"]


async def test_no_answer_within_the_timeout_denies(troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    target = tmp_path / "late.txt"
    cfg = one_call_team(APPROVED, "approved_write", target, approval_timeout_s=0.2)
    result, seen = await run_with(troupe, cfg, None)
    assert result.status is SessionStatus.COMPLETED
    assert not target.exists()
    [decided] = [e for e in seen if e.type == "approval.decided"]
    assert (decided.status, decided.data["by"]) == ("denied", "timeout")
    assert "no answer within 0.2s" in last_tool_result(lake)["result"]


async def test_cli_prompt_answers_from_the_terminal(troupe: Troupe, tmp_path: Path) -> None:
    for answer, exists in (("y\n", True), ("\n", False)):
        target = tmp_path / f"prompt-{exists}.txt"
        out = io.StringIO()

        async def prompt(session: Any, event: Any, answer: str = answer, out: io.StringIO = out) -> None:
            await ApprovalPrompt(session, ApproveMode.ASK, read_line=lambda: answer, out=out)(event)

        result, _ = await run_with(troupe, one_call_team(APPROVED, "approved_write", target), prompt)
        assert result.status is SessionStatus.COMPLETED
        assert target.exists() is exists
        assert "wants to call approved_write" in out.getvalue() and "allow? [y/N]" in out.getvalue()


async def test_approvals_core_rejects_unknown_ids_and_ends_with_the_session() -> None:
    emitted: list[tuple[str, Any]] = []
    approvals = Approvals(session_id="s", emit=lambda p, **f: emitted.append((p.event_type, f.get("status"))))
    with pytest.raises(ConfigError, match="no pending approval 'nope'"):
        approvals.decide("nope", approved=True)
    waiting = asyncio.create_task(approvals.request(agent="a", tool="t", arguments="{}", call_id="c", timeout_s=5))
    await asyncio.sleep(0)
    assert len(approvals.pending()) == 1
    approvals.deny_all("the session ended (cancelled)")
    decision = await waiting
    assert (decision["approved"], decision["by"]) == (False, "session")
    assert emitted == [("approval.requested", "pending"), ("approval.decided", "denied")]
