"""Read-only SQL over the event lake for MCP clients.

Three layers keep a query from doing more than reading the lake:

* exactly one statement, and DuckDB's parser must call it a ``SELECT`` (which covers ``WITH``,
  ``FROM events``, ``VALUES``, ``DESCRIBE``, ``SHOW`` and ``SUMMARIZE``) or an ``EXPLAIN``;
* the connection is in memory, may read files only under the lake folder
  (``enable_external_access=false`` with ``allowed_directories``; a lake off this machine is read
  through a registered dataset, with no file access at all), loads no extensions, and its
  configuration is locked, so ``read_csv('/etc/passwd')`` or a ``SET`` inside a query fails;
* rows are capped and a query running longer than the time limit is interrupted.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from troupe.runtime.errors import ConfigError
from troupe.runtime.eventlog.lake import connect

ALLOWED = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_CELL_CHARS = 20_000
"""Longer text cells (event payloads can be large) are cut, with a note of the full length."""
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class LakeSqlError(ConfigError):
    """The SQL was refused or failed; the message says why and what to write instead."""


def check_read_only(sql: str) -> None:
    """Refuse anything but one SELECT-like statement (parsed by DuckDB, not matched by text)."""
    con = duckdb.connect()
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise LakeSqlError(f"the SQL does not parse: {e}") from None
    finally:
        con.close()
    if len(statements) != 1:
        raise LakeSqlError(f"send exactly one statement (got {len(statements)}); e.g. "
                           "SELECT type, count(*) FROM events GROUP BY type")
    kind = statements[0].type
    if kind not in ALLOWED:
        raise LakeSqlError(f"only read-only queries are allowed (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, "
                           f"EXPLAIN); this statement is {kind.name}. The lake's table is the `events` view: "
                           "SELECT * FROM events WHERE session_id = '...' ORDER BY ts")


def _is_uri(lake: str | Path) -> bool:
    return isinstance(lake, str) and bool(_URI.match(lake))


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sandboxed(lake: str | Path) -> duckdb.DuckDBPyConnection:
    """A connection with the ``events`` view that can read nothing but the lake: a local lake's
    folder is the only one allowed; a lake elsewhere (``s3://...``) is scanned through a dataset
    registered by :func:`troupe.runtime.eventlog.lake.connect`, which needs no file access from DuckDB at all."""
    con = connect(lake)
    settings = []
    if not _is_uri(lake):
        given = Path(lake).expanduser()
        folders = sorted({os.path.abspath(given), str(given.resolve())})
        settings.append(f"SET allowed_directories = [{', '.join(_sql_str(f) for f in folders)}]")
    settings += [
        "SET enable_external_access = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET lock_configuration = true",
    ]
    try:
        for setting in settings:
            con.sql(setting)
    except BaseException:
        con.close()
        raise
    return con


def _json_cell(value: Any) -> Any:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (timedelta, Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str) and len(value) > MAX_CELL_CHARS:
        return value[:MAX_CELL_CHARS] + f"… ({len(value)} characters in all)"
    if isinstance(value, dict):
        return {str(k): _json_cell(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_cell(v) for v in value]
    return value


def run_query(lake: str | Path, sql: str, limit: int = DEFAULT_LIMIT, *,
              on_connect: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
              sandbox: Callable[[str | Path], duckdb.DuckDBPyConnection] | None = None,
              ) -> tuple[list[str], list[dict[str, Any]], bool]:
    """Run a checked query; returns (columns, rows as JSON-ready dicts, whether rows were cut at ``limit``).

    Blocking: :func:`query_lake` runs it in a thread. ``on_connect`` receives the connection (so
    another thread can ``interrupt()`` it). ``sandbox`` opens the connection instead of the
    lake-folder sandbox here (``troupe serve`` gives a user's key one that sees their rows only).
    """
    check_read_only(sql)
    limit = max(1, min(int(limit), MAX_LIMIT))
    con = (sandbox or _sandboxed)(lake)
    if on_connect is not None:
        on_connect(con)
    try:
        rel = con.sql(sql)
        if rel is None:
            return [], [], False
        table = rel.limit(limit + 1).to_arrow_table()
    except duckdb.InterruptException:
        raise LakeSqlError("the query was stopped at the time limit; filter (session_id, run_id, date) or "
                           "aggregate before selecting rows") from None
    except duckdb.Error as e:
        raise LakeSqlError(f"the query failed: {e}") from None
    finally:
        con.close()
    truncated = table.num_rows > limit
    rows = table.slice(0, limit).to_pylist()
    return table.column_names, [{k: _json_cell(v) for k, v in r.items()} for r in rows], truncated


async def query_lake(lake: str | Path, sql: str, limit: int = DEFAULT_LIMIT, *, timeout_s: float = 30.0,
                     sandbox: Callable[[str | Path], duckdb.DuckDBPyConnection] | None = None,
                     ) -> tuple[list[str], list[dict[str, Any]], bool]:
    """:func:`run_query` in a worker thread, interrupted after ``timeout_s``."""
    check_read_only(sql)  # fail fast, before a thread
    holder: list[duckdb.DuckDBPyConnection] = []
    lock = threading.Lock()
    finished = False

    def stop() -> None:
        with lock:
            if holder and not finished:
                holder[0].interrupt()

    def work() -> tuple[list[str], list[dict[str, Any]], bool]:
        nonlocal finished
        try:
            return run_query(lake, sql, limit, on_connect=holder.append, sandbox=sandbox)
        finally:
            with lock:
                finished = True

    timer = threading.Timer(timeout_s, stop)
    timer.daemon = True
    timer.start()
    try:
        return await asyncio.to_thread(work)
    finally:
        timer.cancel()


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "LakeSqlError", "check_read_only", "query_lake", "run_query"]
