"""Eval reports: the self-contained HTML file, the terminal summary, the compare text."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.evals.test_results import M1, Built, build_lake, sample_rows
from troupe.evals.analysis import compare
from troupe.evals.models import Gates
from troupe.evals.report import render_html, write_html
from troupe.evals.report_svg import svg_box_plots, svg_pass_rates
from troupe.evals.report_text import compare_text, terminal_summary
from troupe.evals.results import RunManifest, UnknownRunError, write_manifest, write_results

VOID = {"meta", "link", "br", "hr", "img", "input", "wbr", "col", "source"}


class Checker(HTMLParser):
    """Checks nesting (every end tag closes the innermost open element) and gathers ids, links, tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs
        for k, v in attrs:
            if k == "id":
                assert v not in self.ids, f"duplicate id {v}"
                self.ids.add(v or "")
            if k == "href":
                self.hrefs.append(v or "")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]} at {self.getpos()}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check(text: str) -> Checker:
    parser = Checker()
    parser.feed(text)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    return parser


@pytest.fixture
def built(lake: Path) -> Built:
    return build_lake(lake)


def test_html_report_is_self_contained_and_well_formed(built: Built, tmp_path: Path) -> None:
    path = write_html(built.lake, built.run_b, tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parsed = check(text)
    # no script, no network: the only links are anchors into the page, and each has its target
    assert "script" not in parsed.tags and not any(k == "src" for k, _ in parsed.attrs)
    assert parsed.hrefs and all(h.startswith("#") for h in parsed.hrefs)
    assert {h[1:] for h in parsed.hrefs} <= parsed.ids
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)


def test_html_report_contents(built: Built) -> None:
    text = render_html(built.lake, built.run_b)
    plain = " ".join(check(text).text)
    # header
    for needle in ("Eval report: demo", "run-b", "2026-03-01 13:00:00 UTC", "model = m1, m2, m3", "planned 24"):
        assert needle in plain
    # the summary table: counts, pass rate with its Wilson interval, score interval, latency, cost
    for needle in ("62.5%", "[30.6%, 86.3%]", "0.625", "[0.266, 0.984]", "3.00 / 4.65", "$0.0080", "79.2%"):
        assert needle in plain
    assert "Gates failed" in plain and "is below the minimum 70.0%" in plain
    # charts: pass rates with whiskers, latency and token distributions
    assert text.count("<svg") == 3
    assert "model=m1: 62.5% (95% CI 30.6%–86.3%)" in plain
    # failures: 5, the required one first, with the grade's explanation and the error
    assert "Failures (5)" in plain and "missing 'paris' in c1" in plain and "ValueError: never ran" in plain
    # the license
    assert "CC-BY-4.0 <cases from somewhere>" in plain and "CC-BY-4.0 &lt;cases from somewhere&gt;" in text


def test_html_escapes_replies_and_payloads(built: Built) -> None:
    text = render_html(built.lake, built.run_b)
    assert "<script>" not in text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in text
    assert "<b>capital</b>" not in text and "&lt;b&gt;capital&lt;/b&gt;" in text


def test_failures_link_to_their_trace(built: Built) -> None:
    text = render_html(built.lake, built.run_b)
    anchor = "trace-run-b_m1_c1_1"
    assert f'<a href="#{anchor}">trace</a>' in text
    trace = re.search(rf'<details id="{anchor}">(.*?)</details>', text, re.S)
    assert trace is not None
    rows = re.findall(r"<tr>(.*?)</tr>", trace.group(1), re.S)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in rows[1:]]
    assert [re.sub(r"<[^>]+>", "", c[1]) for c in cells] == [
        "session.started", "llm.response", "tool.call", "tool.error", "session.finished",
    ]
    error_row = cells[3]
    assert (error_row[0], error_row[2], error_row[3], error_row[4], error_row[5]) == (
        "3.000", "lead", "web_search", "error", "1,234.5")
    assert "50→20" in cells[1]
    assert "zzz-other" not in text  # another session's events stay out
    # a failure that never ran has no session and no link; one without events says so
    assert "No events for this session in the lake." in text


def test_report_of_a_run_without_manifest_or_failures(lake: Path, tmp_path: Path) -> None:
    write_results(lake, sample_rows("solo", (M1,), {}))
    path = write_html(lake, "solo", tmp_path)
    assert path == tmp_path / "solo.html"
    text = path.read_text()
    check(text)
    assert "none (results only)" in text and "Every sample passed." in text and "Gates passed." in text


def test_report_limits_failures(built: Built) -> None:
    text = render_html(built.lake, built.run_b, max_failures=2)
    assert "The first 2 of 5, required cases first." in text
    assert text.count('<a href="#trace-') == 2


def test_report_of_an_unknown_run(built: Built, tmp_path: Path) -> None:
    with pytest.raises(UnknownRunError, match="known eval runs: 'run-a', 'run-b'"):
        write_html(built.lake, "nope", tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def test_svg_charts_handle_missing_data() -> None:
    bars = svg_pass_rates([("a <b>", 0.5, 0.2, 0.8), ("empty", None, None, None)])
    boxes = svg_box_plots([("x", [1.0, 2.0, 3.0, 100.0]), ("none", [])], "T & t", " s")
    for svg in (bars, boxes):
        check(svg)
    assert "a &lt;b&gt;" in bars and "no samples" in bars
    assert "no data" in boxes and "<circle" in boxes  # 100 is an outlier
    assert 'aria-label="T &amp; t"' in boxes


def test_terminal_summary(built: Built, lake: Path) -> None:
    text = terminal_summary(built.lake, built.run_b)
    lines = text.splitlines()
    assert lines[0] == "run run-b  suite demo  finished  2026-03-01 13:00:00 UTC"
    m1 = next(line for line in lines if line.startswith("model=m1"))
    assert m1.split() == ["model=m1", "8", "5", "1", "62.5", "30.6-86.3", "0.625", "3.0", "4.65", "150", "0.008"]
    assert next(line for line in lines if line.startswith("all")).split()[1:3] == ["24", "19"]
    assert "gates: FAILED" in text and "  - cell model=m1: pass rate 62.5% (5/8) is below the minimum 70.0%." in lines
    assert "gates" not in terminal_summary(built.lake, built.run_b, gates=False)
    write_manifest(lake, RunManifest(run_id="new", suite="demo"))
    assert terminal_summary(lake, "new").endswith("(no results yet)")


def test_compare_text(built: Built) -> None:
    text = compare_text(compare(built.lake, built.run_a, built.run_b))
    lines = text.splitlines()
    assert lines[0] == "compare run-a (a) -> run-b (b)"
    assert next(line for line in lines if line.startswith("model=m1")).split()[:6] == [
        "model=m1", "8", "8", "100.0", "62.5", "-37.5"]
    assert "cells only in a: model=m0" in lines and "cells only in b: model=m3" in lines
    assert "cases that changed (3, regressions first):" in lines
    assert any(line.split()[:2] == ["model=m1", "c1"] and "*" in line for line in lines)
    assert lines[-4] == "gates: FAILED"
    assert lines[-1] == "  - cell model=m1: pass rate fell 37.5 points (100.0% → 62.5%), more than the allowed 10.0."
    ok = compare_text(compare(built.lake, built.run_b, built.run_a, Gates()))
    assert ok.endswith("gates: ok")
