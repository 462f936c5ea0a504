"""A whole session against the reference server ``server-everything`` (stdio, Node 22): an agent on a scripted
model calls its tools (content types, annotations, sampling, elicitation, roots, logging), resources and
prompts through Troupe's MCP client, and the lake shows each outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.conformance import LOOPBACK, NodeTools, node_tools  # noqa: F401 - the fixture
from tests.tools.test_mcp_sessions import mcp_team, run
from troupe.runtime.api import Troupe
from troupe.runtime.eventlog.lake import query

pytestmark = pytest.mark.conformance

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("echo", {"message": "hello"}),
    ("get-sum", {"a": 2, "b": 3}),
    ("get-annotated-message", {"messageType": "error", "includeImage": True}),
    ("get-tiny-image", {}),
    ("get-structured-content", {"location": "Chicago"}),
    ("get-resource-links", {"count": 2}),
    ("get-resource-reference", {"resourceType": "Text", "resourceId": 1}),
    ("get-roots-list", {}),
    ("trigger-sampling-request", {"prompt": "say hi", "maxTokens": 20}),
    ("list_resources", {}),
    ("list_prompts", {}),
    ("get_prompt", {"name": "simple-prompt"}),
    ("read_resource", {"uri": "demo://resource/dynamic/text/{resourceId}", "arguments": {"resourceId": "7"}}),
    ("complete", {"prompt": "completable-prompt", "argument": "department", "value": "Eng"}),
]


async def test_a_session_uses_everything_the_reference_server_offers(troupe: Troupe, lake: Path, node_tools: NodeTools,
                                                                    tmp_path: Path) -> None:
    server = {"command": str(node_tools.node), "args": ["--require", str(LOOPBACK), str(node_tools.everything), "stdio"],
              "timeout_s": 30, "connect_timeout_s": 30, "log_level": "debug", "roots": [str(tmp_path)],
              "sampling": "judge", "elicitation_timeout_s": 5}
    names = [f"ev__{name}" for name, _ in CALLS] + ["ev__trigger-elicitation-request"]
    cfg = mcp_team({"ev": server}, [{"id": "lead", "tools": names, "permissions": {"level": "L2"}}],
                   {"lead": [{"tool_calls": [{"name": f"ev__{n}", "arguments": a} for n, a in CALLS]},
                              # alone in its turn: over stdio a server's request names no call, the latest one gets it
                              {"tool_calls": [{"name": "ev__trigger-elicitation-request", "arguments": {}}]},
                              {"text": "done"}]},
                   # the team's policy answers the server's form (a client would through Session.answer_elicitation)
                   approval_policy={"default": "ask", "elicitation": [
                       {"server": "ev", "message": "please provide*", "action": "accept",
                        "content": {"name": "Ada Lovelace", "check": True, "integer": 7}}]})
    result = await run(troupe, cfg)
    sql = (f"select type, tool, status, payload from events where session_id='{result.session_id}' and type in "
           "('tool.result','tool.error','elicitation.requested','elicitation.answered','mcp.log') order by ts, seq")
    rows = [{**r, **json.loads(r.pop("payload"))} for r in query(lake, sql).to_pylist()]
    outcomes = {r["tool"]: r for r in rows if r["type"] in ("tool.result", "tool.error")}
    assert set(outcomes) == set(names)
    errors = {t: r["result"] for t, r in outcomes.items() if r["type"] == "tool.error"}
    assert errors == {}, errors
    text = {t.removeprefix("ev__"): r["result"] for t, r in outcomes.items()}
    assert "hello" in text["echo"] and "5" in text["get-sum"]
    assert text["get-annotated-message"].startswith("[the tool succeeded")       # its "Error: ..." is not ours
    assert any(b.get("annotations") for b in outcomes["ev__get-annotated-message"].get("blocks", []))
    assert "image/png" in text["get-tiny-image"]
    assert tmp_path.as_uri() in text["get-roots-list"]
    assert "forty-two" in text["trigger-sampling-request"]
    assert "resource" in text["list_resources"].lower() and "simple-prompt" in text["list_prompts"]
    assert "demo://resource/dynamic/text/{resourceId}" in text["list_resources"]          # templates are listed
    assert "7" in text["read_resource"] and "dynamic" in text["read_resource"].lower()   # and read, filled in
    assert text["complete"].splitlines()[0] == "Engineering"                            # completion, as a tool
    asked = [r for r in rows if r["type"] == "elicitation.requested"]
    answered = [r for r in rows if r["type"] == "elicitation.answered"]
    assert len(asked) == len(answered) == 1 and asked[0]["tool"] == "ev__trigger-elicitation-request"
    assert asked[0]["mode"] == "form" and "name" in asked[0]["fields"] and asked[0]["requested_schema"]["required"]
    assert (answered[0]["action"], answered[0]["by"]) == ("accept", "policy")
    assert "- Name: Ada Lovelace" in text["trigger-elicitation-request"] and "Favorite Integer: 7" in text[
        "trigger-elicitation-request"]
    assert result.session_id in text["get-roots-list"]  # the session's workspace is a root, beside the config's
