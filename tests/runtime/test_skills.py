"""Skills: SKILL.md parsing and validation, an agent's skill folders, the prompt section, confined file reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from troupe.runtime.agent.core import system_prompt
from troupe.runtime.api import validate_team
from troupe.runtime.config import AgentSpec, load_team
from troupe.runtime.errors import TeamConfigError, ToolArgumentError
from troupe.runtime.skills import (
    SkillError,
    check_skill_name,
    check_team_skills,
    discover,
    parse_skill,
    read_skill_file,
    skill_files,
    skills_prompt,
    with_skill_tools,
)
from troupe.tools.builtins import default_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "skills"


def make_skill(root: Path, name: str, front: str | None = None, body: str = "Do the thing.\n") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    head = front if front is not None else f"name: {name}\ndescription: Does {name} things. Use when asked.\n"
    (folder / "SKILL.md").write_text(f"---\n{head}---\n{body}")
    return folder


def test_a_skill_parses_with_its_optional_fields(tmp_path: Path) -> None:
    folder = make_skill(tmp_path, "csv-report", "name: csv-report\ndescription: Summarise CSV files.\nlicense: MIT\n"
                        "compatibility: needs python3\nmetadata: {author: me, version: 2}\nallowed-tools: shell read_file\n"
                        "argument-hint: '[file]'\n", body="# Steps\n1. Read it.\n")
    skill = parse_skill(folder)
    assert (skill.name, skill.description, skill.license, skill.compatibility) == \
        ("csv-report", "Summarise CSV files.", "MIT", "needs python3")
    assert skill.metadata == {"author": "me", "version": "2"} and skill.allowed_tools == ["shell", "read_file"]
    assert skill.extra == {"argument-hint": "[file]"}  # other agent CLIs' keys are kept, not refused
    assert skill.body == "# Steps\n1. Read it." and skill.folder == str(folder.resolve()) and len(skill.sha256) == 64


@pytest.mark.parametrize(("name", "ok"), [("a", True), ("pdf-2-text", True), ("x" * 64, True), ("x" * 65, False),
                                          ("PDF", False), ("-pdf", False), ("pdf-", False), ("pdf--x", False),
                                          ("pdf_x", False), ("", False)])
def test_skill_names_follow_the_agent_skills_rule(name: str, ok: bool) -> None:
    assert (check_skill_name(name) is None) is ok


@pytest.mark.parametrize(("front", "body", "message"), [
    (None, "no front matter at all\n", "no front matter"),
    ("name: [unclosed\n", "", "not valid YAML"),
    ("- a list\n", "", "must be a mapping"),
    ("description: Does things.\n", "", "front matter has no 'name'; add 'name: bad'"),
    ("name: Bad\ndescription: x\n", "", "lowercase letters, digits and hyphens"),
    ("name: other\ndescription: x\n", "", "name 'other' does not match its folder 'bad'"),
    ("name: bad\n", "", "needs 'description' as non-empty text"),
    ("name: bad\ndescription: '  '\n", "", "needs 'description' as non-empty text"),
    ("name: bad\ndescription: " + "d" * 1025 + "\n", "", "1025 characters long (at most 1024)"),
    ("name: bad\ndescription: x\ncompatibility: " + "c" * 501 + "\n", "", "'compatibility' is 501 characters"),
    ("name: bad\ndescription: x\nmetadata: [1]\n", "", "'metadata' must be a mapping"),
])
def test_a_malformed_skill_md_says_which_file_and_how_to_fix_it(tmp_path: Path, front: str | None, body: str,
                                                                 message: str) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "SKILL.md").write_text(body if front is None else f"---\n{front}---\n{body}")
    with pytest.raises(SkillError, match="invalid skill") as err:
        parse_skill(folder)
    assert message in err.value.message and str(folder / "SKILL.md") in err.value.message
    assert isinstance(err.value, TeamConfigError)


def test_missing_folders_and_files_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SkillError, match="does not exist or is not a folder"):
        discover([tmp_path / "nowhere"])
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    with pytest.raises(SkillError, match=r"holds no SKILL.md, nor does any folder in it"):
        discover([tmp_path / "empty"])
    with pytest.raises(SkillError, match="the file does not exist"):
        parse_skill(tmp_path / "empty")


def test_a_folder_of_skill_folders_lists_each_and_a_name_twice_is_refused(tmp_path: Path) -> None:
    make_skill(tmp_path / "lib", "alpha")
    make_skill(tmp_path / "lib", "beta")
    (tmp_path / "lib" / "not-a-skill").mkdir()
    single = make_skill(tmp_path / "more", "gamma")
    assert list(discover([tmp_path / "lib", single])) == ["alpha", "beta", "gamma"]
    make_skill(tmp_path / "other", "alpha")
    with pytest.raises(SkillError, match="skill 'alpha' is found twice"):
        discover([tmp_path / "lib", tmp_path / "other" / "alpha"])


def test_team_validation_names_the_agent_and_paths_are_relative_to_the_team_file(tmp_path: Path) -> None:
    make_skill(tmp_path / "skills", "alpha")
    (tmp_path / "team.yaml").write_text(
        "name: t\nentry: lead\ndefault_model: m\nmodels: {m: {provider: scripted, scripts: {}}}\n"
        "agents:\n- id: lead\n  skills: [skills]\n- id: helper\n  skills: [missing]\n")
    team = load_team(tmp_path)
    assert team.agents[0].skills == [str((tmp_path / "skills").resolve())]
    with pytest.raises(SkillError, match=r"agent 'helper': skill folder .*missing does not exist"):
        validate_team(team, default_registry())
    assert list(check_team_skills(team.agents[:1])["lead"]) == ["alpha"]


def test_the_system_prompt_names_the_skills_but_not_their_instructions(tmp_path: Path) -> None:
    make_skill(tmp_path, "alpha", body="SECRET-STEP-ONE\n")
    spec = AgentSpec(id="lead", skills=[str(tmp_path / "alpha")])
    prompt = system_prompt(spec, [spec])
    assert "- alpha: Does alpha things. Use when asked." in prompt and "load_skill(name)" in prompt
    assert "SECRET-STEP-ONE" not in prompt
    assert "Skills you can use" not in system_prompt(AgentSpec(id="lead"), [])
    assert skills_prompt({}) == ""


def test_agents_with_skills_are_given_the_skill_tools() -> None:
    assert with_skill_tools(["shell"], ["/s"]) == ["shell", "load_skill", "read_skill_file"]
    assert with_skill_tools(["shell", "load_skill"], ["/s"]) == ["shell", "load_skill", "read_skill_file"]
    assert with_skill_tools(["shell"], []) == ["shell"]


def test_skill_files_are_listed_and_read_only_inside_the_folder(tmp_path: Path) -> None:
    folder = make_skill(tmp_path, "alpha")
    (folder / "scripts").mkdir()
    (folder / "scripts" / "run.sh").write_text("echo hi\n")
    (folder / "scripts" / "__pycache__").mkdir()
    (folder / "scripts" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (folder / "blob.bin").write_bytes(b"\0\1\2")
    (tmp_path / "outside.txt").write_text("host secret")
    (folder / "link.txt").symlink_to(tmp_path / "outside.txt")
    skill = parse_skill(folder)
    assert skill_files(skill) == (["blob.bin", "link.txt", "scripts/run.sh"], 3)
    assert read_skill_file(skill, "scripts/run.sh") == "echo hi\n"
    assert read_skill_file(skill, "./scripts//run.sh") == "echo hi\n"
    for bad, why in [("../outside.txt", "stay inside it"), ("/etc/passwd", "stay inside it"),
                     ("link.txt", "leads outside"), ("nope.md", "has no file 'nope.md'"), ("blob.bin", "binary"),
                     ("", "path is empty")]:
        with pytest.raises(ToolArgumentError, match=why):
            read_skill_file(skill, bad)
    assert read_skill_file(skill, "SKILL.md", max_chars=10).startswith("---\nname: ")


def test_the_example_skills_are_valid() -> None:
    skills = discover([EXAMPLES])
    assert set(skills) == {"roman-numerals", "team-glossary", "temperature-convert"}
    assert skill_files(skills["temperature-convert"])[0] == ["scripts/convert.py"]
