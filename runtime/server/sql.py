"""``POST /api/v1/sql``: read-only SQL over the server's event lake, with the limits of ``troupe mcp
serve``'s lake query (:mod:`troupe.runtime.mcp_server.lake_query`: one SELECT-like statement, rows
capped, a time limit).

An admin's key queries the whole lake as the MCP tool does. Any other key sees only the rows of its
own sessions (those whose ``session.started`` names its user): the same checks and sandbox as the
MCP tool's (:mod:`troupe.runtime.mcp_server.lake_scope`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from troupe.runtime.mcp_server.lake_query import DEFAULT_LIMIT, MAX_LIMIT, LakeSqlError, query_lake
from troupe.runtime.mcp_server.lake_scope import check_query, check_scoped, owned_sessions, scoped_sandbox, user_sandbox
from troupe.runtime.server.auth import Principal, principal
from troupe.runtime.server.errors import ApiError
from troupe.runtime.server.sessions import State

router = APIRouter(tags=["sql"])
TIMEOUT_S = 30.0
"""A query running longer is interrupted (as ``troupe mcp serve``'s)."""


class SqlRequest(BaseModel):
    query: str
    """One read-only statement over the ``events`` view (``SELECT type, count(*) FROM events GROUP BY type``)."""
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    """Rows returned at most (``truncated`` says when there were more)."""


class SqlResult(BaseModel):
    columns: list[str]
    rows: list[dict[str, Any]]
    """One object per row, column name -> JSON value (long text cut, timestamps ISO 8601)."""
    truncated: bool


@router.post("/sql", response_model=SqlResult)
async def run_sql(body: SqlRequest, state: State, who: Annotated[Principal, Depends(principal)]) -> SqlResult:
    """Read-only SQL over the lake's ``events`` view (an admin's key: the whole lake; any other key: the
    rows of its own sessions)."""
    try:
        check_query(body.query, who)
        await state.troupe.backend.flush()  # live sessions' events so far
        columns, rows, truncated = await query_lake(state.lake, body.query, body.limit, timeout_s=TIMEOUT_S,
                                                    sandbox=scoped_sandbox(who))
    except LakeSqlError as e:
        raise ApiError(400, "the query was refused or failed", e.message) from None
    return SqlResult(columns=columns, rows=rows, truncated=truncated)


__all__ = ["SqlRequest", "SqlResult", "check_scoped", "owned_sessions", "router", "user_sandbox"]
