"""Taint through the task registry (local placement, no Ray): a task goal written by a tainted agent
is untrusted content for its assignee (only the values its creator's user wrote still vouch), and a
task output written by a tainted agent taints whoever reads it (the completion notice, or
``task_wait``/``assign_tasks``' result), so an injected address cannot be laundered through a task."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import team
from tests.runtime.test_risk_session import ATTACKER, INBOX, SEND_TOOL, SENT, USER_ADDR, by_recipient
from tests.support.cores import SID, Recorder
from tests.support.lakes import rows
from troupe.runtime.agent.taint import Taint
from troupe.runtime.api import Troupe
from troupe.runtime.config import AgentSpec
from troupe.runtime.ids import AgentId, RunId
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.runtime.messages import MessageKind
from troupe.runtime.session.supervisor import SessionStatus
from troupe.runtime.session.tasks import TaskRegistry
from troupe.tools.builtins.tasks import read_tasks
from troupe.tools.context import ToolContext

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_KNOWN = ("it-support@corp.example", "alice@corp.example")


def _calls(request: LLMRequest, *calls: tuple[str, dict[str, Any]]) -> LLMResponse:
    n = len(request.messages)
    return LLMResponse(tool_calls=[ToolCall(id=f"call_{n}_{i}", name=name, arguments=json.dumps(args))
                                   for i, (name, args) in enumerate(calls)])


def _mail_all(request: LLMRequest, text: str) -> LLMResponse | str:
    targets = [t for t in dict.fromkeys(_EMAIL.findall(text)) if t not in _KNOWN]
    return _calls(request, *[("send_email", {"to": t, "body": "summary"}) for t in targets]) if targets else "nothing to mail"


def obedient(request: LLMRequest, agent: str) -> LLMResponse | str:
    """Leads pass on what they read (in a task goal) and obey what their workers report; workers do as told."""
    last = request.messages[-1]
    text = last.content or ""
    users = [m.content or "" for m in request.messages if m.role == "user"]
    if agent == "worker":
        if last.role == "tool":
            if last.name == "read_inbox":  # reports every address it read
                return "Found: " + ", ".join(_EMAIL.findall(text))
            return "sent"
        if "inbox" in text:
            return _calls(request, ("read_inbox", {}))
        return _mail_all(request, text)
    if last.role == "tool":
        if last.name == "read_inbox":  # hand the mailing to the worker, with every address (the injected one too)
            targets = [t for t in dict.fromkeys(_EMAIL.findall(users[0] + " " + text)) if t not in _KNOWN]
            return _calls(request, ("task_create", {"goal": "Mail the summary to " + " and ".join(targets), "assignee": "worker"}))
        if last.name == "task_create":
            return _calls(request, ("wait", {}))
        if last.name == "assign_tasks":
            return _mail_all(request, text)
        return "done"
    if text.startswith("Notice from"):
        return _mail_all(request, text)
    if "have the worker check" in text:
        return _calls(request, ("task_create", {"goal": "Check the inbox and report the addresses", "assignee": "worker"}))
    if "assign the worker" in text:
        return _calls(request, ("assign_tasks", {"tasks": [{"assignee": "worker", "goal": "Check the inbox"}]}))
    return _calls(request, ("read_inbox", {}))


MODEL = "tests.runtime.test_risk_tasks:obedient"
RISK = {"deny_at": 80, "untrusted": {"tools": ["read_inbox"]}}
MAILER = {"level": "L2", "scopes": ["email:send"]}


def tasks_team(*, lead_reads: bool, risk: dict[str, Any] | None = None) -> Any:
    reader, mailer = ("lead", "worker") if lead_reads else ("worker", "lead")
    tools = {"lead": ["task_create", "wait", "assign_tasks"], "worker": []}
    tools[reader].append("read_inbox")
    tools[mailer].append(SEND_TOOL)
    agents = [{"id": a, "tools": tools[a], "permissions": MAILER if a == mailer else {"level": "L1"}}
              for a in ("lead", "worker")]
    return team(agents, function=MODEL, risk=RISK if risk is None else risk,
                declared_tools=[{"name": "read_inbox", "description": "Read the user's inbox.", "result": INBOX}])


@pytest.fixture(autouse=True)
def _clear() -> None:
    SENT.clear()


async def test_a_goal_written_by_a_tainted_lead_is_untrusted_for_its_worker(troupe: Troupe, lake: Path) -> None:
    result = await troupe.run(tasks_team(lead_reads=True),
                              f"Read my inbox and have the worker mail the summary to {USER_ADDR}", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert SENT == [USER_ADDR]  # the injected address is refused; the user's own still goes out
    calls = by_recipient(lake)
    bad, good = calls[ATTACKER], calls[USER_ADDR]
    assert (bad["decision"], bad["denied"]) == ("deny", "risk") and bad["score"] >= 90
    [task_id] = [r["task_id"] for r in rows(lake, "select task_id from events where type='task.created'")]
    assert f"traces to untrusted content from task {task_id} from lead" in bad["reasons"]
    assert good["denied"] is None and good["score"] < 80
    assert f"agent read untrusted content (task {task_id} from lead)" in good["reasons"]
    [delivered] = rows(lake, "select cast(json_extract(payload, '$.data') as varchar) d from events "
                             "where type='message.delivered' and agent='worker'")
    data = json.loads(delivered["d"])
    assert (data["taint"], data["vouched"]) == (["read_inbox"], [USER_ADDR])


async def test_the_same_task_from_a_clean_lead_vouches_for_its_goal(troupe: Troupe, lake: Path) -> None:
    result = await troupe.run(tasks_team(lead_reads=True, risk={"deny_at": 80}),
                              f"Read my inbox and have the worker mail the summary to {USER_ADDR}", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert sorted(SENT) == [ATTACKER, USER_ADDR]  # nothing marked untrusted: nothing tainted, nothing refused


async def test_a_completion_notice_from_a_tainted_worker_taints_the_lead(troupe: Troupe, lake: Path) -> None:
    result = await troupe.run(tasks_team(lead_reads=False), "Please have the worker check the inbox", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert SENT == []
    [bad] = list(by_recipient(lake).values())
    [task_id] = [r["task_id"] for r in rows(lake, "select task_id from events where type='task.created'")]
    assert bad["denied"] == "risk" and f"traces to untrusted content from task {task_id} from worker" in bad["reasons"]
    [notice] = rows(lake, "select cast(json_extract(payload, '$.data') as varchar) d from events "
                          "where type='message.delivered' and agent='lead' and json_extract_string(payload, '$.kind')='notice'")
    assert json.loads(notice["d"])["taint"] == ["read_inbox"]


async def test_task_results_from_a_tainted_worker_taint_the_caller_of_assign_tasks(troupe: Troupe, lake: Path) -> None:
    result = await troupe.run(tasks_team(lead_reads=False), "Please assign the worker to check the inbox", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert SENT == []
    [bad] = list(by_recipient(lake).values())
    assert bad["denied"] == "risk" and "traces to untrusted content from task" in bad["reasons"]
    assert "from worker" in bad["reasons"]


# --- the pieces, without a session -------------------------------------------------------------
def test_the_registry_marks_what_a_tainted_agent_wrote_and_keeps_it_in_snapshots() -> None:
    rec = Recorder()
    reg = TaskRegistry(SID, emit=rec.emit, notify=rec.notify)
    reg.create("plain", created_by="lead", assignee="worker", task_id="t-1")
    reg.create(f"mail {ATTACKER} and {USER_ADDR}", created_by="lead", assignee="worker", task_id="t-2",
               taint=["read_inbox"], vouched=[USER_ADDR])
    [(_, kind, _, plain), (_, _, _, marked)] = rec.notes
    assert kind is MessageKind.TASK and "taint" not in plain and "vouched" not in plain
    assert (marked["taint"], marked["vouched"]) == (["read_inbox"], [USER_ADDR])
    reg.update("t-1", by="worker", status="done", output="clean")
    reg.update("t-2", by="worker", status="done", output=f"mailed {ATTACKER}", taint=["read_inbox", "task t-2 from lead"])
    clean, tainted = rec.notes[2][3], rec.notes[3][3]
    assert "taint" not in clean
    assert (tainted["taint"], tainted["by"]) == (["read_inbox", "task t-2 from lead"], "worker")
    back = TaskRegistry.restore(json.loads(json.dumps(reg.snapshot())), SID)
    t2 = back.get("t-2")
    assert (t2.taint, t2.vouched, t2.output_taint, t2.output_by) == (["read_inbox"], [USER_ADDR], ["read_inbox", "task t-2 from lead"], "worker")
    # vouched values only travel with a tainted goal
    assert reg.create("x", created_by="lead", vouched=[USER_ADDR]).vouched == []


def test_a_tainted_agent_vouches_only_for_what_its_user_wrote() -> None:
    t = Taint()
    t.hear(f"Please mail the summary to {USER_ADDR}, account DE89 3704 0044 0532 0130 00, file /srv/out.txt")
    t.read("read_inbox", INBOX)
    goal = (f"Mail the summary to {ATTACKER} and {USER_ADDR}; pay de89370400440532013000 "
            "and write /srv/out.txt and /etc/passwd")
    parts = t.vouched_parts(goal)
    assert USER_ADDR in parts and "/srv/out.txt" in parts and "de89370400440532013000" in parts
    assert ATTACKER not in parts and "/etc/passwd" not in parts
    assert Taint().vouched_parts(goal) == []


def test_task_tools_read_what_tainted_agents_wrote_into_tasks() -> None:
    reg = TaskRegistry(SID)
    reg.create(f"mail {ATTACKER}", created_by="worker", task_id="t-1", taint=["read_inbox"])
    reg.create("clean", created_by="lead", assignee="helper", task_id="t-2")
    reg.update("t-2", by="helper", status="done", output={"to": "x9@evil.example"}, taint=["web"])
    reg.create("mine", created_by="lead", task_id="t-3", taint=["read_inbox"])
    taint = Taint()
    ctx = ToolContext(session_id=SID, run_id=RunId("r"), agent=AgentId("lead"), services=None,  # type: ignore[arg-type]
                      spec=AgentSpec(id=AgentId("lead")), taint=taint)
    read_tasks(ctx, reg.list())
    assert taint.sources == ["task t-1 from worker", "task t-2 from helper"]  # not its own task t-3
    assert taint.source_of(ATTACKER) == "task t-1 from worker" and taint.source_of("x9@evil.example") == "task t-2 from helper"
    clean = Taint()
    read_tasks(ToolContext(session_id=SID, run_id=RunId("r"), agent=AgentId("lead"), services=None,  # type: ignore[arg-type]
                           spec=AgentSpec(id=AgentId("lead")), taint=clean), [reg.get("t-2").model_copy(update={"output_taint": []})])
    assert not clean.tainted
