"""Formatting for the eval reports: values as HTML-escaped text, percentages, numbers, times, tables."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any


def esc(value: Any) -> str:
    """``value`` as HTML-escaped text (``None`` as empty)."""
    return html.escape("" if value is None else str(value), quote=True)


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def num(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def cut(text: str | None, n: int) -> str:
    text = text or ""
    return text if len(text) <= n else text[: n - 1] + "…"


def when(value: datetime | None) -> str:
    if value is None:
        return "–"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def html_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Iterable[int] = (),
    classes: Mapping[int, str] | None = None,
) -> str:
    """A table from pre-escaped cell HTML; ``numeric`` columns are right-aligned, ``classes`` name a
    column's CSS class."""
    cls = dict.fromkeys(numeric, "n") | dict(classes or {})

    def td(i: int, c: str) -> str:
        return f'<td class="{cls[i]}">{c}</td>' if i in cls else f"<td>{c}</td>"

    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(td(i, c) for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


__all__ = ["cut", "esc", "html_table", "num", "pct", "when"]
