"""Secrets in ``io`` and ``cpu`` tools (plain functions, no context): ``troupe.runtime.secrets.get(NAME)``
resolves against the session's references shipped with the call; the scheduler's idempotency records
(``checkpoints/.../tools/<key>.json``) are redacted. The Ray version is in tests/actors/test_secrets_ray.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import team
from tests.runtime.test_secrets import ENV, files_holding, lake_rows_holding, new_secret
from troupe.runtime import redact, secrets
from troupe.runtime.agent.dispatch import session_registration
from troupe.runtime.agent.scheduler import SchedulerCore, ToolJob
from troupe.runtime.api import Troupe
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.runtime.safety import SecretRef
from troupe.runtime.secrets import SecretError
from troupe.runtime.session.supervisor import SessionStatus
from troupe.runtime.storage.checkpoint import store_at
from troupe.tools.spec import Execution, tool

HERE = "tests.runtime.test_secrets_tools"
TOOLS = ("cpu_secret", "io_secret", "io_env")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@tool(name="cpu_secret", execution="cpu")
def cpu_secret() -> dict[str, str]:
    """A cpu tool (a Ray task on Ray) that reads the team's secret by name and echoes it (on purpose)."""
    value = secrets.get("BANK")
    return {"value": value, "sha256": sha(value), "where": f"pid {os.getpid()}"}


@tool(name="io_secret")
async def io_secret() -> list[str]:
    """An io tool (the node's tool worker on Ray) that reads the secret by name and echoes it."""
    await asyncio.sleep(0)
    value = secrets.get("BANK")
    return [value, sha(value)]


@tool(name="io_env")
def io_env() -> dict[str, str]:
    """An io tool that reads the variable itself (not through the runtime): its worker scrubs nothing,
    so whoever records the result must have the team's secrets registered."""
    value = os.environ[ENV]
    return {"value": value, "sha256": sha(value)}


def reveal_model(request: LLMRequest, agent: str) -> LLMResponse | str:
    """Calls the three tools, then answers with exactly what it was shown of their results."""
    shown = {m.name: m.content for m in request.messages if m.role == "tool"}
    if not shown:
        return LLMResponse(tool_calls=[ToolCall(id=f"c_{name}", name=name) for name in TOOLS])
    return json.dumps(shown)


def reveal_team(workspaces: Path) -> Any:
    return team([{"id": "a", "tools": [f"{HERE}:{name}" for name in TOOLS]}], function=f"{HERE}:reveal_model",
                secrets={"BANK": f"env:{ENV}"}, workspace={"root": str(workspaces)})


def check_reveal(reply: str | None, lake: Path, value: str) -> None:
    """The tools got the right value (its hash), the model saw ``[redacted]``, and each result was
    recorded in the checkpoint store (redacted there: no file under the lake holds the value)."""
    assert reply is not None
    shown = {k: json.loads(v) for k, v in json.loads(reply).items()}
    assert shown["cpu_secret"]["value"] == "[redacted]" and shown["cpu_secret"]["sha256"] == sha(value)
    assert shown["io_secret"] == ["[redacted]", sha(value)]
    assert shown["io_env"] == {"value": "[redacted]", "sha256": sha(value)}
    records = [json.loads(p.read_bytes()) for p in (lake / "checkpoints").rglob("tools/*.json")]
    assert len(records) == 3 and all("[redacted]" in json.dumps(r) for r in records)
    assert lake_rows_holding(lake, [value]) == []


async def test_io_and_cpu_tools_read_a_secret_by_name_and_nothing_the_session_wrote_holds_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = new_secret()
    monkeypatch.setenv(ENV, value)
    run = tmp_path / "run"
    troupe = Troupe.local(lake=run / "lake", checkpoints=True)
    try:
        result = await troupe.run(reveal_team(run / "workspaces"), "go", timeout=60)
    finally:
        await troupe.shutdown()
    assert result.status is SessionStatus.COMPLETED, result.error
    check_reveal(result.reply, run / "lake", value)
    assert files_holding(run, [value]) == []


# --- the scheduler's records ------------------------------------------------------------------
async def test_the_scheduler_records_a_result_redacted_with_the_jobs_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler's process has not read the secret before (as on Ray, where it runs elsewhere):
    it registers the job's references before it writes, and writes ``[redacted]``."""
    value = new_secret()
    variable = f"{ENV}_SCHED"
    monkeypatch.setenv(variable, value)
    assert redact.redact_text(value) == value  # not registered yet
    store = str(tmp_path / "checkpoints")
    job = ToolJob(tool="t", execution=Execution.IO, idempotency_key="k1", timeout_s=5, session_id="s",
                  checkpoints=store, secrets={"BANK": SecretRef(env=variable)})

    async def attempt() -> dict[str, Any]:
        return {"token": value, "nested": [f"Bearer-less {value}!", 7], value: "as a key"}

    got = await SchedulerCore().run(job, attempt)
    assert got["token"] == value  # the caller gets the result as it is (it redacts what it shows)
    assert files_holding(tmp_path, [value]) == []
    found, recorded = store_at(store).recorded_tool("s", "k1")
    assert found and recorded == {"token": "[redacted]", "nested": ["Bearer-less [redacted]!", 7],
                                  "[redacted]": "as a key"}


def test_a_session_registers_its_secrets_references_with_the_dispatcher() -> None:
    with_secrets = team([{"id": "a"}], secrets={"BANK": f"env:{ENV}"})
    assert session_registration(with_secrets) == ({}, {"BANK": SecretRef(env=ENV)})
    assert session_registration(team([{"id": "a"}])) is None


# --- secrets.get -------------------------------------------------------------------------------
def test_get_outside_a_tool_call_says_where_it_works() -> None:
    with pytest.raises(SecretError, match=r"secret 'BANK' was asked for outside a tool call: "
                                          r"troupe.runtime.secrets.get works in a tool the runtime runs"):
        secrets.get("BANK")


async def test_call_with_resolves_against_the_calls_refs_and_scrubs_what_was_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    value = new_secret()
    monkeypatch.setenv(ENV, value)
    refs = {"BANK": SecretRef(env=ENV)}

    async def body() -> dict[str, Any]:
        return {"v": secrets.get("BANK"), "t": (1, f"<{secrets.get('BANK')}>"), "sha": sha(value)}

    assert await secrets.call_with(refs, body) == {"v": "[redacted]", "t": (1, "<[redacted]>"), "sha": sha(value)}
    with pytest.raises(SecretError, match="unknown secret 'DB'; this team's secrets are: BANK"):
        await secrets.call_with(refs, lambda: asyncio.to_thread(secrets.get, "DB"))  # threads see the call too
    with pytest.raises(SecretError, match="outside a tool call"):
        secrets.get("BANK")  # the call is over


def test_scrub_keeps_what_holds_no_secret_as_it_is() -> None:
    value = new_secret()
    untouched = {"a": [1, "x"], "b": ("y",)}
    assert secrets.scrub(untouched, [value]) is untouched
    assert secrets.scrub(untouched, []) is untouched
    assert secrets.scrub([value, {value: value}], [value]) == ["[redacted]", {"[redacted]": "[redacted]"}]
