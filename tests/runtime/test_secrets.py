"""Secrets by name (issue #19, point 4): tools read them from the environment or a file on their own
node, never through the model, and no value reaches the lake, events, checkpoints, the workspace or
logs. The Ray version of the end-to-end test is tests/actors/test_secrets_ray.py."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets as random
import string
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import team
from troupe.runtime import redact
from troupe.runtime.api import Troupe
from troupe.runtime.config import McpServerConfig, parse_team
from troupe.runtime.errors import ConfigError, TeamConfigError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.ids import AgentId, RunId, SessionId
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall
from troupe.runtime.safety import SecretRef
from troupe.runtime.secrets import SecretError, bind_servers, expand, register_all, resolve
from troupe.runtime.session.supervisor import SessionStatus
from troupe.tools.context import ToolContext
from troupe.tools.mcp.server_params import http_headers, stdio_parameters
from troupe.tools.spec import tool

ENV = "TROUPE_TEST_BANKX"
"""A name that does not look secret: only the team's ``secrets:`` says it is."""
HERE = "tests.runtime.test_secrets"

SERVER_CODE = '''
"""A stdio MCP server that gets the team's secrets through ${secret:NAME} in its env and args, and echoes them."""
import hashlib, os, sys
from mcp.server.mcpserver import MCPServer

server = MCPServer("vault", version="1.0", log_level="WARNING")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@server.tool()
def reveal() -> dict:
    """The secrets this server was given (echoed on purpose: the runtime must scrub them)."""
    bank, vault, arg = os.environ.get("BANK_VALUE", ""), os.environ.get("VAULT_VALUE", ""), sys.argv[-1]
    print(f"reveal: bank={bank} vault={vault}", file=sys.stderr, flush=True)
    return {"bank": bank, "bank_sha256": sha(bank), "vault": vault, "vault_sha256": sha(vault),
            "arg": arg, "arg_sha256": sha(arg)}


server.run("stdio")
'''


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_secret() -> str:
    return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(24))


@tool(name="use_bank")
async def use_bank(ctx: ToolContext) -> dict[str, Any]:
    """Read the team's secrets by name; echo them (on purpose: the runtime must scrub the echo)."""
    bank, vault = ctx.secret("BANK"), ctx.secret("VAULT")
    if ctx.workspace is not None:  # something of the session's own in its workspace, to grep too
        ctx.workspace.mkdir(parents=True, exist_ok=True)
        (ctx.workspace / "receipt.txt").write_text(f"bank {sha(bank)}\n")
    return {"bank": bank, "bank_sha256": sha(bank), "vault": vault, "vault_sha256": sha(vault)}


def vault_model(request: LLMRequest, agent: str) -> LLMResponse | str:
    """Calls both tools, then answers with exactly what it was shown of their results."""
    shown = {m.name: m.content for m in request.messages if m.role == "tool"}
    if not shown:
        vault = ToolCall(id="c_vault", name="vault__reveal")
        return LLMResponse(tool_calls=[vault] if agent == "mcp_only" else [ToolCall(id="c_bank", name="use_bank"), vault])
    return json.dumps(shown)


def vault_team(server_script: Path, vault_file: Path, workspaces: Path, *, mcp_only: bool = False) -> Any:
    """Agent ``a`` calls ``use_bank`` and the MCP server's ``reveal``; agent ``mcp_only`` only the latter."""
    agent = ({"id": "mcp_only", "tools": ["vault__reveal"]} if mcp_only else
             {"id": "a", "tools": [f"{HERE}:use_bank", "vault__reveal"]})
    return team([{**agent, "permissions": {"level": "L2"}}],
                function=f"{HERE}:vault_model",
                secrets={"BANK": f"env:{ENV}", "VAULT": f"file:{vault_file}"},
                workspace={"root": str(workspaces)},
                mcpServers={"vault": {"command": sys.executable, "args": [str(server_script), "${secret:BANK}"],
                                      "env": {"BANK_VALUE": "${secret:BANK}", "VAULT_VALUE": "${secret:VAULT}"},
                                      "timeout_s": 20, "connect_timeout_s": 30}})


def files_holding(root: Path, values: list[str], since: float = 0.0) -> list[str]:
    """Every file under ``root`` (modified at or after ``since``) that holds any of ``values``, as raw bytes."""
    found = []
    for path in root.rglob("*"):
        try:
            if not path.is_file() or path.stat().st_mtime < since:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        if any(v.encode() in data for v in values):
            found.append(str(path))
    return found


def lake_rows_holding(lake: Path, values: list[str]) -> list[dict[str, Any]]:
    """Every event row (all its columns, as text) that holds any of ``values``: Parquet compresses,
    so the lake is also read back through DuckDB."""
    rows = query(lake, "select * from events").to_pylist()
    assert rows, "the lake holds no events"
    return [r for r in rows if any(v in json.dumps(r, default=str) for v in values)]


def check_shown(reply: str, bank: str, vault: str) -> None:
    """What the model was shown: the tools worked (right hashes), and every echo was ``[redacted]``."""
    shown = json.loads(reply)
    if "use_bank" in shown:
        mine = json.loads(shown["use_bank"])
        assert mine == {"bank": "[redacted]", "bank_sha256": sha(bank), "vault": "[redacted]",
                        "vault_sha256": sha(vault)}
    served = json.loads(shown["vault__reveal"])
    assert served == {"bank": "[redacted]", "bank_sha256": sha(bank), "vault": "[redacted]",
                      "vault_sha256": sha(vault), "arg": "[redacted]", "arg_sha256": sha(bank)}


def plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, Path, Path]:
    """A random env secret and a random file secret (the file outside the folders the test greps)."""
    bank, vault = new_secret(), new_secret()
    monkeypatch.setenv(ENV, bank)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "vault.txt").write_text(vault + "\n")
    (keys / "server.py").write_text(SERVER_CODE)
    return bank, vault, keys / "server.py", keys / "vault.txt"


# --- end to end -------------------------------------------------------------------------------
async def test_a_planted_secret_reaches_its_tools_and_nothing_the_session_wrote(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    bank, vault, server, vault_file = plant(tmp_path, monkeypatch)
    run = tmp_path / "run"
    lake = run / "lake"
    caplog.set_level(logging.DEBUG)  # the MCP server's stderr goes to the debug log: it must be scrubbed too
    troupe = Troupe.local(lake=lake, checkpoints=True)
    try:
        result = await troupe.run(vault_team(server, vault_file, run / "workspaces"), "pay the bill", timeout=60)
    finally:
        await troupe.shutdown()
    assert result.status is SessionStatus.COMPLETED, result.error
    check_shown(result.reply, bank, vault)
    assert (run / "workspaces" / result.session_id / "receipt.txt").exists()
    assert any((lake / "checkpoints").rglob("*.json")), "the session was not checkpointed"
    assert "reveal: bank=[redacted] vault=[redacted]" in caplog.text  # the server's stderr line was logged ...
    assert files_holding(run, [bank, vault]) == []  # ... but no value is anywhere the session wrote
    assert lake_rows_holding(lake, [bank, vault]) == []
    out, err = capfd.readouterr()
    assert not any(v in text for v in (bank, vault) for text in (caplog.text, out, err))
    results = query(lake, "select payload from events where type = 'tool.result' order by seq").to_pylist()
    assert len(results) == 2 and all("[redacted]" in r["payload"] for r in results)


async def test_a_tool_asking_for_an_unknown_secret_gets_an_error_that_lists_the_teams(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    @tool(name="wrong_secret")
    async def wrong_secret(ctx: ToolContext) -> str:
        return ctx.secret("BANKK")

    troupe = Troupe.local(lake=tmp_path / "lake")
    troupe.registry.register(wrong_secret)
    monkeypatch.setenv(ENV, new_secret())
    cfg = team([{"id": "a", "tools": ["wrong_secret"]}], secrets={"BANK": f"env:{ENV}", "DB": "file:/nowhere/db"},
               scripts={"a": [{"tool_calls": [{"name": "wrong_secret"}]}, {"text": "done"}]})
    try:
        result = await troupe.run(cfg, "go", timeout=30)
    finally:
        await troupe.shutdown()
    assert result.status is SessionStatus.COMPLETED, result.error
    [error] = query(tmp_path / "lake", "select json_extract_string(payload, '$.result') r from events "
                                       "where type = 'tool.error'").to_pylist()
    assert "SecretError: unknown secret 'BANKK'; this team's secrets are: BANK, DB" in error["r"]


# --- resolve: env, file, errors ----------------------------------------------------------------
def test_resolve_reads_the_env_var_and_registers_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    value = new_secret()
    monkeypatch.setenv(ENV, value)
    assert resolve("BANK", {"BANK": SecretRef(env=ENV)}) == value
    assert redact.redact_text(f"token {value}!") == "token [redacted]!"
    assert value not in json.dumps(redact.redact({"note": f"x{value}y"}))


def test_resolve_reads_a_file_without_its_trailing_newline(tmp_path: Path) -> None:
    value = new_secret()
    (tmp_path / "key").write_text(f"{value}\n")
    assert resolve("K", {"K": SecretRef.model_validate(f"file:{tmp_path / 'key'}")}) == value
    assert redact.redact_text(value) == redact.REDACTED
    (tmp_path / "crlf").write_text(f"{value}x\r\n")
    assert resolve("K", {"K": SecretRef(file=str(tmp_path / "crlf"))}) == f"{value}x"


def test_an_unknown_name_lists_the_teams_secrets() -> None:
    with pytest.raises(SecretError, match=r"unknown secret 'BANKK'; this team's secrets are: BANK, MAIL \(") as e:
        resolve("BANKK", {"MAIL": SecretRef(env="M"), "BANK": SecretRef(env="B")})
    assert isinstance(e.value, ConfigError)
    with pytest.raises(SecretError, match="this team's secrets are: none"):
        resolve("X", {})


def test_an_unset_variable_says_which_and_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TROUPE_TEST_UNSET_VAR", raising=False)
    with pytest.raises(SecretError, match=r"secret 'BANK' is read from the environment variable "
                                          r"TROUPE_TEST_UNSET_VAR, which is not set on .*; export TROUPE_TEST_UNSET_VAR"):
        resolve("BANK", {"BANK": SecretRef(env="TROUPE_TEST_UNSET_VAR")})


def test_a_missing_or_unreadable_file_says_which_and_how_to_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(SecretError, match=rf"secret 'DB' is read from the file {missing}, which does not exist on "
                                          rf".*; create it"):
        resolve("DB", {"DB": SecretRef(file=str(missing))})
    with pytest.raises(SecretError, match=rf"the file {tmp_path}, which cannot be read on .*\(Is a directory\); "
                                          r"make it a UTF-8 text file readable by the user"):
        resolve("DB", {"DB": SecretRef(file=str(tmp_path))})
    (tmp_path / "binary").write_bytes(b"\xff\xfe\xfa" * 4)
    with pytest.raises(SecretError, match=r"cannot be read on .*\(UnicodeDecodeError\)"):
        resolve("DB", {"DB": SecretRef(file=str(tmp_path / "binary"))})


def test_empty_and_too_short_values_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretError, match=r"secret 'E': the file .*empty is empty"):
        resolve("E", {"E": SecretRef(file=str(tmp_path / "empty"))})
    monkeypatch.setenv(ENV, "abc")
    with pytest.raises(SecretError, match=r"shorter than 6 characters, too short to be scrubbed"):
        resolve("S", {"S": SecretRef(env=ENV)})


def test_register_all_registers_what_it_can_read_and_skips_the_rest(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    value = new_secret()
    monkeypatch.setenv(ENV, value)
    refs = {"BANK": SecretRef(env=ENV), "ELSEWHERE": SecretRef(file=str(tmp_path / "on-another-node"))}
    assert register_all(refs) == ["BANK"]
    assert redact.redact_text(value) == redact.REDACTED


def test_error_messages_never_hold_the_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    value = new_secret()
    monkeypatch.setenv(ENV, value)
    with pytest.raises(SecretError) as e:
        expand("${secret:BANK}-${secret:NOPE}", {"BANK": SecretRef(env=ENV)}, where="env.X of MCP server 'v'")
    assert e.value.message.startswith("env.X of MCP server 'v': unknown secret 'NOPE'")
    assert value not in str(e.value)


def test_tool_context_secret_reads_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    value = new_secret()
    monkeypatch.setenv(ENV, value)
    ctx = ToolContext(session_id=SessionId("s"), run_id=RunId("r"), agent=AgentId("a"), services=None,  # type: ignore[arg-type]
                      spec=None, secrets={"BANK": SecretRef(env=ENV)})  # type: ignore[arg-type]
    assert ctx.secret("BANK") == value
    with pytest.raises(SecretError, match="unknown secret 'bank'; this team's secrets are: BANK"):
        ctx.secret("bank")


# --- ${secret:NAME} in MCP server configs ------------------------------------------------------
def test_mcp_servers_get_the_refs_of_the_secrets_they_name_and_expand_them_where_they_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    value = new_secret()
    monkeypatch.setenv(ENV, value)
    cfg = team([{"id": "a"}], secrets={"BANK": f"env:{ENV}", "OTHER": "file:/x"}, mcpServers={
        "stdio": {"command": "srv", "args": ["--token", "${secret:BANK}"], "env": {"T": "pre-${secret:BANK}"}},
        "web": {"url": "http://127.0.0.1:1/mcp", "headers": {"Authorization": "Bearer ${secret:BANK}"}},
        "plain": {"command": "srv"}})
    servers = cfg.mcp_servers
    assert servers["stdio"].secrets == {"BANK": SecretRef(env=ENV)} == servers["web"].secrets
    assert servers["plain"].secrets == {}
    assert value not in cfg.model_dump_json()  # the config holds references, never values
    params = stdio_parameters("stdio", servers["stdio"])
    assert params.args == ["--token", value] and params.env is not None and params.env["T"] == f"pre-{value}"
    assert http_headers("web", servers["web"]) == {"Authorization": f"Bearer {value}"}
    monkeypatch.delenv(ENV)
    with pytest.raises(SecretError, match=rf"env.T of MCP server 'stdio': secret 'BANK' .* {ENV}, which is not set"):
        stdio_parameters("stdio", servers["stdio"])


def test_an_mcp_server_naming_an_undefined_secret_is_a_team_file_error() -> None:
    with pytest.raises(TeamConfigError, match=r"MCP server 'v' names secret\(s\) \['NOPE'\].*this team's secrets "
                                              r"are: BANK"):
        team([{"id": "a"}], secrets={"BANK": "env:X"},
             mcpServers={"v": {"command": "srv", "env": {"K": "${secret:NOPE}"}}})


def test_bind_servers_keeps_configs_that_name_no_secret() -> None:
    plain = McpServerConfig(command="srv", env={"HOME_DIR": "${HOME}"})
    assert bind_servers({"p": plain}, {"BANK": SecretRef(env="X")})["p"] is plain


def test_secret_refs_survive_a_team_file_round_trip(tmp_path: Path) -> None:
    data = {"name": "t", "entry": "a", "models": {"m": {"provider": "scripted"}}, "default_model": "m",
            "agents": [{"id": "a"}], "secrets": {"BANK": "env:BANKX"},
            "mcpServers": {"v": {"command": "srv", "env": {"K": "${secret:BANK}"}}}}
    cfg = parse_team(data)
    again = parse_team(cfg.model_dump(by_alias=True))
    assert again.mcp_servers["v"].secrets == {"BANK": SecretRef(env="BANKX")}
    assert os.environ.get("BANKX") is None  # nothing was read at load time


async def test_an_http_mcp_server_gets_a_secret_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.mcp_servers import HttpTestServer
    from troupe.tools.mcp import McpManager

    value = new_secret()
    monkeypatch.setenv(ENV, value)
    server = HttpTestServer(tmp_path / "server.log").start()
    manager = McpManager()
    try:
        cfg = team([{"id": "a"}], secrets={"BANK": f"env:{ENV}"}, mcpServers={
            "web": server.config(headers={"Authorization": "Bearer ${secret:BANK}"}).model_dump()}).mcp_servers["web"]
        got = await manager.call("web", cfg, "header", {"name": "authorization"})
    finally:
        await manager.close()
        server.stop()
    assert got.text == f"Bearer {value}"  # what the server received (the test reads it unscrubbed)
    assert value not in redact.redact_text(got.text)


def test_a_secret_at_the_cut_of_a_long_result_is_not_cut_in_two(monkeypatch: pytest.MonkeyPatch) -> None:
    from troupe.runtime.agent.toolexec import _PREVIEW, MAX_RESULT_CHARS, _bounded, render_result

    value = new_secret()
    monkeypatch.setenv(ENV, value)
    resolve("BANK", {"BANK": SecretRef(env=ENV)})
    shown = render_result("x" * (MAX_RESULT_CHARS - 10) + value + "y" * 100)
    assert value[:10] not in shown and "[redacted]" in shown
    preview = _bounded({"k": "x" * (_PREVIEW - 20) + value + "y" * 20_000})["preview"]
    assert value[:10] not in preview and "[redacted]" in preview
