"""Whole sessions in one process (no Ray): the agent loop, mailbox, tools, budgets, the lake."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE_TEAM
from tests.runtime.teams import call, team
from tests.support.lakes import rows
from troupe.runtime.api import Troupe
from troupe.runtime.errors import UnknownAgentError, UnknownToolError
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.runtime.session.supervisor import SessionStatus


async def test_example_team_end_to_end(troupe: Troupe, lake: Path) -> None:
    result = await troupe.run(EXAMPLE_TEAM, "What is 1234 * 5678?", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert "7006652" in result.reply
    per_agent = rows(lake, "select agent, list(distinct type order by type) types from events group by agent order by agent")
    agents = {r["agent"]: set(r["types"]) for r in per_agent}
    assert {"lead", "worker_a", "worker_b", "worker_b.checker", "session"} <= set(agents)
    every = set().union(*agents.values())
    assert {"task.created", "blackboard.put", "tool.call", "tool.result", "llm.request", "llm.response",
            "session.started", "session.finished", "agent.spawned", "task.status", "message.delivered"} <= every
    # Whole history of one worker, in order.
    worker_a = [r["type"] for r in rows(lake, "select type from events where agent='worker_a' and type not in "
                                          "('agent.state') order by ts, seq")]
    assert worker_a == [
        "message.delivered", "llm.request", "llm.response", "tool.call", "tool.call", "tool.result", "tool.result",
        "llm.request", "llm.response", "tool.call", "blackboard.put", "tool.result", "llm.request", "llm.response",
        "task.status",
    ]
    # Blackboard provenance points at the tool call that wrote it.
    put = rows(lake, "select payload from events where type='blackboard.put' and agent='worker_a'")[0]
    assert json.loads(put["payload"])["provenance"]["tool_call_id"].startswith("call_worker_a")
    # Both workers' tool calls ran concurrently: each worker's two calls were issued before either result.
    finished = rows(lake, "select status, json_extract_string(payload, '$.reply') reply from events where type='session.finished'")
    assert finished == [{"status": "completed", "reply": result.reply}]


async def test_tool_calls_of_one_turn_run_concurrently_and_return_in_order(troupe: Troupe, lake: Path) -> None:
    barrier = asyncio.Barrier(3)
    from troupe.tools.spec import tool

    @tool(name="meet")
    async def meet(n: int) -> int:
        await asyncio.wait_for(barrier.wait(), 2)  # only passes if all three calls run at once
        await asyncio.sleep(0.01 * (3 - n))  # finish in reverse order
        return n * 10

    troupe.registry.register(meet)
    cfg = team([{"id": "a", "tools": ["meet"]}], scripts={"a": [
        {"tool_calls": [call("meet", n=1), call("meet", n=2), call("meet", n=3)]},
        {"text": "done"},
    ]})

    session = await troupe.open(cfg)
    result = await session.run("go", timeout=10)
    await session.close()
    assert result.status is SessionStatus.COMPLETED
    order = rows(lake, "select json_extract_string(payload, '$.result') r from events where type='tool.result' order by ts")
    assert [r["r"] for r in order] == ["30", "20", "10"]  # finished in reverse
    # ...but the model got them in call order
    req = rows(lake, "select payload from events where type='llm.request' order by seq desc limit 1")
    assert json.loads(req[0]["payload"])["last"] == "30"


async def test_invalid_tool_arguments_are_shown_to_the_model_which_recovers(troupe: Troupe, lake: Path) -> None:
    cfg = team([{"id": "a", "tools": ["calculator"]}], scripts={"a": [
        {"tool_calls": [call("calculator", expr="1+1")]},
        {"tool_calls": [call("calculator", expression="1+1")]},
        {"text": "2"},
    ]})
    result = await troupe.run(cfg, "add", timeout=10)
    assert result.status is SessionStatus.COMPLETED and result.reply == "2"
    outcomes = rows(lake, "select type, json_extract_string(payload, '$.result') r from events where type like 'tool.%' and type != 'tool.call' order by ts")
    assert outcomes[0]["type"] == "tool.error"
    assert "invalid arguments for tool 'calculator'" in outcomes[0]["r"] and "expression" in outcomes[0]["r"]
    assert outcomes[1] == {"type": "tool.result", "r": "2"}


async def test_model_calling_an_undeclared_tool_gets_an_error_not_a_crash(troupe: Troupe, lake: Path) -> None:
    cfg = team([{"id": "a", "tools": ["calculator"]}], scripts={"a": [
        {"tool_calls": [call("rm_rf", path="/")]}, {"text": "ok"},
    ]})
    result = await troupe.run(cfg, "x", timeout=10)
    assert result.status is SessionStatus.COMPLETED
    err = rows(lake, "select json_extract_string(payload, '$.result') r from events where type='tool.error'")
    assert err == [{"r": "Error: there is no tool 'rm_rf'; your tools are: calculator"}]


async def test_scripted_model_running_out_fails_the_session_clearly_and_the_lake_stays_readable(troupe: Troupe, lake: Path) -> None:
    cfg = team([{"id": "a", "tools": ["calculator"]}], scripts={"a": [{"tool_calls": [call("calculator", expression="1")]}]})
    result = await troupe.run(cfg, "x", timeout=10)
    assert result.status is SessionStatus.FAILED
    assert "ScriptExhaustedError" in result.error and "'a'" in result.error
    types = [r["type"] for r in rows(lake, "select type from events order by ts")]
    assert types[-1] == "session.finished" or "session.finished" in types
    assert "agent.error" in types


async def test_unknown_tool_in_team_is_a_config_error_before_anything_starts(troupe: Troupe, lake: Path) -> None:
    cfg = team([{"id": "a", "tools": ["calculater"]}])
    with pytest.raises(UnknownToolError, match=r"agent 'a'.*unknown tool 'calculater'.*did you mean 'calculator'"):
        await troupe.open(cfg)
    assert rows(lake, "select count(*) n from events") == [{"n": 0}]


async def test_sending_to_an_unknown_agent_is_a_clear_error(troupe: Troupe) -> None:
    session = await troupe.open(team([{"id": "a"}], scripts={"a": [{"text": "hi"}]}))
    with pytest.raises(UnknownAgentError, match="unknown agent 'nobody'.*'a'"):
        await session.send("hello", to="nobody")
    await session.close()


async def test_one_turn_at_a_time_messages_that_arrive_meanwhile_wait(troupe: Troupe, lake: Path) -> None:
    gate = asyncio.Event()
    batches: list[list[str]] = []

    async def model(request: LLMRequest, agent: str) -> LLMResponse:
        users = [m.content for m in request.messages if m.role == "user"]
        batches.append(users)
        if len(batches) == 1:
            await gate.wait()
        return LLMResponse(text=f"turn {len(batches)}")

    troupe.backend.host.llm_factory = lambda *a, **k: _fn(model, k["agent"])
    # "w" is not the entry agent, so its replies do not end the session.
    session = await troupe.open(team([{"id": "boss"}, {"id": "w"}]))
    await session.send("first", to="w")
    await asyncio.sleep(0.05)
    await session.send("second", to="w")
    await session.send("third", to="w")
    await asyncio.sleep(0.05)
    assert len(batches) == 1  # still in turn 1; the others wait in the mailbox
    gate.set()
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(batches) == 2:
            break
    assert batches[1][-2:] == ["second", "third"]
    await asyncio.sleep(0.05)
    assert len(batches) == 2  # both waiting messages were taken in one turn
    assert (await session.describe("w"))["turns"] == 2
    await session.close()


def _fn(model: Any, agent: str) -> Any:
    from troupe.runtime.llm.function import FunctionModel

    return FunctionModel(model, agent=agent)


async def test_duplicate_delivery_of_the_same_message_has_no_effect(troupe: Troupe) -> None:
    from troupe.runtime.agent.core import user_message

    calls: list[int] = []

    def model(request: LLMRequest, agent: str) -> str:
        calls.append(1)
        return "ok"

    troupe.backend.host.llm_factory = lambda *a, **k: _fn(model, k["agent"])
    session = await troupe.open(team([{"id": "a"}]))
    await troupe.backend.call(session.id, "session", "start", {"input": "x", "team": "t", "placement": "packed"})
    env = user_message(session.id, session.run_id, "a", "hello")
    assert await troupe.backend.deliver(session.id, "a", env) is True
    assert await troupe.backend.deliver(session.id, "a", env) is False
    await session.result(timeout=5)
    await asyncio.sleep(0.05)
    assert calls == [1]
    await session.close()


async def test_control_messages_jump_the_queue_pause_resume_cancel(troupe: Troupe, lake: Path) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def model(request: LLMRequest, agent: str) -> LLMResponse:
        last = request.messages[-1].content or ""
        if "slow" in last:
            started.set()
            await release.wait()
            return LLMResponse(tool_calls=[ToolCall(id="c1", name="calculator", arguments='{"expression": "2*3"}')])
        return LLMResponse(text=f"answer to {last[-20:]}")

    troupe.backend.host.llm_factory = lambda *a, **k: _fn(model, k["agent"])
    session = await troupe.open(team([{"id": "a", "tools": ["calculator"]}]))
    await session.send("slow job")
    await started.wait()
    await session.pause("a")
    assert (await session.describe("a"))["state"] == "paused"
    release.set()
    await asyncio.sleep(0.1)
    # Paused between rounds: the tool ran, but no new LLM round started.
    await troupe.backend.buffer.flush()
    await troupe.backend.log.flush()
    n_req = rows(lake, "select count(*) n from events where type='llm.request'")[0]["n"]
    assert n_req == 1
    await session.resume("a")
    result = await session.result(timeout=5)
    assert result.status is SessionStatus.COMPLETED and "answer to" in result.reply
    await session.close()
    states = [r["status"] for r in rows(lake, "select status from events where type='agent.state' and agent='a' order by seq")]
    assert states[:4] == ["running", "paused", "running", "idle"]


async def test_cancel_stops_the_running_turn(troupe: Troupe, lake: Path) -> None:
    started = asyncio.Event()

    async def model(request: LLMRequest, agent: str) -> LLMResponse:
        started.set()
        await asyncio.sleep(30)
        return LLMResponse(text="never")

    troupe.backend.host.llm_factory = lambda *a, **k: _fn(model, k["agent"])
    session = await troupe.open(team([{"id": "a"}]))
    await session.send("x")
    await started.wait()
    from troupe.runtime.messages import ControlOp

    await session.control("a", ControlOp.CANCEL)
    await asyncio.sleep(0.05)
    assert (await session.describe("a"))["state"] == "idle"
    await session.cancel("test over")
    result = await session.result(timeout=5)
    assert result.status is SessionStatus.CANCELLED and result.error == "test over"
    await session.close()


@pytest.mark.parametrize(
    ("budgets", "expected"),
    [({"max_tool_calls": 2}, "max_tool_calls"), ({"max_llm_calls": 2}, "max_llm_calls"), ({"max_tokens": 50}, "max_tokens")],
)
async def test_budgets_stop_the_session_with_a_clear_status(troupe: Troupe, lake: Path, budgets: dict, expected: str) -> None:
    loop_forever = [{"tool_calls": [call("calculator", expression="1+1"), call("calculator", expression="2+2")]}] * 10
    cfg = team([{"id": "a", "tools": ["calculator"], "max_rounds": 20}], scripts={"a": loop_forever}, budgets=budgets)
    result = await troupe.run(cfg, "spin", timeout=10)
    assert result.status is SessionStatus.BUDGET_EXCEEDED
    assert expected in result.error
    exceeded = rows(lake, "select json_extract_string(payload, '$.budget') b from events where type='budget.exceeded'")
    assert exceeded == [{"b": expected}]


async def test_wall_time_budget(troupe: Troupe) -> None:
    async def model(request: LLMRequest, agent: str) -> str:
        await asyncio.sleep(10)
        return "late"

    troupe.backend.host.llm_factory = lambda *a, **k: _fn(model, k["agent"])
    result = await troupe.run(team([{"id": "a"}], budgets={"max_wall_s": 0.2}), "x", timeout=5)
    assert result.status is SessionStatus.BUDGET_EXCEEDED and "max_wall_s" in result.error


async def test_max_rounds_caps_a_looping_model(troupe: Troupe, lake: Path) -> None:
    cfg = team([{"id": "a", "tools": ["calculator"], "max_rounds": 3}],
               scripts={"a": [{"tool_calls": [call("calculator", expression="1")]}] * 5})
    result = await troupe.run(cfg, "x", timeout=10)
    assert result.status is SessionStatus.COMPLETED
    assert result.reply == "[a stopped after 3 LLM rounds without a final answer]"
    assert rows(lake, "select count(*) n from events where type='llm.request'") == [{"n": 3}]


async def test_messages_between_agents_and_broadcast_to_a_group(troupe: Troupe, lake: Path) -> None:
    def model(request: LLMRequest, agent: str) -> LLMResponse:
        seen = [m.content or "" for m in request.messages if m.role == "user"]
        if agent != "boss":
            return LLMResponse(text=f"{agent} here")
        replies = [c for c in seen if c.startswith("Reply from")]
        if len(request.messages) == 2:
            return LLMResponse(tool_calls=[ToolCall(id="b", name="broadcast", arguments='{"group": "crew", "text": "report in"}')])
        if len(replies) < 2:
            return LLMResponse(tool_calls=[ToolCall(id=f"w{len(request.messages)}", name="wait", arguments="{}")])
        return LLMResponse(text="both reported: " + "; ".join(sorted(replies)))

    troupe.backend.host.llm_factory = lambda *a, **k: _fn(model, k["agent"])
    cfg = team([{"id": "boss", "tools": ["broadcast", "wait"]}, {"id": "w1", "groups": ["crew"]},
                {"id": "w2", "groups": ["crew"]}, {"id": "outsider"}])
    result = await troupe.run(cfg, "roll call", timeout=10)
    assert result.status is SessionStatus.COMPLETED, result.error
    assert result.reply == "both reported: Reply from w1: w1 here; Reply from w2: w2 here"
    delivered = rows(lake, "select agent, json_extract_string(payload, '$.sender') s, json_extract_string(payload, '$.content') c "
                           "from events where type='message.delivered' order by agent, ts")
    assert sorted((r["agent"], r["s"], r["c"]) for r in delivered) == [
        ("boss", "user", "roll call"), ("boss", "w1", "w1 here"), ("boss", "w2", "w2 here"),
        ("w1", "boss", "report in"), ("w2", "boss", "report in")]


async def test_blackboard_subscription_wakes_the_subscriber(troupe: Troupe, lake: Path) -> None:
    cfg = team(
        [{"id": "writer", "tools": ["blackboard_put"]}, {"id": "watcher", "subscriptions": ["alerts/"]}],
        scripts={"writer": [{"tool_calls": [call("blackboard_put", key="alerts/fire", value="kitchen")]}, {"text": "written"}],
                 "watcher": [{"text": "saw it"}]},
    )
    session = await troupe.open(cfg)
    await session.run("write", timeout=10)
    for _ in range(50):
        await asyncio.sleep(0.02)
        if (await session.describe("watcher"))["turns"] == 1:
            break
    await session.close()
    notices = rows(lake, "select json_extract_string(payload, '$.content') c from events where type='message.delivered' and agent='watcher'")
    assert len(notices) == 1 and "alerts/fire" in notices[0]["c"]


async def test_context_compaction_is_recorded(troupe: Troupe, lake: Path) -> None:
    big = "x" * 1200
    cfg = team([{"id": "boss"}, {"id": "w", "context_tokens": 512}], scripts={"boss": [], "w": [{"text": f"ok {i}"} for i in range(4)]})
    session = await troupe.open(cfg)
    for i in range(4):
        await session.send(f"{i} {big}", to="w")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if (await session.describe("w"))["turns"] == i + 1 and (await session.describe("w"))["state"] == "idle":
                break
    await session.close()
    compactions = rows(lake, "select payload from events where type='context.compacted' order by ts")
    assert compactions, "a 512-token context fed four 300-token turns must compact"
    first = json.loads(compactions[0]["payload"])
    assert first["removed_messages"] >= 2 and first["tokens_after"] < first["tokens_before"]


async def test_no_secret_reaches_the_lake(troupe: Troupe, lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.support.openai_server import OpenAICompatServer

    secret = "sk-test-0123456789abcdefSECRET"
    monkeypatch.setenv("TEST_TROUPE_KEY", secret)
    with OpenAICompatServer() as srv:
        srv.enqueue_tool_calls(("calculator", {"expression": "6*7"}))
        srv.enqueue_text("The answer is 42")
        from troupe.runtime.config import parse_team

        cfg = parse_team({
            "name": "t", "entry": "a", "default_model": "remote",
            "models": {"remote": {"provider": "openai", "model": "test-model", "base_url": srv.base_url,
                                  "api_key_env": "TEST_TROUPE_KEY", "max_retries": 0}},
            "agents": [{"id": "a", "tools": ["calculator"], "instructions": f"never say {secret}"}],
        })
        result = await troupe.run(cfg, f"my key is {secret}", timeout=20)
        assert result.status is SessionStatus.COMPLETED, result.error
        assert result.reply == "The answer is 42"
        assert srv.chat_requests[0].headers["authorization"] == f"Bearer {secret}"
    dump = rows(lake, "select string_agg(payload, '|') p from events")[0]["p"]
    assert secret not in dump and "[redacted]" in dump
    llm = rows(lake, "select model, tokens_in > 0 ti, tokens_out > 0 tout from events where type='llm.response' order by ts")
    assert llm == [{"model": "test-model", "ti": True, "tout": True}] * 2


async def test_each_session_works_in_its_own_workspace(troupe: Troupe, lake: Path, tmp_path: Path) -> None:
    cfg = team(
        [{"id": "lead", "tools": ["write_file", "shell", "read_file"],
          "permissions": {"level": "L3", "scopes": ["file:*", "shell:exec"]}}],
        scripts={"lead": [{"tool_calls": [call("write_file", path="notes/a.txt", content="hello")]},
                          {"tool_calls": [call("shell", command="cat notes/a.txt; pwd"),
                                          call("read_file", path="../../escape.txt")]},
                          {"text": "done"}]},
        workspace={"root": str(tmp_path / "ws")},
    )
    first = await troupe.run(cfg, "go", timeout=30)
    second = await troupe.run(cfg, "go", timeout=30)
    for result in (first, second):
        folder = tmp_path / "ws" / result.session_id
        assert (folder / "notes" / "a.txt").read_text() == "hello"
        outs = rows(lake, f"select type, payload from events where session_id='{result.session_id}' "
                          "and type in ('tool.result','tool.error') order by json_extract_string(payload, '$.id')")
        shell_out = [json.loads(o["payload"])["result"] for o in outs if "[exit code 0]" in o["payload"]]
        assert shell_out and "hello" in shell_out[0] and str(folder) in shell_out[0]
        assert any(o["type"] == "tool.error" and "leaves the workspace" in o["payload"] for o in outs)


async def test_declared_tools_are_validated_recorded_and_answered(troupe: Troupe, lake: Path) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    cfg = team(
        [{"id": "lead", "tools": ["factorial"]}],
        scripts={"lead": [{"tool_calls": [call("factorial", n=5), call("factorial", n="five")]}, {"text": "done"}]},
        declared_tools=[{"name": "factorial", "description": "n!", "parameters": schema, "result": "noted"}],
    )
    result = await troupe.run(cfg, "go", timeout=30)
    assert result.status is SessionStatus.COMPLETED
    outs = rows(lake, "select type, json_extract_string(payload, '$.result') r from events "
                      "where type in ('tool.result','tool.error') order by json_extract_string(payload, '$.id')")
    assert outs[0] == {"type": "tool.result", "r": "noted"}
    assert outs[1]["type"] == "tool.error" and "n: 'five' is not of type 'integer'" in outs[1]["r"]
