"""Records of many sessions at once: every session of a run read from the lake in one query, and the
verdict on a replay of one of them (what a replayed or forked sweep uses: evals/sweep_fork.py)."""

from __future__ import annotations

import json
from pathlib import Path

from troupe.runtime.eventlog.lake import query
from troupe.runtime.replay.compare import Divergence, first_divergence
from troupe.runtime.replay.record import COLUMNS, Row, SessionRecord, record_from_rows


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_run_rows(lake: str | Path, run_id: str) -> dict[str, list[Row]]:
    """Every session of ``run_id``: its events in the order they happened, by session id."""
    table = query(lake, f"select session_id, {COLUMNS} from events where run_id = {_sql_str(run_id)} "
                        "order by session_id, ts, seq")
    out: dict[str, list[Row]] = {}
    for r in table.to_pylist():
        session = r.pop("session_id")
        payload = r.pop("payload") or "{}"
        out.setdefault(session, []).append(Row(**{k: v for k, v in r.items() if v is not None}, data=json.loads(payload)))
    return out


def load_run_records(lake: str | Path, run_id: str) -> dict[str, SessionRecord]:
    """The record of every session of ``run_id`` (none: an empty mapping), by session id."""
    return {sid: record_from_rows(sid, rows) for sid, rows in read_run_rows(lake, run_id).items() if sid}


def verdict(record: SessionRecord, replayed: list[Row], status: str, reply: str | None) -> tuple[bool, Divergence | None]:
    """Whether a replay of ``record`` (its events ``replayed``, how it ended) took the recorded path:
    (identical, the first divergence)."""
    divergence = first_divergence(record.rows, replayed)
    return divergence is None and reply == record.reply and status == (record.status or ""), divergence


__all__ = ["load_run_records", "read_run_rows", "verdict"]
