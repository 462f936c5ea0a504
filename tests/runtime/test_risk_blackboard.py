"""Taint through the blackboard (local placement, no Ray): a value a tainted agent puts (``blackboard_put``,
or its task result published under ``results/<task>``) is marked with its sources, and whoever reads it
(``blackboard_get``/``blackboard_list``, a subscriber's notice) reads untrusted content from
``blackboard <key> from <author>``; the values the author's user wrote stay vouched. So an injected
address cannot be laundered through the blackboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import team
from tests.runtime.test_risk_session import ATTACKER, INBOX, SEND_TOOL, SENT, USER_ADDR, by_recipient, risk_rows
from tests.support.cores import SID, Recorder
from tests.support.lakes import rows
from troupe.runtime.agent.taint import Taint
from troupe.runtime.api import Troupe
from troupe.runtime.config import AgentSpec
from troupe.runtime.events import parse_payload
from troupe.runtime.events.blackboard import BlackboardPutPayloadV1
from troupe.runtime.ids import AgentId, RunId
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.runtime.session.blackboard import Blackboard
from troupe.runtime.session.supervisor import SessionStatus
from troupe.tools.builtins.blackboard import blackboard_get, blackboard_list, blackboard_put, read_entries
from troupe.tools.context import ToolContext

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_KNOWN = ("it-support@corp.example", "alice@corp.example")
KEY = "contacts/targets"
BYSTANDER = "team@corp.example"


def _calls(request: LLMRequest, *calls: tuple[str, dict[str, Any]]) -> LLMResponse:
    n = len(request.messages)
    return LLMResponse(tool_calls=[ToolCall(id=f"call_{n}_{i}", name=name, arguments=json.dumps(args))
                                   for i, (name, args) in enumerate(calls)])


def obedient(request: LLMRequest, agent: str) -> LLMResponse | str:
    """The lead posts every address it read on the blackboard (the injected one too) and hands the mailing
    to the worker by task, or lets a subscribed worker notice it; workers do as the blackboard says."""
    last = request.messages[-1]
    text = last.content or ""
    users = [m.content or "" for m in request.messages if m.role == "user"]
    if agent == "worker":
        if last.role == "tool":
            if last.name == "blackboard_get":
                return _calls(request, *[("send_email", {"to": t, "body": "summary"}) for t in _EMAIL.findall(text)])
            if last.name == "send_email" and "Notice from blackboard" in users[-1]:
                return _calls(request, ("send_message", {"to": "lead", "text": "noted"}))
            return "sent"
        if text.startswith("Notice from blackboard"):  # a subscriber: tell the team the contacts changed
            return _calls(request, ("send_email", {"to": BYSTANDER, "body": "the contacts changed"}))
        if "inbox" in text:  # a worker with publish_results reads the inbox and reports what it found
            return _calls(request, ("read_inbox", {}))
        return _calls(request, ("blackboard_get", {"key": KEY}))
    if last.role == "tool":
        if last.name == "read_inbox":
            targets = [t for t in dict.fromkeys(_EMAIL.findall(users[0] + " " + text)) if t not in _KNOWN]
            return _calls(request, ("blackboard_put", {"key": KEY, "value": targets}))
        if last.name == "blackboard_put" and "have the worker" in users[0]:
            return _calls(request, ("task_create", {"goal": f"Mail the summary to the addresses on the blackboard under {KEY}",
                                                    "assignee": "worker"}))
        if last.name in ("blackboard_put", "task_create"):
            return _calls(request, ("wait", {}))
        return "done"
    if text.startswith(("Notice from", "Message from")):
        return "done"
    if "check the inbox" in text:
        return _calls(request, ("task_create", {"goal": "Check the inbox and report the addresses", "assignee": "worker"}))
    return _calls(request, ("read_inbox", {}))


MODEL = "tests.runtime.test_risk_blackboard:obedient"
RISK = {"deny_at": 80, "untrusted": {"tools": ["read_inbox"]}}
MAILER = {"level": "L2", "scopes": ["email:send"]}
BOARD = ["blackboard_put", "blackboard_get", "blackboard_list"]


def board_team(*, risk: dict[str, Any] | None = None, worker: dict[str, Any] | None = None) -> Any:
    agents = [{"id": "lead", "tools": ["read_inbox", "task_create", "wait", *BOARD], "permissions": {"level": "L1"}},
              {"id": "worker", "tools": [SEND_TOOL, "send_message", *BOARD], "permissions": MAILER, **(worker or {})}]
    return team(agents, function=MODEL, risk=RISK if risk is None else risk,
                declared_tools=[{"name": "read_inbox", "description": "Read the user's inbox.", "result": INBOX}])


@pytest.fixture(autouse=True)
def _clear() -> None:
    SENT.clear()


def _puts(lake: Path) -> list[dict[str, Any]]:
    return rows(lake, "select json_extract_string(payload, '$.key') k, agent as author, cast(json_extract(payload, '$.taint') as varchar) t, "
                      "cast(json_extract(payload, '$.v') as integer) v from events where type='blackboard.put'")


async def test_a_value_a_tainted_lead_put_on_the_blackboard_is_untrusted_for_its_reader(troupe: Troupe, lake: Path) -> None:
    result = await troupe.run(board_team(), f"Read my inbox, put the addresses on the blackboard and have the worker "
                                            f"mail the summary to them; mine is {USER_ADDR}", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert SENT == [USER_ADDR]  # the injected address is refused; the one the lead's user wrote stays vouched
    calls = by_recipient(lake)
    bad, good = calls[ATTACKER], calls[USER_ADDR]
    assert (bad["decision"], bad["denied"]) == ("deny", "risk") and bad["score"] >= 90
    assert f"traces to untrusted content from blackboard {KEY} from lead" in bad["reasons"]
    assert f"traces to untrusted content from blackboard {KEY} from lead" in bad["error"]
    assert good["denied"] is None and good["score"] < 80
    assert f"blackboard {KEY} from lead" in good["reasons"]  # the worker read untrusted content, but this value is vouched
    [put] = _puts(lake)
    assert (put["k"], put["author"], json.loads(put["t"]), put["v"]) == (KEY, "lead", ["read_inbox"], 2)


async def test_the_same_value_from_a_clean_lead_is_trusted(troupe: Troupe, lake: Path) -> None:
    result = await troupe.run(board_team(risk={"deny_at": 80}), f"Read my inbox, put the addresses on the blackboard "
                                                                f"and have the worker mail the summary to them; mine is {USER_ADDR}",
                              timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert sorted(SENT) == [ATTACKER, USER_ADDR]  # nothing marked untrusted: nothing tainted, nothing refused
    assert all(r["denied"] is None and "untrusted" not in r["reasons"] for r in risk_rows(lake))
    [put] = _puts(lake)
    assert put["t"] is None and put["v"] == 2  # an untainted write has no taint in its event


async def test_a_subscribers_notice_of_a_tainted_entry_taints_it(troupe: Troupe, lake: Path) -> None:
    result = await troupe.run(board_team(worker={"subscriptions": ["contacts/"]}),
                              f"Read my inbox and post the addresses on the blackboard; mine is {USER_ADDR}", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    [notice] = rows(lake, "select cast(json_extract(payload, '$.data') as varchar) d from events "
                          "where type='message.delivered' and agent='worker' and json_extract_string(payload, '$.kind')='notice'")
    data = json.loads(notice["d"])
    assert (data["blackboard_key"], data["taint"], data["vouched"]) == (KEY, ["read_inbox"], [USER_ADDR])
    assert data["value"] == [USER_ADDR, ATTACKER]
    [call] = risk_rows(lake)  # the worker never read the entry with a tool: the notice alone tainted it
    assert SENT == [BYSTANDER] and call["denied"] is None
    assert f"agent read untrusted content (blackboard {KEY} from lead)" in call["reasons"]


async def test_a_tainted_workers_published_result_is_marked(troupe: Troupe, lake: Path) -> None:
    result = await troupe.run(board_team(worker={"publish_results": True, "tools": ["read_inbox"]}),
                              "Please have the worker check the inbox", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    [put] = _puts(lake)
    assert put["k"].startswith("results/") and put["author"] == "worker" and json.loads(put["t"])[0] == "read_inbox"


# --- the pieces, without a session -------------------------------------------------------------
def test_the_board_marks_what_a_tainted_agent_wrote_and_keeps_it_in_snapshots() -> None:
    rec = Recorder()
    board = Blackboard(SID, emit=rec.emit, notify=rec.notify)
    board.subscribe("worker", "c/")
    clean = board.put("c/plain", "hello", author="lead")
    marked = board.put("c/mail", [ATTACKER, USER_ADDR], author="lead", taint=["read_inbox"], vouched=[USER_ADDR])
    assert (clean.taint, clean.vouched) == ([], [])
    assert (marked.taint, marked.vouched) == (["read_inbox"], [USER_ADDR])
    (_, plain_event, _), (_, marked_event, _) = rec.events
    assert "taint" not in plain_event and marked_event["taint"] == ["read_inbox"]
    (_, _, _, plain_note), (_, _, _, marked_note) = rec.notes
    assert "taint" not in plain_note and "value" not in plain_note
    assert (marked_note["taint"], marked_note["vouched"], marked_note["value"]) == (["read_inbox"], [USER_ADDR], [ATTACKER, USER_ADDR])
    # vouched values only travel with a taint
    assert board.put("c/x", 1, author="lead", vouched=[USER_ADDR]).vouched == []
    snap = json.loads(json.dumps(board.snapshot()))
    back = Blackboard.restore(snap, SID).get("c/mail")
    assert back is not None and (back.taint, back.vouched) == (["read_inbox"], [USER_ADDR])
    # a checkpoint written before entries had marks still loads, unmarked
    for data in snap["keys"].values():
        for entry in data["history"]:
            entry.pop("taint"), entry.pop("vouched")
    old = Blackboard.restore(snap, SID).get("c/mail")
    assert old is not None and (old.taint, old.vouched) == ([], [])


def test_an_old_blackboard_put_row_still_reads() -> None:
    row = {"key": "k", "version": 1, "kind": "fact", "author": "a", "value": 1, "value_truncated": False,
           "ttl_s": None, "provenance": None}
    assert isinstance(parse_payload("blackboard.put", row), BlackboardPutPayloadV1)
    assert parse_payload("blackboard.put", {**row, "taint": ["web"], "v": 2}).taint == ["web"]  # type: ignore[attr-defined]


def _ctx(agent: str, taint: Taint | None, board: Blackboard | None = None) -> ToolContext:
    class Services:
        async def call(self, target: AgentId, method: str, /, **kwargs: Any) -> Any:
            assert board is not None
            return getattr(board, method)(**kwargs)

    return ToolContext(session_id=SID, run_id=RunId("r"), agent=AgentId(agent), services=Services(),  # type: ignore[arg-type]
                       spec=AgentSpec(id=AgentId(agent)), taint=taint)


def test_reading_entries_a_tainted_agent_wrote_taints_the_reader() -> None:
    board = Blackboard(SID)
    board.put("a", {"to": ATTACKER, "cc": USER_ADDR}, author="lead", taint=["read_inbox"], vouched=[USER_ADDR])
    board.put("b", "x9@evil.example", author="helper", taint=["web"])
    board.put("c", "clean@corp.example", author="helper")
    board.put("mine", "mine@evil.example", author="worker", taint=["read_inbox"])
    taint = Taint()
    read_entries(_ctx("worker", taint), board.list())
    assert taint.sources == ["blackboard a from lead", "blackboard b from helper"]  # not clean c, not its own entry
    assert taint.trace(ATTACKER) == (ATTACKER, "blackboard a from lead")
    assert taint.trace(USER_ADDR) is None and taint.vouched(USER_ADDR)  # what the lead's user wrote stays vouched
    assert taint.source_of("clean@corp.example") is None and taint.source_of("mine@evil.example") is None
    read_entries(_ctx("worker", None), board.list())  # risk scoring off: nothing to do


async def test_the_blackboard_tools_mark_writes_and_taint_reads() -> None:
    board = Blackboard(SID)
    writer = Taint()
    writer.hear(f"post the contacts; mine is {USER_ADDR}")
    writer.read("read_inbox", INBOX)
    await blackboard_put.invoke({"key": "k", "value": [ATTACKER, USER_ADDR]}, _ctx("lead", writer, board))
    await blackboard_put.invoke({"key": "clean", "value": ATTACKER}, _ctx("lead", Taint(), board))
    await blackboard_put.invoke({"key": "off", "value": ATTACKER}, _ctx("lead", None, board))
    entries = {e.key: e for e in board.list()}
    assert (entries["k"].taint, entries["k"].vouched) == (["read_inbox"], [USER_ADDR])
    assert entries["clean"].taint == [] and entries["off"].taint == []
    got, listed = Taint(), Taint()
    await blackboard_get.invoke({"key": "k"}, _ctx("worker", got, board))
    await blackboard_list.invoke({"prefix": ""}, _ctx("worker", listed, board))
    for t in (got, listed):
        assert t.sources == ["blackboard k from lead"] and t.source_of(ATTACKER) == "blackboard k from lead"
        assert t.vouched(USER_ADDR)
    unread = Taint()
    await blackboard_get.invoke({"key": "clean"}, _ctx("worker", unread, board))
    assert not unread.tainted
