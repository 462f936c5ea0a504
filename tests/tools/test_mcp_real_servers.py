"""Real third-party MCP servers, each installed in its own environment (see tests/support/mcp_install.py):
``mcp-server-time`` (Python), ``@modelcontextprotocol/server-filesystem`` and ``server-memory`` (npm)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from troupe.runtime.config import McpServerConfig
from troupe.tools.mcp import McpManager


@pytest.fixture
async def manager() -> AsyncIterator[McpManager]:
    m = McpManager()
    try:
        yield m
    finally:
        await m.close()


async def test_time_server_converts_and_rejects_bad_zones(manager: McpManager, mcp_time_server: Path) -> None:
    cfg = McpServerConfig(command=str(mcp_time_server), timeout_s=20, connect_timeout_s=30)
    specs = {s.name: s for s in await manager.list_tools("time", cfg)}
    assert {"time__convert_time", "time__get_current_time"} <= set(specs)
    assert specs["time__convert_time"].idempotent
    assert specs["time__convert_time"].parameters["required"] == ["source_timezone", "time", "target_timezone"]

    result = await manager.call("time", cfg, "convert_time",
                                {"source_timezone": "Europe/London", "time": "12:00", "target_timezone": "Asia/Tokyo"})
    assert not result.is_error
    data = json.loads(result.text)
    source = datetime.fromisoformat(data["source"]["datetime"])
    target = datetime.fromisoformat(data["target"]["datetime"])
    expected = source.replace(tzinfo=ZoneInfo("Europe/London")).astimezone(ZoneInfo("Asia/Tokyo"))
    assert source.hour == 12 and target.hour == expected.hour and target.hour in (20, 21)

    bad = await manager.call("time", cfg, "get_current_time", {"timezone": "Nowhere/Atlantis"})
    assert bad.is_error and "Nowhere/Atlantis" in bad.text


async def test_filesystem_server_stays_in_its_root(manager: McpManager, mcp_filesystem_server: Path,
                                                   tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside.txt"
    cfg = McpServerConfig(command=str(mcp_filesystem_server), args=[str(root)], timeout_s=20, connect_timeout_s=30)
    names = {s.name for s in await manager.list_tools("fs", cfg)}
    assert {"fs__write_file", "fs__read_text_file"} <= names

    wrote = await manager.call("fs", cfg, "write_file", {"path": str(root / "note.txt"), "content": "hello from troupe"})
    assert not wrote.is_error
    assert (root / "note.txt").read_text() == "hello from troupe"
    read = await manager.call("fs", cfg, "read_text_file", {"path": str(root / "note.txt")})
    assert read.text == "hello from troupe"

    refused = await manager.call("fs", cfg, "write_file", {"path": str(outside), "content": "escape"})
    assert refused.is_error and "outside allowed directories" in refused.text
    escaped = await manager.call("fs", cfg, "write_file", {"path": str(root / ".." / "dotdot.txt"), "content": "x"})
    assert escaped.is_error
    assert not outside.exists() and not (tmp_path / "dotdot.txt").exists()


async def test_memory_server_writes_its_jsonl(manager: McpManager, mcp_memory_server: Path, tmp_path: Path) -> None:
    memory_file = tmp_path / "memory.jsonl"
    cfg = McpServerConfig(command=str(mcp_memory_server), env={"MEMORY_FILE_PATH": str(memory_file)},
                          timeout_s=20, connect_timeout_s=30)
    created = await manager.call("memory", cfg, "create_entities", {"entities": [
        {"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]},
        {"name": "Engine", "entityType": "machine", "observations": []},
    ]})
    assert not created.is_error
    related = await manager.call("memory", cfg, "create_relations", {"relations": [
        {"from": "Ada", "to": "Engine", "relationType": "programmed"}]})
    assert not related.is_error

    lines = [json.loads(line) for line in memory_file.read_text().splitlines() if line.strip()]
    entities = {e["name"]: e for e in lines if e["type"] == "entity"}
    assert entities["Ada"]["observations"] == ["wrote the first program"]
    assert entities["Engine"]["entityType"] == "machine"
    assert {"type": "relation", "from": "Ada", "to": "Engine", "relationType": "programmed"} in lines

    graph = await manager.call("memory", cfg, "search_nodes", {"query": "Ada"})
    assert "wrote the first program" in graph.text
