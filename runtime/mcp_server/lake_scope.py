"""Lake SQL for a key that is not an admin's: only the rows of the key's user's own sessions.

Both SQL interfaces that take API keys use it (``POST /api/v1/sql`` of ``troupe serve`` and the ``query_lake``
tool of ``troupe mcp serve --http``). An admin queries the whole lake (:mod:`.lake_query`'s sandbox); any other
key sees only its own sessions' rows (those whose ``session.started`` names its user), enforced twice:

* the query is parsed by DuckDB (``json_serialize_sql``) and may name no table but ``events`` and
  its own CTEs: table functions (``read_parquet``, ``glob``, ``query_table``, ``duckdb_settings``...),
  file names in ``FROM``, other schemas and ``EXPLAIN``/``PIVOT`` (not serializable) are refused;
* it runs on a connection that can read no file at all: ``events`` is a view over a pyarrow dataset
  of the lake filtered to the user's session ids (scanned lazily by DuckDB through Arrow),
  ``enable_external_access`` off, no extensions, no Python replacement scans, configuration locked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from troupe.runtime.access import Principal
from troupe.runtime.eventlog.lake import connect, events_dataset
from troupe.runtime.events import ARROW_SCHEMA
from troupe.runtime.mcp_server.lake_query import LakeSqlError, check_read_only

USER_TABLES = frozenset({"events"})
_DATA = "_troupe_user_events"

Sandbox = Callable[[str | Path], duckdb.DuckDBPyConnection]


def _refs(node: Any, tables: list[tuple[str, str, str]], functions: list[str], ctes: set[str]) -> None:
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "BASE_TABLE":
            tables.append((str(node.get("catalog_name") or ""), str(node.get("schema_name") or ""),
                           str(node.get("table_name") or "")))
        elif kind == "TABLE_FUNCTION":
            functions.append(str((node.get("function") or {}).get("function_name") or "?"))
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            ctes.update(str(c.get("key", "")).lower() for c in cte_map.get("map", []) if isinstance(c, dict))
        for value in node.values():
            _refs(value, tables, functions, ctes)
    elif isinstance(node, list):
        for value in node:
            _refs(value, tables, functions, ctes)


def check_scoped(sql: str) -> None:
    """Refuse what a user's key may not run: anything but SELECTs over ``events`` (and the query's CTEs)."""
    con = duckdb.connect()
    try:
        raw = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
    finally:
        con.close()
    tree = json.loads(raw[0]) if raw else {"error": True}
    if tree.get("error"):
        raise LakeSqlError("with a user's key only SELECT statements over the events view are allowed "
                           f"({tree.get('error_message') or 'not a SELECT'}); e.g. SELECT type, count(*) FROM events "
                           "GROUP BY type")
    tables: list[tuple[str, str, str]] = []
    functions: list[str] = []
    ctes: set[str] = set()
    _refs(tree.get("statements"), tables, functions, ctes)
    if functions:
        raise LakeSqlError(f"table functions are not allowed with a user's key ({', '.join(sorted(set(functions)))}): "
                           "query the events view, which holds the rows of your sessions")
    allowed = USER_TABLES | ctes
    for catalog, schema, name in tables:
        if catalog or schema or name.lower() not in allowed:
            shown = ".".join(p for p in (catalog, schema, name) if p)
            raise LakeSqlError(f"{shown!r} cannot be queried with a user's key: the only table is the events view "
                               "(the rows of your sessions)")


def owned_sessions(lake: str | Path, user: str) -> list[str]:
    """Ids of the sessions whose ``session.started`` names ``user``."""
    con = connect(lake)
    try:
        rows = con.execute("SELECT DISTINCT session_id FROM events WHERE type = 'session.started' "
                           "AND json_extract_string(payload, '$.user') = ?", [user]).fetchall()
    finally:
        con.close()
    return [str(r[0]) for r in rows]


def user_sandbox(lake: str | Path, *, user: str) -> duckdb.DuckDBPyConnection:
    """A connection whose ``events`` view holds ``user``'s sessions' rows and that can read no file."""
    data = events_dataset(lake)
    ids = owned_sessions(lake, user) if data is not None else []
    source: Any = data.filter(ds.field("session_id").isin(pa.array(ids, pa.string()))) if data is not None else \
        pa.schema(list(ARROW_SCHEMA)).empty_table()
    con = duckdb.connect()
    try:
        con.sql("SET TimeZone = 'UTC'")
        con.register(_DATA, source)
        con.sql(f"CREATE VIEW events AS SELECT * FROM {_DATA}")
        for setting in ("SET enable_external_access = false", "SET autoinstall_known_extensions = false",
                        "SET autoload_known_extensions = false", "SET python_enable_replacements = false",
                        "SET lock_configuration = true"):
            con.sql(setting)
    except BaseException:
        con.close()
        raise
    return con


def scoped_sandbox(who: Principal) -> Sandbox | None:
    """``None`` (the whole lake, :mod:`.lake_query`'s sandbox) for an admin; else the user's own rows."""
    return None if who.role == "admin" else partial(user_sandbox, user=who.user)


def check_query(sql: str, who: Principal) -> None:
    """Refuse ``sql`` unless ``who`` may run it: read-only for everyone, and over ``events`` only for a non-admin."""
    check_read_only(sql)
    if who.role != "admin":
        check_scoped(sql)


__all__ = ["Sandbox", "check_query", "check_scoped", "owned_sessions", "scoped_sandbox", "user_sandbox"]
