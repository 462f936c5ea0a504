"""What happened in a session, as DuckDB queries over the lake (the CLI prints these)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from troupe.runtime.eventlog.lake import query
from troupe.runtime.ids import SessionId

PER_AGENT = """
select agent,
       count(*) filter (where type = 'llm.response')            as llm_calls,
       coalesce(sum(tokens_in), 0)::BIGINT                       as tokens_in,
       coalesce(sum(tokens_out), 0)::BIGINT                      as tokens_out,
       count(*) filter (where type = 'tool.call')                as tool_calls,
       round(coalesce(sum(duration_ms) filter (where type = 'llm.response'), 0) / 1000, 2) as llm_s
from events
where session_id = '{session_id}' and agent not in ('session')
group by agent
having count(*) filter (where type in ('llm.response', 'tool.call')) > 0
order by agent
"""


def per_agent(lake: str | Path, session_id: str) -> pa.Table:
    """LLM calls, tokens, tool calls and LLM seconds per agent of one session."""
    return query(lake, PER_AGENT.format(session_id=SessionId(session_id)))


__all__ = ["PER_AGENT", "per_agent"]
