"""The MCP server's core without MCP: team folders, session bookkeeping, read-only lake SQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.mcp_serve_teams import write_teams
from troupe.runtime.api import Troupe
from troupe.runtime.errors import ConfigError
from troupe.runtime.eventlog.lake import query
from troupe.runtime.mcp_server.core import ServiceError, ServiceOptions, TroupeService
from troupe.runtime.mcp_server.lake_query import LakeSqlError, check_read_only, run_query
from troupe.runtime.mcp_server.teams import TeamNotAllowedError, TeamResolver


@pytest.fixture
def teams(tmp_path: Path) -> Path:
    return write_teams(tmp_path / "teams")


@pytest.fixture
async def service(teams: Path, lake: Path) -> AsyncIterator[TroupeService]:
    svc = TroupeService(ServiceOptions(local=True, lake=str(lake), teams_dirs=[str(teams)], max_sessions=3))
    await svc.start()
    try:
        yield svc
    finally:
        await svc.shutdown()


# --- teams ------------------------------------------------------------------------------------
def test_teams_by_path_folder_or_name_and_only_inside_the_team_folders(teams: Path, tmp_path: Path) -> None:
    resolver = TeamResolver([teams])
    assert resolver.path_of("research_team") == teams / "research_team" / "team.yaml"  # folder (and name)
    assert resolver.path_of("echo.yaml") == teams / "echo.yaml"
    assert resolver.path_of("echo") == teams / "echo.yaml"  # by the team's name
    assert resolver.path_of(str(teams / "echo.yaml")) == teams / "echo.yaml"  # absolute, inside
    outside = tmp_path / "outside.yaml"
    outside.write_text((teams / "echo.yaml").read_text())
    for given in ("../outside.yaml", str(outside)):
        with pytest.raises(TeamNotAllowedError, match="outside the team folders.*--teams-dir"):
            resolver.path_of(given)
    (teams / "link.yaml").symlink_to(outside)
    with pytest.raises(TeamNotAllowedError, match="outside the team folders"):
        resolver.path_of("link.yaml")
    with pytest.raises(TeamNotAllowedError, match="inline team YAML is not accepted"):
        resolver.path_of("name: x\nentry: a\n")
    with pytest.raises(TeamNotAllowedError, match="team 'nope' not found: pass a team YAML file.*list_teams"):
        resolver.path_of("nope")


def test_list_teams_shows_agents_models_and_load_errors(service: TroupeService) -> None:
    listed = {t.path: t for t in service.list_teams().teams}
    assert set(listed) == {"research_team", "echo.yaml", "broken"}  # notes.yaml is no team
    assert listed["echo.yaml"].name == "echo" and listed["echo.yaml"].agents == ["echo", "helper"]
    assert listed["echo.yaml"].models == ["fn", "other"] and listed["echo.yaml"].entry == "echo"
    assert listed["broken"].name is None and "at least one agent" in (listed["broken"].error or "")


# --- one-shot runs ----------------------------------------------------------------------------
async def test_run_team_returns_the_reply_and_usage_and_closes_the_session(service: TroupeService, lake: Path) -> None:
    out = await service.run_team("research_team", "go")
    assert out.status == "completed" and out.team == "research_team"
    assert "7006652" in (out.reply or "") and out.usage.tool_calls == 11 and out.usage.llm_calls == 12
    assert service.list_sessions().sessions == []
    rows = query(lake, f"select count(*) n from events where session_id = '{out.session_id}'").to_pylist()
    assert rows[0]["n"] > 50  # closed: every event is in the lake

    other = await service.run_team("echo.yaml", "hi", model="other")
    assert other.reply == "scripted hello"


async def test_run_team_timeout_cancels_the_session(service: TroupeService) -> None:
    out = await service.run_team("echo", "sleep 30", timeout_s=0.3)
    assert out.status == "cancelled" and "no result within 0.3s" in (out.error or "")


async def test_run_team_errors_name_the_fix(service: TroupeService) -> None:
    with pytest.raises(TeamNotAllowedError, match="not found"):
        await service.run_team("missing", "hi")
    with pytest.raises(ConfigError, match="(?s)invalid team file .*broken.*at least one agent"):
        await service.run_team("broken", "hi")
    with pytest.raises(ConfigError, match="unknown model profile 'gpt-9'; this team defines"):
        await service.run_team("echo", "hi", model="gpt-9")
    with pytest.raises(ServiceError, match="input is empty"):
        await service.run_team("echo", "  ")


# --- sessions kept open -----------------------------------------------------------------------
async def test_session_lifecycle_with_blackboard_and_task_tree(service: TroupeService, lake: Path) -> None:
    info = await service.start_session("research_team")
    sid = info.session_id
    assert (info.status, info.done, info.entry) == ("idle", False, "lead")
    assert info.agents == ["lead", "worker_a", "worker_b"]
    with pytest.raises(ServiceError, match="no message yet.*send_message first"):
        await service.wait_result(sid, 1)
    sent = await service.send_message(sid, "go")
    assert sent.messages_sent == 1 and not sent.done
    done = await service.wait_result(sid, 30)
    assert done.done and done.status == "completed" and "7006652" in (done.reply or "")
    assert (await service.session_status(sid)).status == "completed"

    board = await service.read_blackboard(sid, "results/")
    assert {e.key: e.value for e in board.entries} == {"results/t-check": {"quotient": 1234, "confirmed": True},
                                                      "results/t-mul": {"product": 7006652, "power": 1024}}
    assert (await service.read_blackboard(sid, "nothing/")).entries == []
    tree = await service.task_tree(sid)
    assert [t.id for t in tree.tasks] == ["t-mul", "t-check"] and tree.counts == {"done": 3}
    [sub] = tree.tasks[1].children
    assert sub.assignee == "worker_b.checker" and sub.output == "confirmed: 7006652"

    # the lake sees an open session's events (flushed before the query)
    rows = await service.query_lake(f"select type from events where session_id = '{sid}' and type = 'tool.call'")
    assert rows.row_count == 11 and rows.columns == ["type"] and not rows.truncated
    with pytest.raises(ServiceError, match="has ended \\(completed\\).*start a new one"):
        await service.send_message(sid, "more")

    assert [s.session_id for s in service.list_sessions().sessions] == [sid]
    closed = await service.close_session(sid)
    assert closed.closed and closed.status == "completed" and service.list_sessions().sessions == []
    with pytest.raises(ServiceError, match=f"unknown session '{sid}' \\(no session is open\\).*start_session"):
        await service.session_status(sid)


async def test_wait_timeout_send_to_another_agent_and_close_cancels(service: TroupeService) -> None:
    sid = (await service.start_session("echo")).session_id
    with pytest.raises(ConfigError, match="unknown agent 'ghost'.*echo.*helper"):
        await service.send_message(sid, "hi", to="ghost")
    await service.send_message(sid, "sleep 30")
    waited = await service.wait_result(sid, 0.2)
    assert (waited.done, waited.status) == (False, "running")
    await service.send_message(sid, "hello helper", to="helper")  # a running session takes more messages
    closed = await service.close_session(sid)
    assert closed.status == "cancelled" and closed.error == "closed by the MCP client"


async def test_max_sessions_and_shutdown_closes_open_sessions(service: TroupeService, lake: Path) -> None:
    ids = [(await service.start_session("echo")).session_id for _ in range(3)]
    with pytest.raises(ServiceError, match="3 sessions are open already.*close_session"):
        await service.start_session("echo")
    await service.send_message(ids[0], "hi")
    await service.wait_result(ids[0], 10)
    await service.shutdown()
    assert service.stopped.is_set() and service.list_sessions().sessions == []
    rows = query(lake, f"select count(*) n from events where session_id = '{ids[0]}' and type = 'session.finished'")
    assert rows.to_pylist() == [{"n": 1}]


async def test_a_service_on_a_given_runtime_leaves_it_running(lake: Path, teams: Path) -> None:
    troupe = Troupe.local(lake=lake)
    svc = TroupeService(ServiceOptions(teams_dirs=[str(teams)]), troupe=troupe)
    await svc.start()
    assert (await svc.run_team("echo", "hi")).reply == "echo: hi"
    await svc.shutdown()
    assert (await troupe.run(teams / "echo.yaml", "again")).reply == "echo: again"
    await troupe.shutdown()


# --- lake SQL ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sql", [
    "select 1", "with x as (select 1 a) select * from x", "from events", "describe events", "show tables",
    "summarize events", "explain select 1", "values (1)",
])
def test_read_only_statements_pass(sql: str) -> None:
    check_read_only(sql)


@pytest.mark.parametrize(("sql", "message"), [
    ("delete from events", "this statement is DELETE"),
    ("create table t (a int)", "this statement is CREATE"),
    ("copy (select 1) to '/tmp/x.csv'", "this statement is COPY"),
    ("attach 'x.db'", "this statement is ATTACH"),
    ("set enable_external_access = true", "this statement is SET"),
    ("install httpfs", "this statement is LOAD"),
    ("pragma version", "this statement is PRAGMA"),
    ("select 1; drop view events", "exactly one statement \\(got 2\\)"),
    ("selec 1", "does not parse"),
])
def test_other_statements_are_refused(sql: str, message: str) -> None:
    with pytest.raises(LakeSqlError, match=message):
        check_read_only(sql)


def test_queries_cannot_read_files_outside_the_lake_and_rows_are_capped(tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with pytest.raises(LakeSqlError, match="file system operations are disabled"):
        run_query(tmp_path / "lake", f"select * from read_csv('{secret}')")
    columns, rows, truncated = run_query(tmp_path / "lake", "select range r from range(10)", limit=3)
    assert (columns, rows, truncated) == (["r"], [{"r": 0}, {"r": 1}, {"r": 2}], True)
    assert run_query(tmp_path / "lake", "select count(*) n from events")[1] == [{"n": 0}]  # empty lake


async def test_a_lake_reached_through_a_symlink_is_readable(teams: Path, tmp_path: Path) -> None:
    real = tmp_path / "real-lake"
    troupe = Troupe.local(lake=real)
    sid = (await troupe.run(teams / "echo.yaml", "hi")).session_id
    await troupe.shutdown()
    (tmp_path / "link").symlink_to(real)
    _, rows, _ = run_query(tmp_path / "link", f"select count(*) n from events where session_id = '{sid}'")
    assert rows[0]["n"] > 3


async def test_slow_query_is_interrupted(service: TroupeService) -> None:
    service.options.query_timeout_s = 0.3
    with pytest.raises(LakeSqlError, match="stopped at the time limit"):
        await service.query_lake("select count(*) from range(1000000000) a, range(1000000000) b")
    with pytest.raises(LakeSqlError, match="Table with name nothing does not exist"):
        await service.query_lake("select * from nothing")
    await asyncio.sleep(0)
