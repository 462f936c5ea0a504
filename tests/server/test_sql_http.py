"""``POST /api/v1/sql`` over real HTTP with keys: a user sees only the rows of their own sessions, and
cannot reach the lake's files past the ``events`` view; an admin queries the whole lake."""

from __future__ import annotations

import duckdb
import pytest

from tests.access.conftest import Keyed, keyed  # noqa: F401  (the server with keys)
from troupe.runtime.mcp_server.lake_query import LakeSqlError
from troupe.runtime.server.sql import check_scoped, user_sandbox


def _finished_session(client: object, team: str = "echo") -> str:
    sid = client.post("/sessions", json={"team": team, "input": "hi"}).json()["id"]  # type: ignore[attr-defined]
    assert client.get(f"/sessions/{sid}/result", params={"wait_s": 20}).json()["status"] == "completed"  # type: ignore[attr-defined]
    return str(sid)


def test_a_user_sees_only_their_sessions_rows_and_an_admin_all(keyed: Keyed) -> None:
    with keyed.as_("alice") as alice, keyed.as_("bob") as bob, keyed.as_("root") as root, keyed.as_("vic") as vic:
        mine, theirs = _finished_session(alice), _finished_session(bob)
        r = alice.post("/sql", json={"query": "SELECT DISTINCT session_id FROM events"})
        assert r.status_code == 200, r.text
        assert r.json() == {"columns": ["session_id"], "rows": [{"session_id": mine}], "truncated": False}
        r = alice.post("/sql", json={"query": "WITH e AS (SELECT * FROM events) SELECT type, count(*) AS n FROM e "
                                              "GROUP BY type ORDER BY type", "limit": 2})
        assert r.status_code == 200 and r.json()["truncated"] is True and len(r.json()["rows"]) == 2
        r = vic.post("/sql", json={"query": "SELECT count(*) AS n FROM events"})
        assert r.json().get("rows") == [{"n": 0}], r.text
        everyone = root.post("/sql", json={"query": "SELECT DISTINCT session_id FROM events "
                                                    "WHERE session_id LIKE 's-%' ORDER BY 1"}).json()
        assert {row["session_id"] for row in everyone["rows"]} == {mine, theirs}
        files = f"{keyed.lake}/events/**/*.parquet"
        admin_files = root.post("/sql", json={"query": f"SELECT count(DISTINCT session_id) AS n FROM read_parquet('{files}') "
                                                       "WHERE session_id LIKE 's-%'"})
        assert admin_files.status_code == 200 and admin_files.json()["rows"] == [{"n": 2}]  # as troupe mcp serve
        for query, why in [
            (f"SELECT * FROM read_parquet('{files}')", "table functions are not allowed"),
            (f"SELECT * FROM events WHERE session_id IN (SELECT session_id FROM '{files}')", "cannot be queried"),
            ("SELECT * FROM glob('/etc/*')", "table functions"),
            ("SELECT * FROM information_schema.tables", "cannot be queried"),
            ("SELECT * FROM _troupe_user_events", "cannot be queried"),
            ("EXPLAIN SELECT * FROM events", "only SELECT statements"),
            ("DELETE FROM events", "only read-only queries"),
            ("SELECT 1; SELECT 2", "exactly one statement"),
        ]:
            r = bob.post("/sql", json={"query": query})
            assert r.status_code == 400, (query, r.text)
            assert r.json()["error"] == "the query was refused or failed" and why in r.json()["reason"], (query, r.json())
    with keyed.as_(None) as anon:
        assert anon.post("/sql", json={"query": "SELECT 1"}).status_code == 401


def test_the_users_connection_reads_no_file_even_past_the_parser_check(keyed: Keyed) -> None:
    with keyed.as_("alice") as alice:
        mine = _finished_session(alice)
        assert alice.post("/sql", json={"query": "SELECT 1 AS one"}).status_code == 200  # the server flushed its events
    con = user_sandbox(keyed.lake, user="alice")
    try:
        assert con.sql("SELECT DISTINCT session_id FROM events").fetchall() == [(mine,)]
        with pytest.raises(duckdb.PermissionException):
            con.sql(f"SELECT * FROM read_parquet('{keyed.lake}/events/**/*.parquet')").fetchall()
        with pytest.raises(duckdb.Error):
            con.sql("SET enable_external_access = true")
    finally:
        con.close()
    nobody = user_sandbox(keyed.lake, user="nobody")
    try:
        assert nobody.sql("SELECT count(*) FROM events").fetchall() == [(0,)]
    finally:
        nobody.close()


def test_the_parser_check_allows_ctes_and_subqueries_over_events() -> None:
    check_scoped("WITH a AS (SELECT * FROM events), b AS (SELECT * FROM a) SELECT * FROM b JOIN events USING (event_id)")
    check_scoped("DESCRIBE events")
    with pytest.raises(LakeSqlError, match="duckdb_settings"):
        check_scoped("SELECT (SELECT count(*) FROM duckdb_settings()) AS n FROM events")
    with pytest.raises(LakeSqlError, match="cannot be queried"):
        check_scoped("SELECT * FROM main.events")
