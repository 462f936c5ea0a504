"""Troupe events -> Agent Client Protocol ``session/update`` payloads (plain Python, no I/O).

One :class:`UpdateMapper` per ACP session follows the Troupe session's events and says what the
client should be told:

- ``llm.token`` of the entry agent -> ``agent_message_chunk`` (the team's answer); of any other agent
  -> ``agent_thought_chunk`` (the team's inner talk), its first chunk of a model call headed with the
  agent's name. Every chunk names its agent in ``_meta.troupe.agent`` and its model call in ``messageId``.
- ``tool.call`` -> ``tool_call`` (``pending``; title, kind, raw input, locations for a ``path`` argument);
  ``approval.decided`` (approved) -> ``tool_call_update`` ``in_progress``; ``tool.result`` -> ``completed``
  with the result as content (and a diff for ``write_file``); ``tool.error`` / ``guardrail.denied`` /
  a denied approval -> ``failed``; ``tool.progress`` -> ``in_progress`` with the progress in ``_meta``.
- ``task.created`` / ``task.status`` (the task tree) and ``plan.created`` / ``plan.step`` / ``plan.revised``
  (a planner's typed plan) -> ``plan``: the planner's latest plan when there is one, else the task tree;
  every update carries the whole plan, as the protocol asks.

It also keeps what the prompt's ``stopReason`` is read from (:meth:`UpdateMapper.stop_reason`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AgentThoughtChunk,
    ContentToolCallContent,
    FileEditToolCallContent,
    PlanEntry,
    TextContentBlock,
    ToolCallLocation,
    ToolCallProgress,
    ToolCallStart,
    ToolCallUpdate,
)

from troupe.runtime.events import Event

Update = AgentMessageChunk | AgentThoughtChunk | ToolCallStart | ToolCallProgress | AgentPlanUpdate
ToolKind = Literal["read", "edit", "delete", "move", "search", "execute", "think", "fetch", "switch_mode", "other"]
StopReason = Literal["end_turn", "max_tokens", "max_turn_requests", "refusal", "cancelled"]
PlanStatus = Literal["pending", "in_progress", "completed"]

RESULT_CHARS = 4_000
"""A tool result shown to the client is cut to this many characters (``rawOutput`` holds it whole)."""

_KINDS: dict[str, ToolKind] = {
    "read_file": "read", "list_files": "read", "search_files": "search", "write_file": "edit", "shell": "execute",
    "knowledge_search": "search", "memory_recall": "search", "blackboard_get": "read", "blackboard_list": "read",
    "blackboard_put": "edit", "task_create": "think", "task_update": "think", "task_list": "read", "task_wait": "other",
}
_WORD_KINDS: tuple[tuple[tuple[str, ...], ToolKind], ...] = (
    (("delete", "remove", "unlink"), "delete"), (("move", "rename"), "move"),
    (("write", "edit", "patch", "create", "update", "put"), "edit"), (("read", "get", "list", "open"), "read"),
    (("search", "find", "grep", "query", "lookup"), "search"), (("shell", "exec", "run", "command"), "execute"),
    (("fetch", "http", "download", "browse"), "fetch"), (("think", "plan", "reflect"), "think"),
)
_TASK_STATUS: dict[str, PlanStatus] = {"pending": "pending", "blocked": "pending", "running": "in_progress",
                                       "done": "completed", "failed": "completed", "cancelled": "completed",
                                       "skipped": "completed"}


def tool_kind(tool: str) -> ToolKind:
    """The ACP kind of a Troupe tool: builtins by name, others (MCP ``server__tool``, Python) by the words in it."""
    if tool in _KINDS:
        return _KINDS[tool]
    name = tool.rsplit("__", 1)[-1].lower()
    for words, kind in _WORD_KINDS:
        if any(w in name for w in words):
            return kind
    return "other"


def _arguments(text: str) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return text


def _text(text: str) -> TextContentBlock:
    return TextContentBlock(type="text", text=text)


def _meta(agent: str | None, **extra: Any) -> dict[str, Any]:
    return {"troupe": {"agent": agent, **extra}}


@dataclass
class _PlanStep:
    content: str
    status: PlanStatus = "pending"


@dataclass
class UpdateMapper:
    """Follows one Troupe session's events (see the module's docstring); :meth:`feed` returns what to send."""

    entry: str
    """The team's entry agent: its tokens are the answer, the others' inner talk."""
    workspace: Path | None = None
    """The session's workspace folder: relative ``path`` arguments of file tools are resolved against it."""
    calls: dict[str, str] = field(default_factory=dict)
    """Troupe tool call id -> ACP ``toolCallId`` (``<agent>/<id>``: two agents' model ids may be equal)."""
    streamed: int = 0
    """Entry-agent chunks sent since :meth:`begin_turn` (none: the bridge sends the reply whole)."""
    budget: str | None = None
    finish_reason: str | None = None
    _inputs: dict[str, Any] = field(default_factory=dict)
    _tools: dict[str, str] = field(default_factory=dict)
    _speaking: dict[str, str] = field(default_factory=dict)
    _tasks: dict[str, _PlanStep] = field(default_factory=dict)
    _plans: dict[str, dict[str, _PlanStep]] = field(default_factory=dict)
    _latest_plan: str | None = None
    _last_plan: list[tuple[str, PlanStatus]] | None = None
    _done: set[str] = field(default_factory=set)

    def begin_turn(self) -> None:
        """A new prompt: forget what the last one streamed and why it stopped."""
        self.streamed, self.budget, self.finish_reason = 0, None, None

    # --- events ---------------------------------------------------------------------------------
    def feed(self, event: Event) -> list[Update]:
        """The updates ``event`` makes (often none)."""
        handler = getattr(self, "_on_" + event.type.replace(".", "_"), None)
        return list(handler(event, event.data)) if handler is not None else []

    def _on_llm_token(self, event: Event, data: dict[str, Any]) -> list[Update]:
        agent = event.agent or ""
        text = str(data.get("text") or "")
        if not text:
            return []
        message_id = str(event.parent_event_id or f"{agent}:{event.turn}")
        if agent == self.entry:
            self.streamed += 1
            return [AgentMessageChunk(session_update="agent_message_chunk", content=_text(text), message_id=message_id,
                                      field_meta=_meta(agent))]
        if self._speaking.get(agent) != message_id:  # a new model call of this agent: say who speaks
            self._speaking[agent] = message_id
            text = f"\n[{agent}] {text}"
        return [AgentThoughtChunk(session_update="agent_thought_chunk", content=_text(text), message_id=message_id,
                                  field_meta=_meta(agent))]

    def _on_llm_response(self, event: Event, data: dict[str, Any]) -> list[Update]:
        if event.agent == self.entry and not data.get("source"):
            self.finish_reason = data.get("finish_reason")
        self._speaking.pop(event.agent or "", None)
        return []

    def _call_id(self, event: Event, call_id: str) -> str:
        return self.calls.setdefault(f"{event.agent}/{call_id}", f"{event.agent}/{call_id}")

    def tool_call(self, event: Event, data: dict[str, Any]) -> ToolCallUpdate:
        """The ``toolCall`` of a ``session/request_permission`` for an ``approval.requested`` event."""
        tool = str(data.get("tool") or event.tool or "")
        call_id = self._call_id(event, str(data.get("call_id") or ""))
        raw = self._inputs.get(call_id, _arguments(str(data.get("arguments") or "")))
        return ToolCallUpdate(tool_call_id=call_id, title=self._title(event.agent, tool, raw), kind=tool_kind(tool),
                              status="pending", raw_input=raw, locations=self._locations(raw),
                              field_meta=_meta(event.agent, approval_id=data.get("id"), risk=data.get("risk")))

    def _on_tool_call(self, event: Event, data: dict[str, Any]) -> list[Update]:
        tool = event.tool or ""
        call_id = self._call_id(event, str(data.get("id") or ""))
        raw = _arguments(str(data.get("arguments") or ""))
        self._inputs[call_id], self._tools[call_id] = raw, tool
        return [ToolCallStart(session_update="tool_call", tool_call_id=call_id, title=self._title(event.agent, tool, raw),
                              kind=tool_kind(tool), status="pending", raw_input=raw, locations=self._locations(raw),
                              field_meta=_meta(event.agent, tool=tool, risk=data.get("risk")))]

    def _on_approval_decided(self, event: Event, data: dict[str, Any]) -> list[Update]:
        call_id = self._call_id(event, str(data.get("call_id") or ""))
        meta = _meta(event.agent, approval={"approved": bool(data.get("approved")), "by": data.get("by"),
                                            "reason": data.get("reason")})
        if data.get("approved"):
            return [ToolCallProgress(session_update="tool_call_update", tool_call_id=call_id, status="in_progress",
                                     field_meta=meta)]
        return []  # the refusal arrives as guardrail.denied (reason approval): failed there

    def _on_tool_progress(self, event: Event, data: dict[str, Any]) -> list[Update]:
        call_id = self._call_id(event, str(data.get("id") or ""))
        progress = {k: data.get(k) for k in ("progress", "total", "message")}
        return [ToolCallProgress(session_update="tool_call_update", tool_call_id=call_id, status="in_progress",
                                 field_meta=_meta(event.agent, progress=progress))]

    def _on_tool_result(self, event: Event, data: dict[str, Any]) -> list[Update]:
        return self._once(event, data, lambda: self._finished(event, data, "completed"))

    def _on_tool_error(self, event: Event, data: dict[str, Any]) -> list[Update]:
        return self._once(event, data, lambda: self._finished(event, data, "failed"))

    def _on_guardrail_denied(self, event: Event, data: dict[str, Any]) -> list[Update]:
        return self._once(event, data, lambda: self._denied(event, data))

    def _once(self, event: Event, data: dict[str, Any], make: Callable[[], ToolCallProgress]) -> list[Update]:
        """A call ends once (a denial is followed by the call's error event: the client hears the denial)."""
        call_id = self._call_id(event, str(data.get("id") or ""))
        if call_id in self._done:
            return []
        self._done.add(call_id)
        return [make()]

    def _denied(self, event: Event, data: dict[str, Any]) -> ToolCallProgress:
        call_id = self._call_id(event, str(data.get("id") or ""))
        error = str(data.get("error") or data.get("reason") or "denied")
        return ToolCallProgress(session_update="tool_call_update", tool_call_id=call_id, status="failed",
                                content=[ContentToolCallContent(type="content", content=_text(error))],
                                raw_output={"denied": data.get("reason"), "error": error},
                                field_meta=_meta(event.agent, denied=data.get("reason")))

    def _finished(self, event: Event, data: dict[str, Any], status: Literal["completed", "failed"]) -> ToolCallProgress:
        call_id = self._call_id(event, str(data.get("id") or ""))
        result = str(data.get("result") or "")
        shown = result if len(result) <= RESULT_CHARS else result[:RESULT_CHARS] + "…"
        content: list[ContentToolCallContent | FileEditToolCallContent] = [
            ContentToolCallContent(type="content", content=_text(shown))]
        raw = self._inputs.get(call_id)
        if status == "completed" and self._tools.get(call_id) == "write_file" and isinstance(raw, dict):
            path = self._path(raw)
            if path is not None and isinstance(raw.get("content"), str) and not raw.get("append"):
                content.append(FileEditToolCallContent(type="diff", path=path, new_text=raw["content"]))
        output: dict[str, Any] = {"result": result, "error_type": data.get("error_type")}
        if data.get("structured") is not None:
            output["structured"] = data["structured"]
        return ToolCallProgress(session_update="tool_call_update", tool_call_id=call_id, status=status, content=content,
                                raw_output=output, field_meta=_meta(event.agent, duration_ms=event.duration_ms))

    def _title(self, agent: str | None, tool: str, raw: Any) -> str:
        detail = ""
        if isinstance(raw, dict):
            for key in ("path", "command", "query", "goal", "key", "url", "pattern"):
                if isinstance(raw.get(key), str):
                    detail = " " + raw[key][:80]
                    break
        who = f"[{agent}] " if agent and agent != self.entry else ""
        return f"{who}{tool}{detail}"

    def _path(self, raw: dict[str, Any]) -> str | None:
        value = raw.get("path")
        if not isinstance(value, str) or not value:
            return None
        path = Path(value)
        if not path.is_absolute() and self.workspace is not None:
            path = self.workspace / path
        return str(path)

    def _locations(self, raw: Any) -> list[ToolCallLocation] | None:
        if not isinstance(raw, dict):
            return None
        path = self._path(raw)
        if path is None:
            return None
        line = raw.get("offset") if isinstance(raw.get("offset"), int) else None
        return [ToolCallLocation(path=path, line=line)]

    # --- plans ----------------------------------------------------------------------------------
    def _on_task_created(self, event: Event, data: dict[str, Any]) -> list[Update]:
        if event.task_id is None:
            return []
        who = data.get("assignee")
        goal = str(data.get("goal") or event.task_id)
        self._tasks[event.task_id] = _PlanStep(f"{goal} ({who})" if who else goal,
                                               _TASK_STATUS.get(str(event.status or "pending"), "pending"))
        return self._plan()

    def _on_task_status(self, event: Event, data: dict[str, Any]) -> list[Update]:
        step = self._tasks.get(event.task_id or "")
        if step is None:
            return []
        step.status = _TASK_STATUS.get(str(data.get("to") or event.status), step.status)
        return self._plan()

    def _on_plan_created(self, event: Event, data: dict[str, Any]) -> list[Update]:
        plan_id = str(data.get("plan_id"))
        self._plans[plan_id] = {str(s.get("id")): _PlanStep(self._step_text(s)) for s in data.get("steps") or []}
        self._latest_plan = plan_id
        return self._plan()

    def _on_plan_step(self, event: Event, data: dict[str, Any]) -> list[Update]:
        steps = self._plans.get(str(data.get("plan_id")))
        step = steps.get(str(data.get("step_id"))) if steps is not None else None
        if step is None:
            return []
        step.status = _TASK_STATUS.get(str(data.get("to")), step.status)
        return self._plan()

    def _on_plan_revised(self, event: Event, data: dict[str, Any]) -> list[Update]:
        steps = self._plans.setdefault(str(data.get("plan_id")), {})
        for sid in data.get("removed") or []:
            steps.pop(str(sid), None)
        for change in data.get("changed") or []:
            after = change.get("after") or {}
            steps[str(change.get("id"))] = _PlanStep(self._step_text(after))
        for s in data.get("added") or []:
            steps[str(s.get("id"))] = _PlanStep(self._step_text(s))
        for sid in [*(data.get("retried") or []), *(data.get("contradicted") or [])]:
            if str(sid) in steps:
                steps[str(sid)].status = "pending"
        self._latest_plan = str(data.get("plan_id"))
        return self._plan()

    @staticmethod
    def _step_text(step: dict[str, Any]) -> str:
        text = str(step.get("description") or step.get("id") or "")
        return f"{text} ({step['assignee']})" if step.get("assignee") else text

    def _plan(self) -> list[Update]:
        """The whole plan, when it changed: a planner's latest plan if any, else the task tree."""
        steps = self._plans[self._latest_plan] if self._latest_plan is not None else self._tasks
        now = [(s.content, s.status) for s in steps.values()]
        if now == self._last_plan:
            return []
        self._last_plan = now
        return [AgentPlanUpdate(session_update="plan", entries=[
            PlanEntry(content=content, priority="medium", status=status) for content, status in now])]

    # --- the turn's end -------------------------------------------------------------------------
    def _on_budget_exceeded(self, event: Event, data: dict[str, Any]) -> list[Update]:
        self.budget = str(data.get("budget") or "")
        return []

    def stop_reason(self, status: str) -> StopReason:
        """The prompt's ``stopReason`` from the Troupe turn's (or session's) status: ``cancelled``;
        ``budget_exceeded`` -> ``max_tokens`` for the token budget, else ``max_turn_requests``;
        otherwise ``end_turn``, unless the entry agent's last model call stopped on its token limit
        (``length``: ``max_tokens``) or its content filter (``refusal``). A failed session is not a
        stop reason: the bridge answers it with an error."""
        if status == "cancelled":
            return "cancelled"
        if status == "budget_exceeded":
            return "max_tokens" if self.budget in ("max_tokens", "tokens") else "max_turn_requests"
        if self.finish_reason == "length":
            return "max_tokens"
        if self.finish_reason == "content_filter":
            return "refusal"
        return "end_turn"


__all__ = ["RESULT_CHARS", "StopReason", "Update", "UpdateMapper", "tool_kind"]
