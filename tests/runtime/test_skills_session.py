"""Skills in a whole session (in process, scripted model): the agent has the skill tools, load_skill brings the
instructions and records skill.loaded, read_skill_file stays in the folder, and a skill's script runs
through the sandboxed shell (folder read-only) only for an agent that holds shell."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.teams import call, team
from tests.support.lakes import rows
from tests.tools.test_sandbox import bwrap_here  # noqa: F401  (skip locally, fail under CI, without bwrap)
from troupe.runtime.api import Troupe
from troupe.runtime.errors import TeamConfigError
from troupe.runtime.session.supervisor import SessionStatus

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "skills"
SHELL = {"level": "L3", "scopes": ["shell:exec"]}


@pytest.fixture
def skills(tmp_path: Path) -> Path:
    """The example skills, copied where the test owns them (under /tmp, as a CI checkout is)."""
    folder = tmp_path / "skills"
    shutil.copytree(EXAMPLES, folder)
    return folder.resolve()


def use(tool: str, skill: str, path: str | None = None) -> dict[str, Any]:
    """A call of a skill tool (its ``name`` argument clashes with ``call``'s)."""
    return {"name": tool, "arguments": {"name": skill, **({"path": path} if path else {})}}


def events(lake: Path, session_id: str) -> list[dict[str, Any]]:
    sql = (f"select type, tool, payload from events where session_id='{session_id}' "
           "and type in ('skill.loaded', 'tool.result', 'tool.error', 'llm.request') order by ts, seq")
    return [{**r, "payload": json.loads(r["payload"])} for r in rows(lake, sql)]


def skill_team(skills: Path, calls: list[list[dict[str, Any]]], *, tools: list[str] | None = None,
               permissions: dict[str, Any] | None = None, **extra: Any) -> Any:
    script = [{"tool_calls": c} for c in calls] + [{"text": "done"}]
    return team([{"id": "lead", "tools": tools or [], "skills": [str(skills)], "permissions": permissions or {}}],
                scripts={"lead": script}, workspace={"root": str(skills.parent / "ws")}, **extra)


async def test_load_skill_brings_the_instructions_and_records_which_version(troupe: Troupe, lake: Path,
                                                                           skills: Path) -> None:
    cfg = skill_team(skills, [[use("load_skill", "team-glossary")],
                              [use("read_skill_file", "team-glossary", "references/glossary.md")],
                              [use("read_skill_file", "team-glossary", "../roman-numerals/SKILL.md")],
                              [use("load_skill", "nonexistent")]])
    result = await troupe.run(cfg, "what is a Q-gate?", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    evs = events(lake, result.session_id)
    first_request = next(e for e in evs if e["type"] == "llm.request")["payload"]
    assert first_request["tools"] == ["load_skill", "read_skill_file"]  # skills bring their tools
    [loaded] = [e["payload"] for e in evs if e["type"] == "skill.loaded"]
    body = (skills / "team-glossary" / "SKILL.md").read_bytes()
    assert loaded["name"] == "team-glossary" and loaded["sha256"] == hashlib.sha256(body).hexdigest()
    assert loaded["files"] == 1 and loaded["tokens"] == loaded["chars"] // 4 > 0
    outs = [(e["type"], e["tool"], str(e["payload"].get("result") or e["payload"].get("error"))) for e in evs
            if e["type"] in ("tool.result", "tool.error")]
    assert outs[0][:2] == ("tool.result", "load_skill") and "Read the glossary with" in outs[0][2]
    assert "references/glossary.md" in outs[0][2] and "no shell tool" in outs[0][2]
    assert "Q-gate: the quality gate" in outs[1][2]
    assert "stay inside it" in outs[2][2]
    assert "no skill named 'nonexistent'" in outs[3][2] and "temperature-convert" in outs[3][2]


async def test_a_skills_script_runs_through_the_sandboxed_shell(bwrap_here: None, troupe: Troupe,
                                                                lake: Path, skills: Path) -> None:
    script = skills / "temperature-convert" / "scripts" / "convert.py"
    cfg = skill_team(skills, [[use("load_skill", "temperature-convert")],
                              [call("shell", command=f"python3 {script} 'convert 100 C to F'")],
                              [call("shell", command=f"touch {script.parent}/x; echo > {script}; cat /etc/hostname")]],
                     tools=["shell"], permissions=SHELL)
    result = await troupe.run(cfg, "convert 100 C to F", timeout=60)
    assert result.status is SessionStatus.COMPLETED, result.error
    outs = [str(e["payload"].get("result")) for e in events(lake, result.session_id) if e["type"] == "tool.result"]
    assert f"python3 {skills}/temperature-convert/scripts/NAME.py" in outs[0]  # how to run its scripts
    assert outs[1].startswith("100 °C = 212 °F") and outs[1].endswith("[exit code 0]")
    assert "Read-only file system" in outs[2] and "[exit code 0]" not in outs[2]  # the folder is read-only
    assert script.read_text().startswith('"""Convert the temperature')  # untouched


async def test_an_agent_without_shell_cannot_run_a_skills_script(troupe: Troupe, lake: Path, skills: Path) -> None:
    script = skills / "roman-numerals" / "scripts" / "roman.py"
    cfg = skill_team(skills, [[use("load_skill", "roman-numerals")],
                              [call("shell", command=f"python3 {script} 1994")]])
    result = await troupe.run(cfg, "1994 in roman numerals", timeout=30)
    assert result.status is SessionStatus.COMPLETED, result.error
    evs = [e for e in events(lake, result.session_id) if e["type"] in ("tool.result", "tool.error")]
    assert [e["type"] for e in evs] == ["tool.result", "tool.error"]
    assert "shell" in str(evs[1]["payload"]) and "MCMXCIV" not in json.dumps(evs)


async def test_a_bad_skill_folder_fails_the_session_before_it_starts(troupe: Troupe, tmp_path: Path) -> None:
    cfg = team([{"id": "lead", "skills": [str(tmp_path / "missing")]}], scripts={"lead": [{"text": "hi"}]})
    with pytest.raises(TeamConfigError, match=r"agent 'lead': skill folder .*missing does not exist"):
        await troupe.run(cfg, "hi", timeout=10)
