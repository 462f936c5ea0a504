"""The SQL grader: checks over the sample's own events in the lake (DuckDB)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from troupe.evals.grade_common import EPS, binary_grade, short
from troupe.evals.models import Grade, GradeInput, SqlCheck


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _run_sql_check(lake: str, session_id: str, check: SqlCheck) -> tuple[float | None, str]:
    """``(score, note)``; score ``None`` means the check itself is broken."""
    import duckdb

    from troupe.runtime.eventlog.lake import connect

    con = connect(lake)
    try:
        con.sql("ALTER VIEW events RENAME TO lake_events")
        con.sql(f"CREATE VIEW events AS SELECT * FROM lake_events WHERE session_id = {_sql_literal(session_id)}")
        try:
            rel = con.sql(check.query)
            rows = rel.limit(2).fetchall() if rel is not None else None
        except duckdb.Error as e:
            return None, f"query failed: {e}"
    finally:
        con.close()
    if rows is None:
        return None, "the statement returned no result; write a SELECT that returns one row"
    if len(rows) != 1:
        return None, f"the query returned {'no' if not rows else 'more than one'} row; it must return exactly one"
    value = rows[0][0] if rows[0] else None
    if isinstance(value, bool):
        return (1.0 if value else 0.0), f"{value}"
    if value is None:
        return None, "the first column is NULL; return a boolean or a number in [0, 1]"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, f"the first column is {value!r} ({type(value).__name__}); return a boolean or a number in [0, 1]"
    if isinstance(value, str) or not 0.0 <= number <= 1.0 or math.isnan(number):
        return None, f"the first column is {value!r}; return a boolean or a number in [0, 1]"
    return number, f"{number:g}"


def grade_sql(inp: GradeInput, checks: Sequence[SqlCheck], pass_threshold: float = 1.0) -> Grade:
    """Each check runs over the sample's own events; the grade is their mean, passed when every
    check passes (a boolean true, or a number reaching ``pass_threshold``)."""
    if not checks:
        return binary_grade("sql", True, "no checks")
    scores = []
    notes = []
    all_pass = True
    for check in checks:
        try:
            score, note = _run_sql_check(inp.lake, inp.session_id, check)
        except Exception as e:  # the lake itself could not be opened
            score, note = None, f"{type(e).__name__}: {e}"
        if score is None:
            all_pass = False
            scores.append(0.0)
            notes.append(f"{check.name}: error: {note} (query: {short(check.query, 200)})")
        else:
            scores.append(score)
            passed = score >= pass_threshold - EPS
            all_pass = all_pass and passed
            notes.append(f"{check.name}: {'pass' if passed else 'fail'} ({note})")
    return Grade(grader="sql", score=sum(scores) / len(scores), passed=all_pass, explanation="; ".join(notes))


__all__ = ["grade_sql"]
