"""``troupe mcp serve`` as a real subprocess, driven by the MCP SDK's client over stdio and over
streamable HTTP (in-process runtime), and once over raw stdio on a private Ray."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

from tests.support.mcp_serve_teams import REPO, write_teams
from tests.support.mcp_servers import free_port
from troupe.runtime.cli.main import main
from troupe.runtime.eventlog.lake import query
from troupe.runtime.mcp_server.core import ServiceOptions, TroupeService
from troupe.runtime.mcp_server.tools import build_server

SERVER = [sys.executable, "-m", "troupe.runtime.cli.main", "mcp", "serve"]
ENV = {"RAY_AUTH_MODE": "disabled", "TROUPE_BLOCK_REMOTE_MODELS": "1"}
TOOLS = {"list_teams", "run_team", "start_session", "send_message", "session_status", "wait_result",
         "close_session", "list_sessions", "read_blackboard", "task_tree", "query_lake"}


@pytest.fixture
def teams(tmp_path: Path) -> Path:
    return write_teams(tmp_path / "teams")


def _args(teams: Path, lake: Path, *extra: str) -> list[str]:
    return ["--teams-dir", str(teams), "--lake", str(lake), *extra]


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}: {result.content}"
    assert result.structured_content is not None
    return result.structured_content


async def error(client: Client, tool: str, **arguments: Any) -> str:
    result: CallToolResult = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {result.structured_content}"
    return " ".join(getattr(c, "text", "") for c in result.content)


def _server_processes(lake: Path) -> list[psutil.Process]:
    """This test's server (its command line names the test's own lake) among our children."""
    return [p for p in psutil.Process().children(recursive=True)
            if str(lake) in " ".join(_cmdline(p)) and "serve" in _cmdline(p)]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _gone(procs: list[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    alive = procs
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    return alive


async def test_stdio_run_team_sessions_state_lake_and_errors(teams: Path, lake: Path) -> None:
    params = StdioServerParameters(command=SERVER[0], args=[*SERVER[1:], "--local", *_args(teams, lake)],
                                   env=ENV, cwd=str(REPO))
    async with Client(params) as client:
        [server] = _server_processes(lake)
        family = [server, *server.children(recursive=True)]

        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert set(listed) == TOOLS
        assert listed["run_team"].input_schema["required"] == ["team", "input"]
        assert set(listed["run_team"].input_schema["properties"]) == {"team", "input", "model", "timeout_s"}
        assert "status" in listed["run_team"].output_schema["properties"]
        assert listed["query_lake"].annotations.read_only_hint is True
        assert all(t.description for t in listed.values())
        names = {t["path"] for t in (await ok(client, "list_teams"))["teams"]}
        assert names == {"research_team", "echo.yaml", "broken"}

        run = await ok(client, "run_team", team="research_team", input="go")
        assert run["status"] == "completed" and "7006652" in run["reply"] and run["usage"]["tool_calls"] == 11

        sid = (await ok(client, "start_session", team="echo"))["session_id"]
        assert (await ok(client, "send_message", session_id=sid, text="hello"))["status"] == "running"
        done = await ok(client, "wait_result", session_id=sid, timeout_s=30)
        assert (done["done"], done["status"], done["reply"]) == (True, "completed", "echo: hello")

        sid2 = (await ok(client, "start_session", team="research_team"))["session_id"]
        await ok(client, "send_message", session_id=sid2, text="go")
        assert (await ok(client, "wait_result", session_id=sid2, timeout_s=30))["status"] == "completed"
        board = await ok(client, "read_blackboard", session_id=sid2, prefix="results/")
        assert [e["key"] for e in board["entries"]] == ["results/t-check", "results/t-mul"]
        tree = await ok(client, "task_tree", session_id=sid2)
        assert [t["id"] for t in tree["tasks"]] == ["t-mul", "t-check"] and tree["counts"] == {"done": 3}
        assert tree["tasks"][1]["children"][0]["assignee"] == "worker_b.checker"
        rows = await ok(client, "query_lake", limit=500,
                        sql=f"select agent, tool from events where session_id = '{sid2}' and type = 'tool.call'")
        assert rows["row_count"] == 11 and {r["tool"] for r in rows["rows"]} >= {"task_create", "calculator"}
        sessions = await ok(client, "list_sessions")
        assert {s["session_id"] for s in sessions["sessions"]} == {sid, sid2}
        assert (await ok(client, "close_session", session_id=sid))["closed"] is True

        assert "unknown session 's-nope'" in await error(client, "session_status", session_id="s-nope")
        assert "start_session" in await error(client, "read_blackboard", session_id="s-nope")
        assert "this statement is DELETE" in await error(client, "query_lake", sql="delete from events")
        missing = await error(client, "query_lake", sql="select * from nothing")
        assert "Table with name nothing does not exist" in missing
        assert "team 'missing' not found" in await error(client, "run_team", team="missing", input="hi")
        (teams.parent / "outside.yaml").write_text((teams / "echo.yaml").read_text())
        assert "outside the team folders" in await error(client, "start_session", team="../outside.yaml")
        assert "unknown model profile 'gpt-9'" in await error(client, "run_team", team="echo", input="x", model="gpt-9")
        assert "has ended" in await error(client, "send_message", session_id=sid2, text="more")
    # The client closed stdin: the server closed the open session and exited, with nothing left behind.
    assert _gone(family) == []
    rows = query(lake, f"select count(*) n from events where session_id = '{sid2}' and type = 'session.finished'")
    assert rows.to_pylist() == [{"n": 1}]


async def test_http_sessions_outlive_a_connection_and_sigterm_closes_them(teams: Path, lake: Path,
                                                                          tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([*SERVER, "--http", str(port), "--local", *_args(teams, lake)], cwd=REPO,
                                env={**os.environ, **ENV}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                async with Client(url) as client:
                    tools = {t.name for t in (await client.list_tools()).tools}
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        assert tools == TOOLS
        async with Client(url) as client:
            run = await ok(client, "run_team", team="echo.yaml", input="hi there")
            assert (run["status"], run["reply"]) == ("completed", "echo: hi there")
            cancelled = await ok(client, "run_team", team="echo", input="sleep 30", timeout_s=0.5)
            assert cancelled["status"] == "cancelled"
            sid = (await ok(client, "start_session", team="echo"))["session_id"]
            await ok(client, "send_message", session_id=sid, text="sleep 30")
            waited = await ok(client, "wait_result", session_id=sid, timeout_s=0.2)
            assert (waited["done"], waited["status"]) == (False, "running")
            assert "send_message first" in await error(
                client, "wait_result", session_id=(await ok(client, "start_session", team="echo"))["session_id"])
        async with Client(url) as client:  # a new connection sees the server's sessions
            listed = await ok(client, "list_sessions")
            assert sid in {s["session_id"] for s in listed["sessions"]} and len(listed["sessions"]) == 2
            rows = await ok(client, "query_lake", sql=f"select type from events where session_id = '{sid}' "
                                                      "and type = 'session.started'")
            assert rows["rows"] == [{"type": "session.started"}]
            family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0, log.read_text()
        assert proc.stdout is not None and proc.stdout.read() == b""
        assert _gone(family) == []
        # SIGTERM cancelled the running session and wrote its events
        rows = query(lake, f"select status from events where session_id = '{sid}' and type = 'session.finished'")
        assert rows.to_pylist() == [{"status": "cancelled"}]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def test_a_cancelled_request_cancels_its_session(teams: Path, lake: Path) -> None:
    """In process (the SDK's in-memory transport): a client that gives up on run_team cancels the run."""
    service = TroupeService(ServiceOptions(local=True, lake=str(lake), teams_dirs=[str(teams)]))
    async with Client(build_server(service)) as client:
        with pytest.raises(MCPError, match="Timed out"):
            await client.call_tool("run_team", {"team": "echo", "input": "sleep 30"}, read_timeout_seconds=0.3)
        sql = "select status, payload->>'error' error from events where type = 'session.finished'"
        for _ in range(50):
            rows = (await ok(client, "query_lake", sql=sql))["rows"]
            if rows:
                break
            await asyncio.sleep(0.1)
        assert rows == [{"status": "cancelled", "error": "the run_team request failed or was cancelled"}]
    assert service.stopped.is_set()


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mcp", "serve", "--teams-dir", str(tmp_path / "nope")]) == 2
    out = capsys.readouterr()
    assert "--teams-dir" in out.err and "no such folder" in out.err and out.out == ""
    with pytest.raises(SystemExit) as exited:
        main(["mcp", "serve", "--local", "--address", "local"])
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


class _RawStdio:
    """JSON-RPC over the server's stdin/stdout by hand, to see every byte it writes to stdout."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.lines: list[bytes] = []
        self.next_id = 0

    def send(self, method: str, params: dict[str, Any] | None = None, *, notify: bool = False) -> int | None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})}
        if not notify:
            self.next_id += 1
            msg["id"] = self.next_id
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()
        return msg.get("id")

    def response(self, request_id: int | None) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            assert line, "the server closed stdout"
            self.lines.append(line)
            msg = json.loads(line)  # every line on stdout is protocol
            if msg.get("id") == request_id:
                return msg


@pytest.mark.ray
@pytest.mark.slow
def test_stdio_on_a_private_ray_keeps_stdout_clean_and_leaves_nothing_running(teams: Path, lake: Path,
                                                                              tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([*SERVER, "--address", "local", "--placement", "packed", *_args(teams, lake)],
                                cwd=REPO, env={**os.environ, **ENV}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err)
    rpc = _RawStdio(proc)
    try:
        init = rpc.response(rpc.send("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                                    "clientInfo": {"name": "test", "version": "1"}}))
        assert init["result"]["serverInfo"]["name"] == "troupe"
        rpc.send("notifications/initialized", notify=True)
        run = rpc.response(rpc.send("tools/call", {"name": "run_team",
                                                   "arguments": {"team": "research_team", "input": "go"}}))
        out = run["result"]["structuredContent"]
        assert out["status"] == "completed" and "7006652" in out["reply"], log.read_text()[-3000:]
        opened = rpc.response(rpc.send("tools/call", {"name": "start_session", "arguments": {"team": "research_team"}}))
        sid = opened["result"]["structuredContent"]["session_id"]
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        assert any("raylet" in " ".join(_cmdline(p)) for p in family)  # Ray runs under the server
        assert proc.stdin is not None
        proc.stdin.close()  # the client goes away
        assert proc.wait(60) == 0, log.read_text()[-3000:]
        assert proc.stdout is not None
        rest = proc.stdout.read()
        assert rest == b"", rest  # nothing but protocol, even from Ray
        assert _gone(family, 20) == []
        rows = query(lake, f"select count(*) n from events where session_id in ('{out['session_id']}', '{sid}') "
                           "and type = 'session.started'")
        assert rows.to_pylist() == [{"n": 1}]  # the run; the idle session never started but was closed cleanly
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
