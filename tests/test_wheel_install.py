"""The wheel, installed next to another distribution that owns the top-level name ``tools``.

Troupe's folders are called runtime/, actors/, tools/ and evals/, but they install as
``troupe.runtime``, ... (pyproject's package-dir): the wheel must put ``troupe/`` alone into
site-packages, so a user's own ``tools`` package (a common name) keeps working beside it. This test
builds the wheel, installs it with that other package into a fresh virtualenv (the dependencies come
from this test's environment through a ``.pth`` line, which adds the folder to ``sys.path`` without
running the editable install's import hook there), and runs a session in it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

OTHER_TOOLS = '''
"""Someone else's package called ``tools``; also a function model for Troupe's session."""

OWNER = "someone else"


def answer(request, agent):
    from troupe.runtime.llm.types import LLMResponse, ToolCall

    last = request.messages[-1]
    if last.role == "tool":
        return f"{agent} says: 6*7 = {last.content}"
    return LLMResponse(tool_calls=[ToolCall(id="c1", name="calculator", arguments='{"expression": "6*7"}')])
'''

SESSION = '''
import asyncio, json, sys

import tools
import troupe.runtime
from troupe.runtime import Troupe
from troupe.runtime.config import parse_team

team = parse_team({
    "name": "wheel", "entry": "solver", "default_model": "fn",
    "models": {"fn": {"provider": "function", "function": "tools:answer"}},
    "agents": [{"id": "solver", "tools": ["calculator"]}],
})

async def main():
    runtime = Troupe.local(lake=sys.argv[1])
    try:
        result = await runtime.run(team, "what is 6*7?", timeout=60)
    finally:
        await runtime.shutdown()
    print(json.dumps({"tools": tools.OWNER, "tools_file": tools.__file__, "troupe": troupe.runtime.__file__,
                      "prefix": sys.prefix, "status": str(result.status), "reply": result.reply}))

asyncio.run(main())
'''


def _run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _clean_env() -> dict[str, str]:
    """This process's environment less what would point a fresh venv back at the checkout."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def _pip(*args: str | Path, cwd: Path) -> str:
    return _run(sys.executable, "-m", "pip", "--disable-pip-version-check", *args, cwd=cwd, env=_clean_env())


def test_the_wheel_installs_troupe_alone_and_runs_beside_another_tools_package(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _pip("wheel", "-q", "--no-deps", "-w", dist, REPO, cwd=tmp_path)
    (wheel,) = dist.glob("troupe_runtime-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        top = {name.split("/", 1)[0] for name in zf.namelist()}
    assert top == {"troupe", wheel.name.split("-py3")[0] + ".dist-info"}, top

    other = tmp_path / "other"
    (other / "tools").mkdir(parents=True)
    (other / "tools" / "__init__.py").write_text(textwrap.dedent(OTHER_TOOLS))
    (other / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=69"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "someone-elses-tools"
        version = "1.0"

        [tool.setuptools]
        packages = ["tools"]
    '''))

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    # The fresh venv's site-packages, then this environment's (for Troupe's dependencies only).
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    (site / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _pip("--python", python, "install", "-q", "--no-deps", other, cwd=tmp_path)
    _pip("--python", python, "install", "-q", "--no-deps", wheel, cwd=tmp_path)
    assert (venv / "bin" / "troupe").exists()  # the console script

    env = _clean_env()
    script = tmp_path / "session.py"
    script.write_text(SESSION)

    out = json.loads(_run(python, script, tmp_path / "lake", cwd=tmp_path, env=env).strip().splitlines()[-1])
    assert out["tools"] == "someone else"
    assert out["tools_file"].startswith(str(site)), out  # the other package, not Troupe's tools/ folder
    assert out["troupe"] == str(site / "troupe" / "runtime" / "__init__.py"), out  # from the wheel, not the checkout
    assert out["status"] == "completed" and out["reply"] == "solver says: 6*7 = 42", out

    help_text = _run(venv / "bin" / "troupe", "--help", cwd=tmp_path, env=env)
    assert "run" in help_text
