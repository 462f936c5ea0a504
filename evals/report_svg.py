"""Charts for the HTML report, as inline SVG: pass rates with confidence whiskers, and box plots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

from troupe.evals.report_format import cut, esc, pct

_LABEL_W: Final = 230
_PLOT_W: Final = 440
_ROW_H: Final = 28
_TOP: Final = 26
_BOTTOM: Final = 10


def _nice_ticks(hi: float, count: int = 5) -> list[float]:
    if hi <= 0:
        return [0.0, 1.0]
    raw = hi / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _svg_open(rows: int, title: str) -> tuple[list[str], int]:
    height = _TOP + rows * _ROW_H + _BOTTOM
    width = _LABEL_W + _PLOT_W + 130
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">',
        f"<title>{esc(title)}</title>",
    ], height


def _svg_axis(parts: list[str], ticks: list[float], height: int, fmt: Any) -> None:
    top = ticks[-1] or 1.0
    for t in ticks:
        x = _LABEL_W + _PLOT_W * t / top
        parts.append(f'<line x1="{x:.1f}" y1="{_TOP - 4}" x2="{x:.1f}" y2="{height - _BOTTOM}" class="grid"/>')
        parts.append(f'<text x="{x:.1f}" y="{_TOP - 8}" class="tick">{esc(fmt(t))}</text>')


def _svg_label(parts: list[str], y: float, label: str) -> None:
    parts.append(
        f'<text x="{_LABEL_W - 8}" y="{y + 4:.1f}" class="lbl"><title>{esc(label)}</title>{esc(cut(label, 34))}</text>'
    )


def svg_pass_rates(rows: Sequence[tuple[str, float | None, float | None, float | None]]) -> str:
    """Horizontal bars of pass rate (label, rate, ci_lo, ci_hi), with 95% CI whiskers."""
    parts, height = _svg_open(len(rows), "Pass rate per cell with 95% Wilson intervals")
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
    _svg_axis(parts, ticks, height, lambda t: f"{100 * t:.0f}%")
    for i, (label, rate, lo, hi) in enumerate(rows):
        y = _TOP + i * _ROW_H + _ROW_H / 2
        _svg_label(parts, y, label)
        if rate is None:
            parts.append(f'<text x="{_LABEL_W + 4}" y="{y + 4:.1f}" class="val">no samples</text>')
            continue
        w = _PLOT_W * rate
        parts.append(
            f'<rect x="{_LABEL_W}" y="{y - 8:.1f}" width="{w:.1f}" height="16" class="bar">'
            f"<title>{esc(label)}: {pct(rate)} (95% CI {pct(lo)}–{pct(hi)})</title></rect>"
        )
        end = w
        if lo is not None and hi is not None:
            x1, x2 = _LABEL_W + _PLOT_W * lo, _LABEL_W + _PLOT_W * hi
            parts.append(f'<line x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}" class="whisk"/>')
            for x in (x1, x2):
                parts.append(f'<line x1="{x:.1f}" y1="{y - 5:.1f}" x2="{x:.1f}" y2="{y + 5:.1f}" class="whisk"/>')
            end = max(end, _PLOT_W * hi)
        parts.append(f'<text x="{_LABEL_W + end + 6:.1f}" y="{y + 4:.1f}" class="val">{pct(rate)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _quantile(sorted_values: list[float], q: float) -> float:
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def svg_box_plots(rows: Sequence[tuple[str, Sequence[float]]], title: str, unit: str = "") -> str:
    """Horizontal box plots (label, values): box = quartiles, line = median, whiskers = Tukey's
    1.5 IQR, dots = outliers."""
    parts, height = _svg_open(len(rows), title)
    hi = max((max(v) for _, v in rows if v), default=0.0)
    ticks = _nice_ticks(hi)
    top = ticks[-1] or 1.0
    digits = 0 if top >= 10 else 1 if top >= 1 else 2
    _svg_axis(parts, ticks, height, lambda t: f"{t:,.{digits}f}{unit}")

    def x(v: float) -> float:
        return _LABEL_W + _PLOT_W * v / top

    for i, (label, values) in enumerate(rows):
        y = _TOP + i * _ROW_H + _ROW_H / 2
        _svg_label(parts, y, label)
        vals = sorted(float(v) for v in values if v is not None)
        if not vals:
            parts.append(f'<text x="{_LABEL_W + 4}" y="{y + 4:.1f}" class="val">no data</text>')
            continue
        q1, med, q3 = (_quantile(vals, q) for q in (0.25, 0.5, 0.75))
        iqr = q3 - q1
        low = min(v for v in vals if v >= q1 - 1.5 * iqr)
        high = max(v for v in vals if v <= q3 + 1.5 * iqr)
        tip = (f"{label}: n={len(vals)}, min {vals[0]:g}, q1 {q1:g}, median {med:g}, q3 {q3:g}, "
               f"max {vals[-1]:g}{unit}")
        parts.append(f"<g><title>{esc(tip)}</title>")
        parts.append(f'<line x1="{x(low):.1f}" y1="{y:.1f}" x2="{x(high):.1f}" y2="{y:.1f}" class="whisk"/>')
        for v in (low, high):
            parts.append(f'<line x1="{x(v):.1f}" y1="{y - 5:.1f}" x2="{x(v):.1f}" y2="{y + 5:.1f}" class="whisk"/>')
        parts.append(
            f'<rect x="{x(q1):.1f}" y="{y - 8:.1f}" width="{max(x(q3) - x(q1), 1.0):.1f}" height="16" class="box"/>'
        )
        parts.append(f'<line x1="{x(med):.1f}" y1="{y - 8:.1f}" x2="{x(med):.1f}" y2="{y + 8:.1f}" class="med"/>')
        for v in [v for v in vals if v < low or v > high][:50]:
            parts.append(f'<circle cx="{x(v):.1f}" cy="{y:.1f}" r="2.5" class="out"/>')
        parts.append("</g>")
        parts.append(
            f'<text x="{x(high) + 8:.1f}" y="{y + 4:.1f}" class="val">median {med:,.{digits}f}{esc(unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["svg_box_plots", "svg_pass_rates"]
