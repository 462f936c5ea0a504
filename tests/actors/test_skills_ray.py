"""Skills on Ray (the session-wide fixture, dedicated placement): the agent's host actor lists its skills,
load_skill records skill.loaded, and the skill's script runs through the sandboxed shell there."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.runtime.teams import call, team
from tests.support.lakes import rows
from troupe.runtime.api import Troupe
from troupe.runtime.session.supervisor import SessionStatus
from troupe.tools.sandbox import sandbox_status

pytestmark = pytest.mark.ray
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "skills"


async def test_a_skill_is_loaded_and_its_script_run_on_ray(troupe_ray: Troupe, lake: Path, tmp_path: Path) -> None:
    skills = tmp_path / "skills"
    shutil.copytree(EXAMPLES, skills)
    script = skills.resolve() / "roman-numerals" / "scripts" / "roman.py"
    cfg = team([{"id": "lead", "tools": ["shell"], "skills": [str(skills)],
                 "permissions": {"level": "L3", "scopes": ["shell:exec"]}}],
               scripts={"lead": [{"tool_calls": [{"name": "load_skill", "arguments": {"name": "roman-numerals"}}]},
                                 {"tool_calls": [call("shell", command=f"python3 {script} 'What is 1994?'")]},
                                 {"text": "1994 = MCMXCIV"}]},
               workspace={"root": str(tmp_path / "ws")}, sandbox="on" if sandbox_status().available else "off")
    result = await troupe_ray.run(cfg, "What is 1994 in Roman numerals?", timeout=60)
    assert result.status is SessionStatus.COMPLETED, result.error
    evs = rows(lake, f"select type, tool, payload from events where session_id='{result.session_id}' "
                     "and type in ('skill.loaded', 'tool.result', 'tool.error') order by ts, seq")
    assert [(e["type"], e["tool"]) for e in evs] == [("skill.loaded", None), ("tool.result", "load_skill"),
                                                     ("tool.result", "shell")]
    assert json.loads(evs[0]["payload"])["name"] == "roman-numerals"
    assert "Roman numerals" in json.loads(evs[1]["payload"])["result"]
    assert json.loads(evs[2]["payload"])["result"].startswith("1994 = MCMXCIV")
