"""LLM calls as ``llm:<agent>`` actor tasks on the node's LLM worker (actors/llm_actor.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.support.openai_server import OpenAICompatServer, TextReply, ToolCallSpec, ToolCallsReply
from troupe.actors.llm_actor import LLMWorkerActor, RemoteLLMClient, RemoteLLMFactory
from troupe.runtime.config import ModelProfile, parse_team
from troupe.runtime.errors import ConfigError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.llm import ChatMessage, LLMRequest, LLMResponse, ScriptedModel
from troupe.runtime.session.supervisor import SessionStatus

FIX = "tests.support.tool_fixtures"


@pytest.fixture
def server() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as srv:
        yield srv


def openai_team(base_url: str, *, tools: list[str] | None = None, name: str = "llmteam") -> Any:
    return parse_team({
        "name": name, "entry": "lead", "default_model": "m",
        "models": {"m": {"provider": "openai", "model": "test-model", "base_url": base_url, "max_retries": 0},
                   "s": {"provider": "scripted", "scripts": {"*": [{"text": "scripted"}]}}},
        "agents": [{"id": "lead", "tools": tools or [], "permissions": {"level": "L2"}}],
    })


# --- no Ray: the factory's routing and the worker's body ---------------------------------------
def test_factory_routes_network_providers_to_the_worker_and_keeps_stand_ins_local(server: OpenAICompatServer) -> None:
    factory = RemoteLLMFactory("troupe-scheduler-x", "node")
    models = openai_team(server.base_url).models
    remote = factory("m", models, agent="lead")
    assert isinstance(remote, RemoteLLMClient)
    assert remote.model_name == "test-model" and remote.task_name == "llm:lead"
    assert isinstance(factory("s", models, agent="lead"), ScriptedModel)
    # Agents of one team share one checked payload (and so one client on the worker).
    assert factory("m", models, agent="other")._key == remote._key


def test_factory_still_refuses_bad_profiles_when_the_agent_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = RemoteLLMFactory("troupe-scheduler-x", "node")
    monkeypatch.setenv("TROUPE_BLOCK_REMOTE_MODELS", "1")
    far = {"m": ModelProfile(provider="openai", model="gpt", base_url="https://api.example.com/v1")}
    with pytest.raises(ConfigError, match="not on this machine"):
        factory("m", far, agent="lead")
    keyed = {"m": ModelProfile(provider="openai", model="gpt", base_url="http://127.0.0.1:9/v1",
                               api_key_env="TROUPE_TEST_MISSING_KEY")}
    with pytest.raises(ConfigError, match="TROUPE_TEST_MISSING_KEY"):
        factory("m", keyed, agent="lead")


async def test_worker_streams_deltas_then_the_response(server: OpenAICompatServer) -> None:
    server.enqueue(TextReply("hello there, world", chunk_size=3))
    server.enqueue(TextReply("quiet"))
    factory = RemoteLLMFactory("x", "node")
    client = factory("m", openai_team(server.base_url).models, agent="lead")
    worker = LLMWorkerActor()
    request = LLMRequest(messages=[ChatMessage(role="user", content="hi")])
    args = (client._key, "m", client._profiles_json, "lead", request)
    items = [item async for item in worker.complete(*args, True)]
    *chunks, response = items
    assert isinstance(response, LLMResponse) and response.text == "hello there, world"
    assert "".join(d for chunk in chunks for d in chunk) == "hello there, world"
    [only] = [item async for item in worker.complete(*args, False)]
    assert isinstance(only, LLMResponse) and only.text == "quiet"
    info = await worker.describe()
    assert info["clients"] == 1 and info["calls"] == 2 and info["in_flight"] == 0
    await worker.close()


# --- on the session-wide Ray ---------------------------------------------------------------------
@pytest.mark.ray
@pytest.mark.parametrize("placement", ["dedicated", "packed"])
async def test_openai_agent_calls_run_on_the_node_llm_worker(troupe_ray: Any, lake: Path, tmp_path: Path,
                                                            server: OpenAICompatServer, placement: str) -> None:
    import ray

    server.enqueue(ToolCallsReply([ToolCallSpec("io_wait", {"seconds": 0, "folder": str(tmp_path), "tag": "x"})]))
    server.enqueue(TextReply("all done here", chunk_size=2))
    session = await troupe_ray.open(openai_team(server.base_url, tools=[f"{FIX}:io_wait"]), placement=placement,
                                    stream_tokens=True)
    await session.send("go")
    events = [e async for e in session.events()]
    result = await session.result(timeout=60)
    await session.close()
    assert result.status is SessionStatus.COMPLETED, result.error
    assert result.reply == "all done here"
    tokens = [e for e in events if e.type == "llm.token"]
    assert "".join(e.data["text"] for e in tokens) == "all done here" and {e.model for e in tokens} == {"test-model"}
    rows = query(lake, f"select type, model, tokens_in from events where session_id = '{session.id}' "
                       "and type = 'llm.response'").to_pylist()
    assert [r["tokens_in"] for r in rows] == [11, 11]
    worker = await troupe_ray.backend.scheduler.llm_worker.remote()
    info = await worker.describe.remote()
    assert info["calls"] >= 2 and info["pid"] != (await troupe_ray.backend.scheduler.describe.remote())["pid"]
    assert len(server.chat_requests) == 2
    names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    assert any(n.startswith("troupe-llm-") for n in names)


@pytest.mark.ray
async def test_cancelling_the_turn_cancels_the_remote_llm_call(troupe_ray: Any, server: OpenAICompatServer) -> None:
    server.enqueue(TextReply("too late", delay_s=60))
    session = await troupe_ray.open(openai_team(server.base_url), placement="packed")
    worker = await troupe_ray.backend.scheduler.llm_worker.remote()
    await session.send("go")
    deadline = time.monotonic() + 30
    while (await worker.describe.remote())["in_flight"] < 1:
        assert time.monotonic() < deadline, "the LLM call never started on the worker"
        await asyncio.sleep(0.05)
    await session.cancel("stop")
    assert (await session.result(timeout=10)).status is SessionStatus.CANCELLED
    await session.close()  # terminates the agent: its turn, and with it the llm:lead task, is cancelled
    deadline = time.monotonic() + 10
    while (await worker.describe.remote())["in_flight"] > 0:
        assert time.monotonic() < deadline, "the LLM call kept running on the worker after the turn was cancelled"
        await asyncio.sleep(0.05)


def test_the_worker_sees_which_profile_fields_were_set() -> None:
    """The local provider's small-model defaults apply only to fields a profile leaves unset."""
    import json

    from troupe.runtime.config import parse_team

    models = parse_team({"name": "t", "entry": "a", "default_model": "m", "agents": [{"id": "a"}],
                         "models": {"m": {"provider": "openai", "model": "x", "base_url": "http://127.0.0.1:9/v1",
                                          "tools_after_results": False}}}).models
    client = RemoteLLMFactory("x", "node")("m", models, agent="a")
    [(_, sent)] = json.loads(client._profiles_json).items()
    rebuilt = ModelProfile.model_validate(sent)
    assert rebuilt.model_fields_set == models["m"].model_fields_set
    assert "parse_text_tool_calls" not in rebuilt.model_fields_set


@pytest.mark.ray
async def test_a_failed_model_call_reaches_the_agent_as_a_provider_error(troupe_ray: Any, lake: Path,
                                                                         server: OpenAICompatServer) -> None:
    server.enqueue_error(500, "the model fell over")
    result = await troupe_ray.run(openai_team(server.base_url), "go", timeout=60, placement="packed")
    assert result.status is SessionStatus.FAILED
    assert (result.error or "").startswith("server_error: agent 'lead'") and "the model fell over" in (result.error or "")
    [row] = query(lake, f"select payload from events where session_id = '{result.session_id}' "
                        "and type = 'llm.error'").to_pylist()
    assert "HTTP 500" in row["payload"] and json.loads(row["payload"])["type"] == "ProviderError"
