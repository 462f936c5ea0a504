"""The README and docs/: links that resolve, the quickstart as promised, and Python snippets that run."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)


def _prose(text: str) -> str:
    """The page without its fenced code blocks (a link-like string in code is not a link)."""
    return _FENCE.sub("", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*\[\]()]", "", heading.strip().lower())  # underscores stay, as on GitHub
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", _prose(page.read_text()), re.M)}


def _relative_links(page: Path) -> list[str]:
    links = _LINK.findall(_prose(page.read_text()))
    return [link for link in links if not re.match(r"^[a-z][a-z0-9+.-]*:", link)]


def test_every_page_is_found() -> None:
    names = {p.name for p in PAGES}
    assert {"README.md", "tools.md", "recovery.md", "evals.md", "cluster.md", "performance.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_to_existing_files(page: Path) -> None:
    broken = []
    for link in _relative_links(page):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link}: no file {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{link}: no heading #{anchor} in {path.relative_to(REPO)}")
    assert broken == [], f"{page.relative_to(REPO)} has broken links:\n" + "\n".join(broken)


def test_the_link_checker_sees_broken_links(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n[ok](page.md#top) [gone](nothing.md) [web](https://example.com)\n"
                    "```text\n[in code](not-a-link.md)\n```\n")
    assert _relative_links(page) == ["page.md#top", "nothing.md"]
    assert _anchors(page) == {"top"}
    assert _slug("Drive Troupe from any MCP client: `troupe mcp serve`") == \
        "drive-troupe-from-any-mcp-client-troupe-mcp-serve"


def test_readme_quickstart_is_the_two_commands() -> None:
    text = README.read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in _FENCE.search(quickstart).group(2).splitlines()  # type: ignore[union-attr]
                if line and not line.startswith("#")]
    assert commands == [
        'python3 -m venv .venv && .venv/bin/pip install -q -e ".[local]" && .venv/bin/troupe demo',
        "bash .ci/run",
    ]
    assert (REPO / ".ci" / "run").is_file()


def test_readme_stays_short() -> None:
    assert len(README.read_text().splitlines()) <= 300


def _python_blocks(page: Path) -> list[str]:
    return [m.group(2) for m in _FENCE.finditer(page.read_text()) if m.group(1) == "python"]


def test_docs_python_snippets_compile() -> None:
    blocks = [(page, b) for page in PAGES for b in _python_blocks(page)]
    assert len(blocks) >= 4
    for page, block in blocks:
        compile(block, str(page), "exec")


@pytest.mark.parametrize("index", range(len(_python_blocks(README))))
def test_readme_python_snippet_runs(index: int, tmp_path: Path) -> None:
    """Each README snippet runs as it is, from the repository root, on the scripted model."""
    block = _python_blocks(README)[index]
    env = {**os.environ, "TROUPE_LAKE": str(tmp_path / "lake"), "TROUPE_WORKSPACES": str(tmp_path / "ws")}
    proc = subprocess.run([sys.executable, "-c", block], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Error" not in proc.stdout, proc.stdout[-3000:]
    if "troupe.run(" in block or "session.send(" in block:
        assert "completed" in proc.stdout, proc.stdout[-3000:]



def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    return dict(actions[0].choices) if actions else {}


def _synopsis_gaps(synopsis: str) -> tuple[list[str], list[str]]:
    """The commands of a `troupe ...` synopsis (continuation lines joined), and what the parser lacks."""
    from troupe.runtime.cli.main import build_parser

    commands = re.findall(r"^troupe ((?:[a-z][a-z0-9-]* )+)(.*)$", re.sub(r"\n +", " ", synopsis), re.M)
    missing = []
    for words, rest in commands:
        parser = build_parser()
        for word in words.split():
            if word not in _subcommands(parser):
                missing.append(f"troupe {words.strip()}: no command {word!r}")
                break
            parser = _subcommands(parser)[word]
        options = {s for a in parser._actions for s in a.option_strings}  # noqa: SLF001
        missing += [f"troupe {words.strip()}: no option {o}" for o in re.findall(r"--[a-z][a-z-]*", rest)
                    if o not in options]
    return [words.strip() for words, _ in commands], missing


def test_readme_command_line_matches_the_parser() -> None:
    """Every command and option of the README's synopsis exists in `troupe`'s parser."""
    section = README.read_text().split("## Command line", 1)[1].split("\n## ", 1)[0]
    commands, missing = _synopsis_gaps(_FENCE.search(section).group(2))  # type: ignore[union-attr]
    assert [c.split()[0] for c in commands] == ["demo", "run", "chat", "events", "events", "sessions", "resume",
                                                  "replay", "fork", "diff", "workspace", "eval", "mcp", "serve", "keys",
                                                  "knowledge", "a2a", "acp"]
    assert missing == []


def test_evals_page_command_line_matches_the_parser() -> None:
    blocks = [m.group(2) for m in _FENCE.finditer((REPO / "docs" / "evals.md").read_text())
              if m.group(2).startswith("troupe eval ")]
    assert len(blocks) == 1
    commands, missing = _synopsis_gaps(blocks[0])
    assert commands == ["eval run", "eval report", "eval compare", "eval baseline", "eval list"]
    assert missing == []


def test_the_synopsis_check_sees_a_missing_option() -> None:
    assert _synopsis_gaps("troupe run TEAM [--bogus]\ntroupe nothing here")[1] == [
        "troupe run: no option --bogus", "troupe nothing: no command 'nothing'"]
