"""Turn events into terminal lines (the CLI's view; the core never prints)."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from troupe.runtime.events import Event

_COLORS = ["36", "33", "35", "32", "34", "31"]


class ProgressPrinter:
    """Prints one line per notable event and streams model tokens inline."""

    def __init__(self, out: TextIO = sys.stderr, *, color: bool | None = None) -> None:
        self.out = out
        self.color = out.isatty() if color is None else color
        self._palette: dict[str, str] = {}
        self._streaming: str | None = None
        self._buffers: dict[str, str] = {}

    def _tag(self, agent: str | None) -> str:
        name = agent or "-"
        if not self.color:
            return f"[{name}]"
        code = self._palette.setdefault(name, _COLORS[len(self._palette) % len(_COLORS)])
        return f"\x1b[{code}m[{name}]\x1b[0m"

    def _end_stream(self) -> None:
        if self._streaming is not None:
            self.out.write("\n")
            self._streaming = None

    def _token(self, agent: str, text: str) -> None:
        """One agent streams inline; agents speaking at the same time are buffered until they finish."""
        if self._streaming is None and not self._buffers.get(agent):
            self.out.write(f"{self._tag(agent)} ")
            self._streaming = agent
        if self._streaming == agent:
            self.out.write(text.replace("\n", f"\n{self._tag(agent)} "))
            self.out.flush()
        else:
            self._buffers[agent] = self._buffers.get(agent, "") + text

    def _flush(self, agent: str | None) -> None:
        if agent is not None and self._streaming == agent:
            self._end_stream()
        text = self._buffers.pop(agent, "") if agent is not None else ""
        if text.strip():
            self._end_stream()
            for line in text.strip().splitlines():
                self.out.write(f"{self._tag(agent)} {line}\n")

    def __call__(self, event: Event) -> None:
        data = event.data
        if event.type == "llm.token":
            self._token(event.agent or "-", data.get("text", ""))
            return
        self._flush(event.agent)
        line = self._line(event, data)
        if line is None:
            return
        self._end_stream()
        self.out.write(f"{self._tag(event.agent)} {line}\n")
        self.out.flush()

    def _line(self, event: Event, data: dict) -> str | None:
        t = event.type
        if t == "session.started":
            return f"session {event.session_id} started (run {event.run_id}, {data.get('placement')})"
        if t == "message.delivered":
            return f"<- {data.get('sender')}: {_short(data.get('content', ''))}"
        if t == "llm.response":
            calls = data.get("tool_calls") or []
            what = ", ".join(c["name"] for c in calls) if calls else "reply"
            return f"llm {event.model} {event.duration_ms or 0:.0f} ms, {event.tokens_in}+{event.tokens_out} tokens -> {what}"
        if t == "tool.result":
            return f"tool {event.tool} ok: {_short(data.get('result', ''))}"
        if t == "tool.error":
            return f"tool {event.tool} ERROR: {_short(data.get('result', ''))}"
        if t == "task.created":
            return f"task {event.task_id} created for {data.get('assignee') or 'nobody'}: {_short(data.get('goal', ''))}"
        if t == "task.status":
            return f"task {event.task_id} -> {event.status}"
        if t == "blackboard.put":
            return f"blackboard {data.get('key')} v{data.get('version')} = {_short(json.dumps(data.get('value')))}"
        if t == "agent.spawned":
            return f"spawned by {data.get('parent')}"
        if t in ("agent.error", "llm.error", "guardrail.denied", "budget.exceeded"):
            return f"{t}: {_short(data.get('error') or data.get('reason') or data.get('budget') or '')}"
        if t == "approval.decided":
            return f"approval {event.tool} {event.status} by {data.get('by')}: {_short(data.get('reason') or '')}"
        if t == "tool.progress":
            done = data.get("progress")
            total = data.get("total")
            return f"tool {event.tool} progress {done}{'/' + str(total) if total else ''} {_short(data.get('message') or '')}"
        if t == "session.finished":
            return f"session finished: {event.status}"
        return None


def _short(text: str, limit: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["ProgressPrinter"]
