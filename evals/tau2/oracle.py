"""``--model oracle`` for the τ² suites: a function model that replays the task's ground-truth
actions as tool calls, one per round and in order, then tells the user the task's
``communicate_info``; :func:`user_stop` is the simulated user of such runs. Each case names its task through the profile's function spec
(``troupe.evals.tau2.oracle:airline.<task id>``), which resolves to :meth:`Oracle.__getattr__`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from troupe.evals.tau2.task import Task, gold_actions, tasks
from troupe.runtime.llm.types import LLMRequest, LLMResponse, ToolCall

STOP = "###STOP###"


def _tool_name(request: LLMRequest, name: str) -> str:
    """The name the agent knows the tool by (an MCP server's tools are ``<server>__<name>``)."""
    for tool in request.tools:
        if tool.name == name or tool.name.endswith(f"__{name}"):
            return tool.name
    return name


def final_text(task: Task) -> str:
    info = (task.evaluation_criteria.communicate_info or []) if task.evaluation_criteria else []
    return " ".join(["Done.", *info]) if info else "Done."


def replay(task: Task) -> Callable[[LLMRequest, str], LLMResponse]:
    """The model function for ``task``: the next not yet made action, else the final text."""
    actions = gold_actions(task)

    def respond(request: LLMRequest, agent: str) -> LLMResponse:
        made = sum(len(m.tool_calls) for m in request.messages if m.role == "assistant")
        if made < len(actions):
            action = actions[made]
            call = ToolCall(id=f"oracle_{made}", name=_tool_name(request, action.name),
                            arguments=json.dumps(action.arguments))
            return LLMResponse(tool_calls=[call])
        return LLMResponse(text=final_text(task))

    return respond


class Oracle:
    """``Oracle("airline").<task id>`` is the model function of that task."""

    def __init__(self, domain: str) -> None:
        self.domain = domain

    def __getattr__(self, task_id: str) -> Callable[[LLMRequest, str], LLMResponse]:
        if task_id.startswith("__"):
            raise AttributeError(task_id)
        task = tasks(self.domain).get(task_id)
        if task is None:
            raise AttributeError(f"no τ² {self.domain} task {task_id!r}")
        return replay(task)


def user_stop(request: LLMRequest, agent: str) -> LLMResponse:
    """The simulated user of oracle runs (profile ``user_oracle``): it ends the conversation at the
    agent's first reply, since the oracle does the whole task in its first turn."""
    return LLMResponse(text=STOP)


mock = Oracle("mock")
airline = Oracle("airline")
retail = Oracle("retail")

__all__ = ["STOP", "Oracle", "airline", "final_text", "mock", "replay", "retail", "user_stop"]
