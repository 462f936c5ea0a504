"""Sessions of ``troupe mcp serve --http`` belong to the API key's user: over real HTTP with the SDK's MCP client,
bob (user) can neither read, wait for, cancel, drive, subscribe to nor query alice's session, and is told so; root
(admin) can; every refusal is an ``access.denied`` event; alice's session says ``session.started.user`` alice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, ResourceTemplateReference

from tests.server.conftest import serve_in_thread
from tests.support.mcp_serve_teams import write_teams
from troupe.runtime.access import DenialLog, KeyStore
from troupe.runtime.eventlog.lake import query
from troupe.runtime.mcp_server.core import ServiceOptions, TroupeService
from troupe.runtime.mcp_server.serve import HTTP_PATH, http_app

pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
OTHERS = "belongs to another user"


@dataclass
class McpKeyed:
    url: str
    lake: Path
    keys: dict[str, str]
    denials: DenialLog

    def as_(self, who: str) -> Client:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=30)
        return Client(streamable_http_client(self.url, http_client=http), mode="legacy")

    def denied(self) -> list[dict]:
        self.denials.flush()
        rows = query(self.lake, "select agent, payload from events where type = 'access.denied' order by ts").to_pylist()
        return [r | {"payload": json.loads(r["payload"])} for r in rows]


@pytest.fixture
def mcp_keyed(tmp_path: Path, lake: Path) -> Iterator[McpKeyed]:
    store = KeyStore(tmp_path / "home" / "keys.json")
    keys = {name: store.create(name, role)[0] for name, role in [("alice", "user"), ("bob", "user"), ("root", "admin")]}
    service = TroupeService(ServiceOptions(local=True, lake=str(lake), teams_dirs=[str(write_teams(tmp_path / "t"))]))
    app, denials = http_app(service, host="127.0.0.1", keys_path=store.path)
    uv, thread, url = serve_in_thread(app)
    yield McpKeyed(url + HTTP_PATH, lake, keys, denials)
    uv.should_exit = True
    thread.join(30)
    denials.close()


async def _refused(client: Client, tool: str, args: dict) -> str:
    out = await client.call_tool(tool, args)
    assert out.is_error, (tool, out)
    return out.content[0].text


async def test_a_users_session_is_theirs_alone_and_an_admin_sees_all(mcp_keyed: McpKeyed) -> None:
    template = ResourceTemplateReference(type="ref/resource", uri="troupe://sessions/{session_id}/blackboard")
    async with mcp_keyed.as_("alice") as alice:
        opened = (await alice.call_tool("start_session", {"team": "echo.yaml"})).structured_content
        sid = opened["session_id"]
        assert opened["user"] == "alice"
        await alice.call_tool("send_message", {"session_id": sid, "text": "hi"})

        async with mcp_keyed.as_("bob") as bob:
            for tool, args in [("session_status", {}), ("wait_result", {"timeout_s": 0}), ("close_session", {}),
                               ("send_message", {"text": "mine now"}), ("read_blackboard", {}), ("task_tree", {})]:
                text = await _refused(bob, tool, {"session_id": sid, **args})
                assert f"session {sid} {OTHERS}" in text and "list_sessions shows yours" in text, text
            unknown = await _refused(bob, "session_status", {"session_id": "s-nope"})
            assert "unknown session 's-nope'" in unknown and sid not in unknown  # alice's id is not listed to bob
            assert (await bob.call_tool("list_sessions", {})).structured_content["sessions"] == []
            assert json.loads((await bob.read_resource("troupe://sessions")).contents[0].text)["sessions"] == []
            assert (await bob.complete(template, {"name": "session_id", "value": ""})).completion.values == []
            for uri in (f"troupe://sessions/{sid}/blackboard", f"troupe://sessions/{sid}/tasks"):
                for attempt in (bob.read_resource, bob.subscribe_resource):
                    with pytest.raises(MCPError) as refused:
                        await attempt(uri)
                    assert refused.value.error.code == INVALID_PARAMS and OTHERS in refused.value.error.message
                    assert refused.value.error.data == {"error": "other_user_session", "status": 403,
                                                        "session": sid, "uri": uri}

        done = (await alice.call_tool("wait_result", {"session_id": sid, "timeout_s": 30})).structured_content
        assert done["status"] == "completed" and done["reply"] == "echo: hi"

    async with mcp_keyed.as_("root") as root:
        listed = (await root.call_tool("list_sessions", {})).structured_content["sessions"]
        assert [(s["session_id"], s["user"]) for s in listed] == [(sid, "alice")]
        assert not (await root.call_tool("read_blackboard", {"session_id": sid})).is_error
        await root.read_resource(f"troupe://sessions/{sid}/tasks")
        closed = await root.call_tool("close_session", {"session_id": sid})  # an admin may cancel anyone's
        assert not closed.is_error and closed.structured_content["closed"]

    async with mcp_keyed.as_("bob") as bob:
        ran = (await bob.call_tool("run_team", {"team": "echo", "input": "yo"})).structured_content
        sql = ("select session_id, json_extract_string(payload, '$.user') as user from events "
               "where type = 'session.started' order by session_id")
        mine = (await bob.call_tool("query_lake", {"sql": sql})).structured_content["rows"]
        assert mine == [{"session_id": ran["session_id"], "user": "bob"}]  # alice's session has no row for bob
        escape = await _refused(bob, "query_lake", {"sql": f"select * from read_parquet('{mcp_keyed.lake}/**/*.parquet')"})
        assert "table functions are not allowed with a user's key" in escape
    async with mcp_keyed.as_("root") as root:
        every = (await root.call_tool("query_lake", {"sql": sql})).structured_content["rows"]
        assert sorted((r["session_id"], r["user"]) for r in every) == sorted([(sid, "alice"), (ran["session_id"], "bob")])

    denied = [d for d in mcp_keyed.denied() if d["payload"]["error"] == "other_user_session"]
    assert {d["agent"] for d in denied} == {"mcp"}
    assert {(d["payload"]["user"], d["payload"]["session"], d["payload"]["status_code"]) for d in denied} == \
        {("bob", sid, 403)}
    seen = {(d["payload"]["method"], d["payload"]["path"]) for d in denied}
    assert ("tools/call", "close_session") in seen and ("tools/call", "wait_result") in seen
    assert ("resources/subscribe", f"troupe://sessions/{sid}/blackboard") in seen
    assert ("resources/read", f"troupe://sessions/{sid}/tasks") in seen
    assert len(denied) == 10  # 6 tools, 2 reads, 2 subscriptions


async def test_an_mcp_connection_answers_only_the_user_who_opened_it(mcp_keyed: McpKeyed) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with httpx2.AsyncClient(timeout=30) as http:
        opened = await http.post(mcp_keyed.url, json=init, headers={**accept, "Authorization": f"Bearer {mcp_keyed.keys['alice']}"})
        assert opened.status_code == 200
        connection = opened.headers["mcp-session-id"]
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        for who, status in (("bob", 404), ("alice", 200)):
            r = await http.post(mcp_keyed.url, json=ping, headers={**accept, "Mcp-Session-Id": connection,
                                                                    "MCP-Protocol-Version": "2025-11-25",
                                                                    "Authorization": f"Bearer {mcp_keyed.keys[who]}"})
            assert r.status_code == status, (who, r.text)


async def test_without_keys_sessions_belong_to_the_local_user(tmp_path: Path, lake: Path) -> None:
    service = TroupeService(ServiceOptions(local=True, lake=str(lake), teams_dirs=[str(write_teams(tmp_path / "t"))]))
    app, denials = http_app(service, host="127.0.0.1", keys_path=tmp_path / "home" / "keys.json")  # no key in it
    uv, thread, url = serve_in_thread(app)
    try:
        async with Client(streamable_http_client(url + HTTP_PATH), mode="legacy") as client:
            ran = (await client.call_tool("run_team", {"team": "echo", "input": "hi"})).structured_content
    finally:
        uv.should_exit = True
        thread.join(30)
        denials.close()
    rows = query(lake, "select json_extract_string(payload, '$.user') as user from events "
                       f"where type = 'session.started' and session_id = '{ran['session_id']}'").to_pylist()
    assert rows == [{"user": "local"}]
