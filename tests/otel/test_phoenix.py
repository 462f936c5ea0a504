"""The OTLP export of a three-agent session, read back from a real Arize Phoenix: one trace per
session, the right parent/child spans, token counts equal to the lake's, and no planted secret —
sent in a batch from the lake (``troupe events export-otel``) and live from the event log."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.otel.phoenix import Phoenix, phoenix_command, running_phoenix
from tests.otel.support import PLANTED, REGISTERED, Recorded, read_session, record_demo
from troupe.runtime import Troupe
from troupe.runtime.cli.main import main
from troupe.runtime.otel import session_spans, trace_id_for

pytestmark = [pytest.mark.otel, pytest.mark.slow]


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    if phoenix_command() is None:
        if os.environ.get("CI"):
            pytest.fail("arize-phoenix is not installed (the dev extra has it)")
        pytest.skip("arize-phoenix is not installed (pip install -e '.[dev]')")
    with running_phoenix(tmp_path_factory.mktemp("phoenix")) as server:
        yield server


def _check_trace(phoenix: Phoenix, recorded: Recorded, *, content: bool) -> list[dict[str, Any]]:
    expected = session_spans(recorded.events)
    trace_id = f"{trace_id_for(recorded.session_id):032x}"
    spans = phoenix.trace(trace_id, len(expected))
    assert len(spans) == len(expected), [s["name"] for s in spans]
    # One trace per session, one root, and the same tree the lake gives.
    assert {s["context"]["trace_id"] for s in spans} == {trace_id}
    ids = {s["context"]["span_id"]: s for s in spans}
    roots = [s for s in spans if s["parent_id"] is None]
    assert [r["name"] for r in roots] == ["invoke_agent demo"]
    assert all(s["parent_id"] in ids for s in spans if s["parent_id"] is not None)
    assert {(s["context"]["span_id"], s["parent_id"], s["name"]) for s in spans} == {
        (f"{e.span_id:016x}", f"{e.parent_id:016x}" if e.parent_id is not None else None, e.name) for e in expected}
    by_name = {s["name"]: s for s in spans}
    lead, assign = by_name["invoke_agent lead"], by_name["execute_tool assign_tasks"]
    assert lead["parent_id"] == roots[0]["context"]["span_id"]
    assert assign["parent_id"] == lead["context"]["span_id"]
    for worker, tool in (("math", "calculator"), ("clock", "convert_time")):
        turn = by_name[f"invoke_agent {worker}"]
        assert turn["parent_id"] == assign["context"]["span_id"] and turn["span_kind"] == "AGENT"
        assert by_name[f"execute_tool {tool}"]["parent_id"] == turn["context"]["span_id"]
    chats = [s for s in spans if s["attributes"].get("gen_ai.operation.name") == "chat"]
    assert len(chats) == recorded.count("llm.response") and {c["span_kind"] for c in chats} == {"LLM"}
    assert all(s["attributes"]["troupe.session_id"] == recorded.session_id for s in spans)
    assert all(s["attributes"]["troupe.run_id"] == recorded.run_id for s in spans)
    # Token counts equal the lake's (DuckDB's sums over the session's rows).
    tokens = (sum(c["attributes"]["gen_ai.usage.input_tokens"] for c in chats),
              sum(c["attributes"]["gen_ai.usage.output_tokens"] for c in chats))
    assert tokens == recorded.lake_tokens()
    # No planted secret anywhere; contents only when asked for.
    text = json.dumps(spans)
    assert PLANTED not in text and REGISTERED not in text and "sk-troupe" not in text
    assert ("7006652" in text) is content
    assert ("gen_ai.tool.call.result" in text) is content
    return spans


def test_batch_export_from_the_lake(phoenix: Phoenix, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recorded = asyncio.run(record_demo(tmp_path / "lake"))
    code = main(["events", "export-otel", recorded.run_id, "--lake", recorded.lake, "--endpoint", phoenix.url,
                 "--content", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["sessions"] == {recorded.session_id: len(session_spans(recorded.events))}
    assert (out["input_tokens"], out["output_tokens"]) == recorded.lake_tokens()
    spans = _check_trace(phoenix, recorded, content=True)
    root = next(s for s in spans if s["parent_id"] is None)
    assert "[redacted]" in root["attributes"]["troupe.input"]
    # Sent again (same ids): Phoenix keeps one copy, so the session is still one trace.
    assert main(["events", "export-otel", recorded.session_id, "--lake", recorded.lake, "--endpoint", phoenix.url]) == 0
    assert len([s for s in phoenix.spans() if s["context"]["trace_id"] == root["context"]["trace_id"]]) == len(spans)


async def test_live_export_from_the_event_log(phoenix: Phoenix, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TROUPE_OTEL_ENDPOINT", phoenix.url)
    monkeypatch.delenv("TROUPE_OTEL_CONTENT", raising=False)
    troupe = Troupe.local(lake=tmp_path / "lake")
    live = troupe.backend.otel
    assert live is not None
    try:
        recorded = await record_demo(tmp_path / "lake", troupe)
        for _ in range(200):  # exported a moment after session.finished, while the runtime goes on
            if live.stats.sessions_exported:
                break
            await asyncio.sleep(0.05)
        assert live.stats.sessions_exported == 1 and live.stats.spans_failed == 0
    finally:
        await troupe.shutdown()
    recorded = read_session(recorded.lake, recorded.session_id)
    _check_trace(phoenix, recorded, content=False)
