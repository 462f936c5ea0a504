"""MCP tools as Troupe tools: schema validation, in-process invocation through the default manager."""

from __future__ import annotations

import pickle
from collections.abc import AsyncIterator

import pytest

from tests.support.mcp_servers import stdio_config
from troupe.runtime.errors import ToolArgumentError, ToolExecutionError
from troupe.tools.mcp import McpCallResult, McpManager, McpTool, default_manager, mcp_tools
from troupe.tools.mcp.tools import McpInvoker


@pytest.fixture
async def tools() -> AsyncIterator[dict[str, McpTool]]:
    cfg = stdio_config()
    manager = McpManager()
    try:
        specs = await manager.list_tools("test", cfg)
    finally:
        await manager.close()
    built = mcp_tools("test", cfg, specs)
    yield {t.name: t for t in built}  # type: ignore[misc]
    await default_manager().close()


async def test_tools_carry_server_config_and_remote_name(tools: dict[str, McpTool]) -> None:
    add = tools["test__add"]
    assert isinstance(add, McpTool)
    assert (add.server, add.remote_name, add.cfg.command) == ("test", "add", stdio_config().command)
    assert tools["test__read_resource"].remote_name == "read_resource"
    changed = add.with_spec(timeout_s=3)
    assert isinstance(changed, McpTool) and changed.spec.timeout_s == 3 and changed.remote_name == "add"
    assert isinstance(pickle.loads(pickle.dumps(add.fn)), McpInvoker)


async def test_validate_checks_the_json_schema(tools: dict[str, McpTool]) -> None:
    add = tools["test__add"]
    assert add.validate({"a": 1, "b": 2}) == {"a": 1, "b": 2}
    with pytest.raises(ToolArgumentError) as err:
        add.validate({"a": "one"})
    message = str(err.value)
    assert message.startswith("invalid arguments for tool 'test__add': ")
    assert "a: 'one' is not of type 'integer'" in message and "'b' is a required property" in message
    assert message.endswith("Fix the arguments and call again.")
    with pytest.raises(ToolArgumentError, match="uri"):
        tools["test__read_resource"].validate({})
    with pytest.raises(ToolArgumentError, match="Additional properties"):
        tools["test__list_prompts"].validate({"x": 1})


async def test_invoke_runs_on_the_default_manager(tools: dict[str, McpTool]) -> None:
    result = await tools["test__add"].invoke({"a": 20, "b": 22})
    assert isinstance(result, McpCallResult) and result.structured == {"sum": 42}
    notes = await tools["test__read_resource"].invoke({"uri": "notes://today"})
    assert "Standup" in notes.text
    with pytest.raises(ToolExecutionError, match="this tool always fails"):
        await tools["test__fail"].invoke({})
    assert default_manager().describe()["servers"]["test"]["calls"] == 2


async def test_specs_of_another_server_are_refused(tools: dict[str, McpTool]) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        mcp_tools("other", stdio_config(), [tools["test__add"].spec])
