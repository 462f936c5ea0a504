"""Unit tests for team configuration loading and its error messages."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from troupe.runtime.config import (
    AgentSpec,
    ModelProfile,
    PermissionLevel,
    Placement,
    TeamConfig,
    load_team,
    parse_team,
)
from troupe.runtime.errors import ConfigError, TeamConfigError, UnknownAgentError, UnknownModelError
from troupe.runtime.ids import AgentId

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "research_team"


def minimal() -> dict[str, Any]:
    return {
        "name": "t",
        "entry": "lead",
        "default_model": "m",
        "models": {"m": {"provider": "scripted"}},
        "agents": [{"id": "lead"}, {"id": "worker"}],
    }


def error_of(data: Any, source: str = "<team>") -> TeamConfigError:
    with pytest.raises(TeamConfigError) as info:
        parse_team(data, source=source)
    err = info.value
    assert isinstance(err, ConfigError)
    assert err.fields == {"source": source}
    return err


# --- the example -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", [EXAMPLE, EXAMPLE / "team.yaml", str(EXAMPLE)])
def test_load_example_team(path):
    team = load_team(path)
    assert isinstance(team, TeamConfig)
    assert team.name == "research_team"
    assert team.entry == "lead" and type(team.entry) is AgentId
    assert [a.id for a in team.agents] == ["lead", "worker_a", "worker_b"]
    assert [a.tools for a in team.agents] == [
        ["task_create", "task_wait", "task_list", "blackboard_list"],
        ["calculator", "blackboard_put", "task_update"],
        ["calculator", "blackboard_put", "delegate"],
    ]
    assert [a.permissions.level for a in team.agents] == [PermissionLevel.L2, PermissionLevel.L1, PermissionLevel.L1]
    assert [a.groups for a in team.agents] == [[], ["workers"], ["workers"]]
    assert team.default_model == "scripted"
    assert list(team.models) == ["scripted"]
    profile = team.models["scripted"]
    assert profile.provider == "scripted"
    assert sorted(profile.scripts) == ["lead", "worker_a", "worker_b", "worker_b.checker"]
    assert profile.scripts["worker_a"][0].tool_calls[0].name == "calculator"
    assert profile.scripts["worker_a"][0].tool_calls[0].arguments == {"expression": "1234 * 5678"}
    assert profile.scripts["lead"][-1].text.startswith("1234 * 5678 = 7006652")
    assert team.budgets.model_dump() == {"max_tokens": None, "max_tool_calls": 50, "max_llm_calls": None, "max_wall_s": 120.0}
    assert team.placement is Placement.DEDICATED
    assert team.mcp_servers == {}


def test_agent_defaults():
    team = parse_team(minimal())
    spec = team.agent("worker")
    assert spec.model_dump() == {
        "id": "worker",
        "name": "",
        "role": "",
        "model": None,
        "instructions": "",
        "tools": [],
        "permissions": {"level": PermissionLevel.L1, "scopes": []},
        "memory": "none",
        "knowledge": [],
        "skills": [],
        "kind": "agent",
        "planner": {"max_replans": 3, "max_parallel": 8, "step_timeout_s": 300.0, "reflect": False},
        "groups": [],
        "max_rounds": 8,
        "context_tokens": 16_000,
        "subscriptions": [],
        "publish_results": False,
        "parallel_tool_calls": True,
        "a2a": None,
    }
    assert team.profile_for(spec) == "m"


def test_agent_lookup_unknown():
    team = parse_team(minimal())
    with pytest.raises(UnknownAgentError) as info:
        team.agent("nobody")
    assert str(info.value) == "unknown agent 'nobody'; this team has ['lead', 'worker']"
    assert info.value.fields == {"agent": "nobody"}


def test_profile_for_agent_with_own_model():
    data = minimal()
    data["models"]["other"] = {"provider": "scripted"}
    data["agents"][1]["model"] = "other"
    team = parse_team(data)
    assert [team.profile_for(a) for a in team.agents] == ["m", "other"]


# --- structural errors -----------------------------------------------------------------------
def test_missing_agents():
    data = minimal()
    del data["agents"]
    err = error_of(data, source="team.yaml")
    assert str(err) == "invalid team file team.yaml:\n  - agents: Field required"


def test_empty_agents_list():
    data = minimal()
    data["agents"] = []
    err = error_of(data)
    assert "(top level)" in str(err)
    assert "a team needs at least one agent under 'agents'" in str(err)


def test_wrong_type_for_tools():
    data = minimal()
    data["agents"][1]["tools"] = "calculator"
    err = error_of(data)
    assert str(err) == (
        "invalid team file <team>:\n  - agents.1.tools: Input should be a valid list (got 'calculator')"
    )


def test_unknown_top_level_key():
    data = minimal()
    data["colour"] = "blue"
    err = error_of(data)
    assert str(err) == "invalid team file <team>:\n  - colour: Extra inputs are not permitted (got 'blue')"


def test_unknown_agent_key():
    data = minimal()
    data["agents"][0]["toolz"] = ["calculator"]
    err = error_of(data)
    assert str(err) == (
        "invalid team file <team>:\n  - agents.0.toolz: Extra inputs are not permitted (got ['calculator'])"
    )


def test_several_errors_each_on_own_line():
    data = minimal()
    data["colour"] = "blue"
    data["agents"][0]["max_rounds"] = 0
    del data["name"]
    lines = str(error_of(data)).splitlines()
    assert lines[0] == "invalid team file <team>:"
    assert sorted(lines[1:]) == sorted(
        [
            "  - name: Field required",
            "  - agents.0.max_rounds: Input should be greater than or equal to 1 (got 0)",
            "  - colour: Extra inputs are not permitted (got 'blue')",
        ]
    )


def test_duplicate_agent_ids():
    data = minimal()
    data["agents"].append({"id": "worker", "role": "again"})
    err = error_of(data)
    assert str(err) == (
        "invalid team file <team>:\n"
        "  - (top level): Value error, agent ids must be unique; repeated: ['worker']"
    )


def test_entry_not_an_agent():
    data = minimal()
    data["entry"] = "boss"
    err = error_of(data)
    assert str(err) == (
        "invalid team file <team>:\n"
        "  - (top level): Value error, entry 'boss' is not an agent of this team; agents are ['lead', 'worker']"
    )


def test_agent_uses_unknown_model_profile():
    data = minimal()
    data["agents"][1]["model"] = "gpt-9"
    err = error_of(data)
    assert str(err) == (
        "invalid team file <team>:\n"
        "  - (top level): Value error, agent 'worker' uses model profile 'gpt-9', which is not under 'models' "
        "(profiles: ['m'])"
    )


def test_default_model_missing_from_models():
    data = minimal()
    data["default_model"] = "default"
    err = error_of(data)
    assert "agent 'lead' uses model profile 'default', which is not under 'models' (profiles: ['m'])" in str(err)


def test_profile_falls_back_to_unknown_profile():
    data = minimal()
    data["models"]["m"]["fallbacks"] = ["backup"]
    err = error_of(data)
    assert str(err) == (
        "invalid team file <team>:\n"
        "  - (top level): Value error, model profile 'm' falls back to unknown profile 'backup'"
    )


def test_known_fallback_ok():
    data = minimal()
    data["models"]["m"]["fallbacks"] = ["backup"]
    data["models"]["backup"] = {"provider": "scripted"}
    assert parse_team(data).models["m"].fallbacks == ["backup"]


@pytest.mark.parametrize("reserved", ["user", "session", "tasks", "blackboard", "memory"])
def test_reserved_agent_id(reserved):
    data = minimal()
    data["agents"][1]["id"] = reserved
    err = error_of(data)
    assert str(err) == (
        "invalid team file <team>:\n"
        f"  - agents.1.id: Value error, agent id '{reserved}' is reserved; pick another "
        f"(reserved: ['blackboard', 'memory', 'session', 'tasks', 'user']) (got '{reserved}')"
    )


@pytest.mark.parametrize("bad", ["bad id", "-lead", "a/b", ""])
def test_invalid_agent_id_characters(bad):
    data = minimal()
    data["agents"][1]["id"] = bad
    err = error_of(data)
    lines = str(err).splitlines()
    assert lines[1] == (
        f"  - agents.1.id: Value error, invalid agent id {bad!r}: use 1-128 characters from letters, digits, "
        f"'.', '_', ':' and '-', starting with a letter or digit (got {bad!r})"
    )


def test_agent_entry_not_a_mapping():
    data = minimal()
    data["agents"][1] = "worker"
    err = error_of(data)
    assert str(err).splitlines()[1].startswith("  - agents.1: Input should be a valid dictionary or instance of AgentSpec")
    assert "(got 'worker')" in str(err)


def test_openai_provider_without_model():
    data = minimal()
    data["models"]["m"] = {"provider": "openai", "base_url": "http://localhost:1/v1"}
    err = error_of(data)
    assert str(err) == (
        "invalid team file <team>:\n"
        "  - models.m: Value error, provider 'openai' needs 'model' (the model name the endpoint serves)"
    )


def test_default_provider_is_openai_and_needs_model():
    data = minimal()
    data["models"]["m"] = {}
    assert "models.m: Value error, provider 'openai' needs 'model'" in str(error_of(data))
    data["models"]["m"] = {"model": "gpt-4o-mini"}
    assert parse_team(data).models["m"].provider == "openai"


def test_function_provider_without_function():
    data = minimal()
    data["models"]["m"] = {"provider": "function"}
    err = error_of(data)
    assert str(err) == (
        "invalid team file <team>:\n"
        "  - models.m: Value error, provider 'function' needs 'function: package.module:callable'"
    )


def test_unknown_provider_and_bad_numbers():
    data = minimal()
    data["models"]["m"] = {"provider": "magic", "timeout_s": 0, "max_retries": -1}
    lines = str(error_of(data)).splitlines()
    assert lines[0] == "invalid team file <team>:"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "  - models.m.provider",
        "  - models.m.timeout_s",
        "  - models.m.max_retries",
    ]
    assert "(got 'magic')" in lines[1]
    assert "greater than 0 (got 0)" in lines[2]
    assert "greater than or equal to 0 (got -1)" in lines[3]


@pytest.mark.parametrize(
    ("data", "type_name"), [([{"name": "x"}], "list"), ("just text", "str"), (None, "NoneType"), (42, "int")]
)
def test_non_mapping_data(data, type_name):
    err = error_of(data, source="x.yaml")
    assert str(err) == (
        "invalid team file x.yaml: expected a mapping with 'name', 'entry', 'models' and 'agents', "
        f"got {type_name}"
    )


# --- files -----------------------------------------------------------------------------------
def test_load_yaml_list(tmp_path):
    p = tmp_path / "team.yaml"
    p.write_text("- name: x\n- entry: lead\n")
    with pytest.raises(TeamConfigError) as info:
        load_team(p)
    assert str(info.value) == (
        f"invalid team file {p}: expected a mapping with 'name', 'entry', 'models' and 'agents', got list"
    )
    assert info.value.fields == {"source": str(p)}


def test_load_invalid_yaml_syntax(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\nagents: {\n")
    with pytest.raises(TeamConfigError) as info:
        load_team(p)
    assert str(info.value).startswith(f"invalid team file {p}: not valid YAML: ")
    assert info.value.fields == {"source": str(p)}
    assert info.value.__cause__ is not None


def test_load_missing_file(tmp_path):
    p = tmp_path / "nope.yaml"
    with pytest.raises(TeamConfigError) as info:
        load_team(p)
    assert str(info.value) == f"team file {p} does not exist; pass a YAML file or a folder with team.yaml"
    assert info.value.fields == {"source": str(p)}


def test_load_folder_without_team_yaml(tmp_path):
    with pytest.raises(TeamConfigError) as info:
        load_team(tmp_path)
    assert str(info.value) == (
        f"team file {tmp_path / 'team.yaml'} does not exist; pass a YAML file or a folder with team.yaml"
    )


def test_load_validation_error_names_the_file(tmp_path):
    p = tmp_path / "team.yaml"
    p.write_text("name: t\nentry: lead\nmodels: {m: {provider: scripted}}\ndefault_model: m\nagents:\n  - id: lead\n    tools: calculator\n")
    with pytest.raises(TeamConfigError) as info:
        load_team(tmp_path)
    assert str(info.value) == (
        f"invalid team file {p}:\n  - agents.0.tools: Input should be a valid list (got 'calculator')"
    )


def test_load_from_written_file(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text((EXAMPLE / "team.yaml").read_text())
    assert load_team(p) == load_team(EXAMPLE)


# --- with_model ------------------------------------------------------------------------------
def test_with_model_switches_every_agent():
    data = minimal()
    data["models"]["fast"] = {"provider": "scripted"}
    data["agents"][0]["model"] = "m"
    team = parse_team(data)
    original = copy.deepcopy(team.model_dump())
    switched = team.with_model("fast")
    assert [a.model for a in switched.agents] == ["fast", "fast"]
    assert switched.default_model == "fast"
    assert [switched.profile_for(a) for a in switched.agents] == ["fast", "fast"]
    assert team.model_dump() == original  # the original is unchanged
    assert switched.model_dump(exclude={"agents", "default_model"}) == team.model_dump(
        exclude={"agents", "default_model"}
    )


def test_with_unknown_model():
    team = parse_team(minimal())
    with pytest.raises(UnknownModelError) as info:
        team.with_model("gpt-9")
    assert str(info.value) == "unknown model profile 'gpt-9'; this team defines ['m']"
    assert info.value.fields == {"profile": "gpt-9"}
    assert isinstance(info.value, ConfigError)


# --- mcpServers ------------------------------------------------------------------------------
def test_mcp_servers_alias_and_field_name():
    servers = {"fs": {"command": "mcp-fs", "args": ["/tmp"]}}
    by_alias = minimal() | {"mcpServers": servers}
    by_name = minimal() | {"mcp_servers": servers}
    for data in (by_alias, by_name):
        fs = parse_team(data).mcp_servers["fs"]
        assert (fs.command, fs.args, fs.transport) == ("mcp-fs", ["/tmp"], "stdio")


def test_mcp_server_needs_one_transport_and_a_good_name():
    both = error_of(minimal() | {"mcpServers": {"x": {"command": "a", "url": "http://h/mcp"}}})
    assert "exactly one of 'command' (stdio) or 'url'" in str(both)
    neither = error_of(minimal() | {"mcpServers": {"x": {"args": ["a"]}}})
    assert "exactly one of 'command'" in str(neither)
    bad_name = error_of(minimal() | {"mcpServers": {"my__fs": {"command": "a"}}})
    assert "MCP server name 'my__fs'" in str(bad_name)
    http = parse_team(minimal() | {"mcpServers": {"web": {"url": "http://127.0.0.1:1/mcp"}}}).mcp_servers["web"]
    assert http.transport == "http"


def test_mcp_config_file_is_merged(tmp_path):
    import json

    import yaml

    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": {"time": {"command": "mcp-server-time"}}}))
    team = minimal() | {"mcp_config": "mcp.json", "mcpServers": {"fs": {"command": "mcp-fs"}}}
    (tmp_path / "team.yaml").write_text(yaml.safe_dump(team))
    loaded = load_team(tmp_path)
    assert sorted(loaded.mcp_servers) == ["fs", "time"]
    assert loaded.mcp_servers["time"].command == "mcp-server-time"
    (tmp_path / "mcp.json").write_text(json.dumps({"mcpServers": {"fs": {"command": "other"}}}))
    with pytest.raises(TeamConfigError, match="defined both in mcpServers"):
        load_team(tmp_path)
    (tmp_path / "mcp.json").write_text(json.dumps({"servers": {}}))
    with pytest.raises(TeamConfigError, match='expected {"mcpServers"'):
        load_team(tmp_path)
    (tmp_path / "mcp.json").unlink()
    with pytest.raises(TeamConfigError, match="does not exist"):
        load_team(tmp_path)


def test_mcp_servers_wrong_type():
    err = error_of(minimal() | {"mcpServers": ["fs"]})
    assert "mcpServers: Input should be a valid dictionary (got ['fs'])" in str(err)


# --- misc model behaviour --------------------------------------------------------------------
def test_packed_placement_and_permissions():
    data = minimal() | {"placement": "packed"}
    data["agents"][0]["permissions"] = {"level": "L3", "scopes": ["file:*"]}
    team = parse_team(data)
    assert team.placement is Placement.PACKED
    assert team.agents[0].permissions.level is PermissionLevel.L3
    assert team.agents[0].permissions.scopes == ["file:*"]


def test_bad_permission_level():
    data = minimal()
    data["agents"][0]["permissions"] = {"level": "L9"}
    assert "agents.0.permissions.level: Input should be 'L0', 'L1', 'L2', 'L3', 'L4' or 'L5' (got 'L9')" in str(
        error_of(data)
    )


def test_model_profile_defaults():
    assert ModelProfile(provider="scripted").model_dump() == {
        "provider": "scripted",
        "model": "",
        "base_url": None,
        "api_key_env": None,
        "timeout_s": 60.0,
        "max_retries": 3,
        "backoff_s": 0.5,
        "max_backoff_s": 30.0,
        "fallbacks": [],
        "temperature": None,
        "max_tokens": None,
        "scripts": {},
        "function": None,
        "parse_text_tool_calls": False,
        "tools_after_results": True,
        "extra_body": {},
        "rate_limit": None,
        "context_retries": 2,
        "retry_deadline_s": None,
        "circuit_breaker": {"failures": 5, "cooldown_s": 30.0},
        "python_path": [],
    }


def test_agent_spec_direct_construction_reserved():
    with pytest.raises(ValueError, match="agent id 'user' is reserved"):
        AgentSpec(id="user")
