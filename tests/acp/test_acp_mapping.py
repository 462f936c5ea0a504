"""The Troupe-events -> ACP-updates mapping (runtime/acp/mapping.py), without I/O."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from troupe.runtime.acp.agent import prompt_text
from troupe.runtime.acp.mapping import UpdateMapper, tool_kind
from troupe.runtime.acp.team import adapt_team
from troupe.runtime.config import TeamConfig
from troupe.runtime.events import Event


def ev(type_: str, agent: str | None = "lead", **fields: Any) -> Event:
    payload = fields.pop("data", {})
    return Event(run_id="r", session_id="s", type=type_, agent=agent, payload=json.dumps(payload), **fields)


def dump(updates: list[Any]) -> list[dict[str, Any]]:
    return [u.model_dump(mode="json", by_alias=True, exclude_none=True) for u in updates]


def test_entry_tokens_are_the_answer_and_other_agents_think_aloud_under_their_name() -> None:
    m = UpdateMapper(entry="lead")
    [chunk] = dump(m.feed(ev("llm.token", data={"text": "Hi"})))
    assert chunk["sessionUpdate"] == "agent_message_chunk" and chunk["content"]["text"] == "Hi"
    assert chunk["_meta"]["troupe"]["agent"] == "lead" and m.streamed == 1
    first = dump(m.feed(ev("llm.token", agent="coder", data={"text": "let me"})))[0]
    second = dump(m.feed(ev("llm.token", agent="coder", data={"text": " see"})))[0]
    assert first["sessionUpdate"] == "agent_thought_chunk" and first["content"]["text"] == "\n[coder] let me"
    assert second["content"]["text"] == " see"


def test_a_tool_call_its_approval_and_its_result(tmp_path: Path) -> None:
    m = UpdateMapper(entry="lead", workspace=tmp_path)
    args = json.dumps({"path": "a.py", "content": "x = 1\n"})
    [start] = dump(m.feed(ev("tool.call", tool="write_file", data={"id": "c1", "arguments": args})))
    assert start == {"sessionUpdate": "tool_call", "toolCallId": "lead/c1", "title": "write_file a.py", "kind": "edit",
                     "status": "pending", "rawInput": {"path": "a.py", "content": "x = 1\n"},
                     "locations": [{"path": str(tmp_path / "a.py")}],
                     "_meta": {"troupe": {"agent": "lead", "tool": "write_file", "risk": None}}}
    asked = m.tool_call(ev("approval.requested", tool="write_file"),
                        {"id": "s:a1", "tool": "write_file", "arguments": args, "call_id": "c1"})
    assert asked.tool_call_id == "lead/c1" and asked.kind == "edit" and asked.field_meta["troupe"]["approval_id"] == "s:a1"
    [go] = dump(m.feed(ev("approval.decided", data={"id": "s:a1", "approved": True, "by": "client", "reason": "",
                                                     "call_id": "c1"})))
    assert go["status"] == "in_progress"
    [done] = dump(m.feed(ev("tool.result", tool="write_file", duration_ms=3.0,
                            data={"id": "c1", "result": "wrote 6 bytes", "error_type": None})))
    assert done["status"] == "completed" and done["rawOutput"]["result"] == "wrote 6 bytes"
    assert done["content"][0]["content"]["text"] == "wrote 6 bytes"
    assert done["content"][1] == {"type": "diff", "path": str(tmp_path / "a.py"), "newText": "x = 1\n"}


def test_a_denied_call_fails_once() -> None:
    m = UpdateMapper(entry="lead")
    m.feed(ev("tool.call", tool="send_email", data={"id": "c9", "arguments": "{}"}))
    assert m.feed(ev("approval.decided", data={"id": "a", "approved": False, "by": "client", "reason": "no",
                                               "call_id": "c9"})) == []
    [denied] = dump(m.feed(ev("guardrail.denied", tool="send_email", data={"id": "c9", "reason": "approval",
                                                                           "error": "no"})))
    assert denied["status"] == "failed" and denied["rawOutput"] == {"denied": "approval", "error": "no"}
    assert m.feed(ev("tool.error", tool="send_email", data={"id": "c9", "result": "Error: no", "error_type": "X"})) == []


def test_the_plan_follows_the_task_tree_until_a_planner_plans() -> None:
    m = UpdateMapper(entry="lead")
    [p1] = dump(m.feed(ev("task.created", task_id="t1", status="pending", data={"goal": "find", "assignee": "bob"})))
    assert p1 == {"sessionUpdate": "plan", "entries": [{"content": "find (bob)", "priority": "medium", "status": "pending"}]}
    [p2] = dump(m.feed(ev("task.status", task_id="t1", status="running", data={"from": "pending", "to": "running"})))
    assert p2["entries"][0]["status"] == "in_progress"
    steps = [{"id": "s1", "description": "search", "assignee": "bob"}, {"id": "s2", "description": "write"}]
    [p3] = dump(m.feed(ev("plan.created", data={"plan_id": "p", "goal": "g", "version": 1, "steps": steps,
                                                "rationale": ""})))
    assert [(e["content"], e["status"]) for e in p3["entries"]] == [("search (bob)", "pending"), ("write", "pending")]
    [p4] = dump(m.feed(ev("plan.step", data={"plan_id": "p", "version": 1, "step_id": "s1", "from": "pending",
                                             "to": "done", "assignee": "bob", "step_task_id": "t1", "attempt": 1})))
    assert [e["status"] for e in p4["entries"]] == ["completed", "pending"]
    assert m.feed(ev("task.status", task_id="t1", status="done", data={"from": "running", "to": "done"})) == []
    [p5] = dump(m.feed(ev("plan.revised", data={"plan_id": "p", "version": 2, "reason": "", "added": [
        {"id": "s3", "description": "review"}], "changed": [], "removed": ["s2"], "retried": [], "contradicted": [],
        "rationale": ""})))
    assert [e["content"] for e in p5["entries"]] == ["search (bob)", "review"]


def test_stop_reasons() -> None:
    m = UpdateMapper(entry="lead")
    assert m.stop_reason("running") == "end_turn" and m.stop_reason("cancelled") == "cancelled"
    m.feed(ev("budget.exceeded", agent="session", data={"budget": "max_tokens", "limit": 10, "usage": {}}))
    assert m.stop_reason("budget_exceeded") == "max_tokens"
    m.begin_turn()
    assert m.stop_reason("budget_exceeded") == "max_turn_requests"
    m.feed(ev("llm.response", data={"finish_reason": "length"}))
    assert m.stop_reason("running") == "max_tokens"
    m.feed(ev("llm.response", data={"finish_reason": "content_filter"}))
    assert m.stop_reason("completed") == "refusal"


def test_tool_kinds() -> None:
    assert [tool_kind(t) for t in ("read_file", "shell", "search_files", "mail__send_email", "fs__delete_file",
                                   "web__fetch_page", "calculator")] == [
        "read", "execute", "search", "other", "delete", "fetch", "other"]


def test_prompt_text_and_the_team_of_a_session(tmp_path: Path) -> None:
    from acp.schema import (
        EmbeddedResourceContentBlock,
        EnvVariable,
        HttpMcpServer,
        McpServerStdio,
        SseMcpServer,
        TextContentBlock,
        TextResourceContents,
    )

    text = prompt_text([TextContentBlock(type="text", text="fix it"), EmbeddedResourceContentBlock(
        type="resource", resource=TextResourceContents(uri="file:///a.py", text="x = 1"))])
    assert text == 'fix it\n\n<file uri="file:///a.py">\nx = 1\n</file>'
    team = TeamConfig.model_validate({"name": "t", "entry": "lead", "default_model": "m",
                                      "models": {"m": {"provider": "scripted", "scripts": {}}},
                                      "agents": [{"id": "lead", "tools": ["calculator"]}, {"id": "other"}]})
    servers = [McpServerStdio(name="my fs", command="fs-server", args=["--root", "."], env=[EnvVariable(name="A", value="1")]),
               HttpMcpServer(type="http", name="web", url="http://127.0.0.1:9/mcp", headers=[]),
               SseMcpServer(type="sse", name="old", url="http://127.0.0.1:9/sse", headers=[])]
    adapted = adapt_team(team, str(tmp_path), servers)
    assert adapted.workspace.root == str(tmp_path.resolve() / ".troupe" / "workspaces")
    assert sorted(adapted.mcp_servers) == ["my_fs", "web"]  # SSE is not a transport Troupe speaks
    assert adapted.mcp_servers["my_fs"].command == "fs-server" and adapted.mcp_servers["my_fs"].env == {"A": "1"}
    assert adapted.agents[0].tools == ["calculator", "my_fs__*", "web__*"] and adapted.agents[1].tools == []
