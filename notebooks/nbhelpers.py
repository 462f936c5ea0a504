"""Shared by the notebooks: a deterministic stand-in model for the demo team, and model selection.

``stub`` is a ``function`` model profile (``nbhelpers:demo_stub``). It reads the question like a
small, literal-minded model would: it finds an arithmetic expression (digits and operators) and a
time conversion ("what time is it in ZONE when it is HH:MM in ZONE"), hands them to the demo team's
``math`` and ``clock`` workers, and composes their results. It cannot read numbers written as
words, and it answers tersely when the lead's instructions ask for brevity: two ways for an eval
case to fail. Each call waits a little (as if generating ~200 tokens/s) so that a trace has a shape.

Ray workers import the function by name. That works because Ray adds the driver's working
directory to its workers' ``sys.path``, and Jupyter (and nbclient/nbconvert) start a notebook's
kernel in the notebook's folder, which holds this file. On a cluster of several machines, ship it
to the workers: ``Troupe.connect(address=..., runtime_env={"py_modules": [nbhelpers]})``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

from troupe.runtime.config import ModelProfile, TeamConfig, load_team
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall

# Ray logs a hint about ipywidgets (rich progress widgets) on import in a notebook; the notebooks need none.
logging.getLogger("ray.widgets.util").setLevel(logging.WARNING)

STUB = "stub"
"""The profile name of the stand-in (what ``MODEL = "stub"`` picks)."""
STUB_PROFILE = {"provider": "function", "function": "nbhelpers:demo_stub"}
CUSTOM = "custom"
"""The profile name given to a ``MODEL`` written as a dict (an OpenAI-compatible endpoint)."""

_EXPR = re.compile(r"\d+(?:\.\d+)?(?:\s*(?:\*\*|[-+*/])\s*\d+(?:\.\d+)?)+")
_ZONE = r"[A-Za-z_]+(?:/[A-Za-z_+\-]+)*"
_QUESTION_TIME = re.compile(rf"in ({_ZONE}) when it is (\d{{1,2}}:\d{{2}}) in ({_ZONE})")
_GOAL_TIME = re.compile(rf"(\d{{1,2}}:\d{{2}}) from ({_ZONE}) to ({_ZONE})")
_TOKENS_PER_S = 200.0
_FIRST_TOKEN_S = 0.04


def _latency(text: str) -> float:
    """A deterministic 'generation time': first-token delay plus ~4 characters a token."""
    return _FIRST_TOKEN_S + len(text) / 4 / _TOKENS_PER_S


def _call(name: str, n: int, **arguments: Any) -> ToolCall:
    return ToolCall(id=f"call_{name}_{n}", name=name, arguments=json.dumps(arguments))


async def _respond(text: str = "", calls: list[ToolCall] | None = None) -> LLMResponse:
    await asyncio.sleep(_latency(text + "".join(c.arguments for c in calls or [])))
    return LLMResponse(text=text, tool_calls=calls or [], model="stub")


def _lead_answer(results: str, brief: bool) -> str:
    """Compose the answer from ``assign_tasks``' result lines ("goal = output" or "goal: status (error)")."""
    outputs = [line.split(" = ", 1)[1] if " = " in line else line for line in results.splitlines() if line.strip()]
    if not brief:
        return ", and ".join(o.rstrip(".") for o in outputs) + "."
    values = []
    for out in outputs:
        time = re.search(r" is (\d{1,2}:\d{2})", out)
        values.append(time.group(1) if time else out.rsplit("= ", 1)[-1].strip())
    return "; ".join(values)


async def demo_stub(request: LLMRequest, agent: str) -> LLMResponse:
    """The stand-in model for the demo team's ``lead``, ``math`` and ``clock`` (chosen by the tools offered)."""
    tools = {t.name for t in request.tools}
    system = next((m.content or "" for m in request.messages if m.role == "system"), "")
    last = request.messages[-1]
    if "assign_tasks" in tools:
        if last.role == "tool":
            return await _respond(_lead_answer(last.content or "", brief="brief" in system.lower()))
        question = next((m.content or "" for m in request.messages if m.role == "user"), "")
        tasks = []
        if expr := _EXPR.search(question):
            tasks.append({"assignee": "math", "goal": f"Compute {expr.group(0)}"})
        if when := _QUESTION_TIME.search(question):
            target, time, source = when.groups()
            tasks.append({"assignee": "clock", "goal": f"Convert {time} from {source} to {target}"})
        if not tasks:
            return await _respond("Sorry, I cannot find a calculation or a time conversion in that question.")
        return await _respond(calls=[_call("assign_tasks", 0, tasks=tasks)])
    goal = next((m.content or "" for m in request.messages if m.role == "user"), "").splitlines()[0]
    if "calculator" in tools:
        expr = _EXPR.search(goal)
        if last.role == "tool":
            result = last.content or ""
            if result.startswith("Error:"):
                return await _respond(f"I could not compute it: {result.removeprefix('Error:').strip()}")
            return await _respond(f"{expr.group(0) if expr else 'The result'} = {result}")
        if not expr:
            return await _respond("I found no arithmetic in my task.")
        return await _respond(calls=[_call("calculator", 0, expression=expr.group(0))])
    if "convert_time" in tools:
        if last.role == "tool":
            result = last.content or ""
            if result.startswith("Error:"):
                return await _respond(f"I could not convert the time: {result.removeprefix('Error:').strip()}")
            return await _respond(result)
        if not (when := _GOAL_TIME.search(goal)):
            return await _respond("I found no time conversion in my task.")
        time, source, target = when.groups()
        return await _respond(calls=[_call("convert_time", 0, time=time, source_timezone=source,
                                           target_timezone=target)])
    return await _respond("done")


def team_with_model(team: TeamConfig | str | Path, model: str | dict[str, Any]) -> TeamConfig:
    """``team`` with every agent on ``model``: a profile name of the team (``scripted``), ``stub``,
    ``local`` / ``local:/path/to.gguf`` (the embedded llama.cpp model), or a dict: a model profile
    (e.g. an OpenAI-compatible endpoint), added to the team as ``custom``.

    Profiles are copied as they are, never dumped and re-parsed with every default filled in: the
    ``local`` provider tells the options a profile sets from those it leaves to the model's defaults.
    """
    cfg = team if isinstance(team, TeamConfig) else load_team(team)
    models = {**cfg.models, STUB: ModelProfile(**STUB_PROFILE)}
    if isinstance(model, dict):
        models[CUSTOM] = ModelProfile(**model)
    return cfg.model_copy(update={"models": models}).with_model(profile_name(model))


def team_dict_with_model(team: TeamConfig | str | Path, model: str | dict[str, Any]) -> dict[str, Any]:
    """Like :func:`team_with_model`, as the dict of a team file (for an eval suite); only the fields
    the team file and ``model`` set, so that defaults stay defaults.

    A sweep re-parses each sample's team from a full dump (``troupe.evals.sweep.team_for_sample``), which
    would turn the ``local`` provider's small-model defaults (``parse_text_tool_calls: true``,
    ``tools_after_results: false``) into explicit opposites; written out here, they survive.
    """
    data = team_with_model(team, model).model_dump(by_alias=True, exclude_unset=True, mode="json")
    for profile in data.get("models", {}).values():
        if profile.get("provider") == "local":
            profile.setdefault("parse_text_tool_calls", True)
            profile.setdefault("tools_after_results", False)
    return data


def profile_name(model: str | dict[str, Any]) -> str:
    """The profile name a MODEL setting selects in a team built by :func:`team_with_model`."""
    return CUSTOM if isinstance(model, dict) else model


def profile_label(model: str | dict[str, Any]) -> str:
    """A short name for a MODEL setting (for titles and tables)."""
    if isinstance(model, dict):
        return f"{model.get('model', CUSTOM)} @ {model.get('base_url', 'default endpoint')}"
    return model


__all__ = ["CUSTOM", "STUB", "STUB_PROFILE", "demo_stub", "profile_label", "profile_name", "team_dict_with_model",
           "team_with_model"]
