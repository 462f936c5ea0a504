"""A session's events as OpenTelemetry spans, following the GenAI semantic conventions.

One trace per session (:func:`~troupe.runtime.otel.spans.trace_id_for`):

- the root ``invoke_agent {team}`` span covers the session, from ``session.started`` to
  ``session.finished`` (status, usage, and the user's input and the reply when contents are on);
- an ``invoke_agent {agent}`` span per agent turn (``agent.state`` to ``running`` until it leaves
  ``running``), under the span that caused it: the tool call that created the task the turn works
  on, the turn that sent the message it answers, or the root for the user's messages;
- a ``chat {model}`` span per model call (``llm.request`` to ``llm.response`` / ``llm.error``:
  model, token usage, finish reasons), and an ``execute_tool {tool}`` span per tool call
  (``tool.call`` to ``tool.result`` / ``tool.error``: tool, call id, status, error type), under
  the agent's turn;
- messages, tasks, blackboard writes, approvals and the like as span events of the span that was
  current when they happened.

Plain Python over :class:`~troupe.runtime.events.Event` rows: the same for a live session (the
event log's rows) and a past one (the lake's).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from troupe.runtime.events import Event
from troupe.runtime.otel.attributes import ContentPolicy, diagnostic, event_attributes, put, usage_attributes
from troupe.runtime.otel.spans import SpanEventRecord, SpanRecord, span_id_for, to_ns, trace_id_for

_ROOT_EVENTS = frozenset({"turn.finished", "session.resumed", "budget.exceeded", "actor.restored",
                          "environment.opened", "environment.captured", "workspace.snapshot", "workspace.rollback"})
_FAILED = frozenset({"failed", "budget_exceeded", "cancelled", "error"})
_TURN_ENDS = frozenset({"idle", "error", "terminated"})


def _data(event: Event) -> dict[str, Any]:
    try:
        data = json.loads(event.payload)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class _Turn:
    span: SpanRecord
    tools: dict[str, SpanRecord] = field(default_factory=dict)
    """Open tool calls by call id, in the order they began."""
    request: Event | None = None
    """The model call under way (its ``llm.request``)."""


class _SessionMapper:
    def __init__(self, session_id: str, run_id: str, policy: ContentPolicy) -> None:
        self.sid = session_id
        self.run_id = run_id
        self.policy = policy
        self.trace_id = trace_id_for(session_id)
        self.root = SpanRecord(self.trace_id, span_id_for(session_id, "session"), None, "invoke_agent session", 0, 0,
                               attributes={"gen_ai.operation.name": "invoke_agent"})
        self.spans: list[SpanRecord] = [self.root]
        self.turns: dict[str, _Turn] = {}
        self.waiting: dict[str, list[Event]] = {}
        """Messages an agent took from its mailbox before its turn's ``agent.state``."""
        self.task_spans: dict[str, int] = {}
        self.sent_spans: dict[str, int] = {}
        self.team: str | None = None
        self.started = self.finished = False
        self.first_ns: int | None = None

    # --- helpers -------------------------------------------------------------------------
    def span(self, key: str, parent: int, name: str, start_ns: int, end_ns: int, **attrs: Any) -> SpanRecord:
        record = SpanRecord(self.trace_id, span_id_for(self.sid, key), parent, name, start_ns, max(start_ns, end_ns))
        for k, v in attrs.items():
            put(record.attributes, k.replace("__", "."), v)
        self.spans.append(record)
        return record

    def current(self, agent: str | None) -> SpanRecord:
        turn = self.turns.get(agent) if agent else None
        if turn is None:
            return self.root
        return next(reversed(turn.tools.values())) if turn.tools else turn.span

    def note(self, target: SpanRecord, event: Event, data: dict[str, Any]) -> None:
        attrs = event_attributes(event.type, data, self.policy)
        for name, value in (("troupe.agent", event.agent), ("troupe.task_id", event.task_id),
                            ("troupe.status", event.status)):
            if value is not None:
                attrs.setdefault(name, value)
        target.events.append(SpanEventRecord(f"troupe.{event.type}", to_ns(event.ts), attrs))

    def open_turn(self, agent: str, event: Event) -> _Turn:
        waiting = self.waiting.pop(agent, [])
        first = waiting[0] if waiting else event
        parent = self.root.span_id
        if waiting:
            data = _data(waiting[0])
            task_id = (data.get("data") or {}).get("task_id") if isinstance(data.get("data"), dict) else None
            if data.get("kind") == "task" and task_id in self.task_spans:
                parent = self.task_spans[task_id]
            elif data.get("id") in self.sent_spans:
                parent = self.sent_spans[data["id"]]
        ts = to_ns(first.ts)
        span = self.span(f"turn/{first.event_id}", parent, f"invoke_agent {agent}", ts, ts,
                         gen_ai__operation__name="invoke_agent", gen_ai__agent__name=agent,
                         gen_ai__agent__id=f"{self.sid}/{agent}", troupe__turn=event.turn,
                         troupe__task_id=event.task_id or first.task_id)
        if waiting:
            put(span.attributes, "troupe.trigger", _data(waiting[0]).get("sender"))
        turn = self.turns[agent] = _Turn(span)
        for message in waiting:
            self.note(span, message, _data(message))
        return turn

    def turn(self, event: Event) -> _Turn:
        agent = event.agent or "?"
        return self.turns.get(agent) or self.open_turn(agent, event)

    # --- events --------------------------------------------------------------------------
    def add(self, event: Event) -> None:
        ts = to_ns(event.ts)
        self.first_ns = ts if self.first_ns is None else min(self.first_ns, ts)
        self.root.end_at_least(ts)
        data = _data(event)
        handler = getattr(self, "on_" + event.type.replace(".", "_"), None)
        if handler is not None:
            handler(event, data, ts)
        elif event.type in _ROOT_EVENTS:
            self.note(self.root, event, data)
        elif event.type != "llm.token":
            self.note(self.current(event.agent), event, data)

    def on_session_started(self, event: Event, data: dict[str, Any], ts: int) -> None:
        self.started = True
        self.root.start_ns = ts
        self.team = data.get("team")
        self.root.name = f"invoke_agent {self.team or 'session'}"
        attrs = self.root.attributes
        for key in ("placement", "entry", "conversation", "replay_of", "forked_from", "fork_point"):
            put(attrs, f"troupe.{key}", data.get(key) or None)
        put(attrs, "gen_ai.agent.name", self.team)
        self.content(attrs, "troupe.input", data.get("input"))

    def on_session_finished(self, event: Event, data: dict[str, Any], ts: int) -> None:
        self.finished = True
        attrs = self.root.attributes
        put(attrs, "troupe.status", event.status)
        attrs.update(usage_attributes("troupe.usage", data.get("usage")))
        if event.status in _FAILED:
            self.root.status = "error"
            self.root.status_message = diagnostic(data.get("error") or event.status)
        self.content(attrs, "troupe.reply", data.get("reply"))

    def on_agent_state(self, event: Event, data: dict[str, Any], ts: int) -> None:
        agent = event.agent or "?"
        turn = self.turns.get(agent)
        if event.status == "cancelled" and turn is not None:
            turn.span.status, turn.span.status_message = "error", "cancelled"
        elif data.get("to") == "running" and turn is None:
            self.open_turn(agent, event)
        elif data.get("from") == "running" and data.get("to") in _TURN_ENDS and turn is not None:
            if data.get("to") == "error" and turn.span.status != "error":
                turn.span.status, turn.span.status_message = "error", "error"
            self.close(agent, ts)

    def on_agent_error(self, event: Event, data: dict[str, Any], ts: int) -> None:
        target = self.turn(event).span
        target.status, target.status_message = "error", diagnostic(data.get("error") or event.status)
        self.note(target, event, data)

    def on_message_delivered(self, event: Event, data: dict[str, Any], ts: int) -> None:
        turn = self.turns.get(event.agent or "?")
        if turn is None:
            self.waiting.setdefault(event.agent or "?", []).append(event)
        else:
            self.note(turn.span, event, data)

    def on_message_sent(self, event: Event, data: dict[str, Any], ts: int) -> None:
        target = self.current(event.agent)
        if data.get("id"):
            self.sent_spans[str(data["id"])] = target.span_id
        self.note(target, event, data)

    def on_task_created(self, event: Event, data: dict[str, Any], ts: int) -> None:
        target = self.current(event.agent)
        if event.task_id:
            self.task_spans[event.task_id] = target.span_id
        self.note(target, event, data)

    def on_llm_request(self, event: Event, data: dict[str, Any], ts: int) -> None:
        self.turn(event).request = event

    def on_llm_response(self, event: Event, data: dict[str, Any], ts: int) -> None:
        self.chat(event, data, ts)

    def on_llm_error(self, event: Event, data: dict[str, Any], ts: int) -> None:
        span = self.chat(event, data, ts)
        span.status, span.status_message = "error", diagnostic(data.get("error") or event.status)
        put(span.attributes, "error.type", data.get("reason") or data.get("type"))

    def chat(self, event: Event, data: dict[str, Any], ts: int) -> SpanRecord:
        turn = self.turn(event)
        parent = turn.span
        if data.get("sampling_for"):
            parent = turn.tools.get(str(data["sampling_for"]), parent)
        request, start = None, ts - int((event.duration_ms or 0) * 1_000_000)
        if turn.request is not None and not data.get("source"):
            request, turn.request = turn.request, None
            start = to_ns(request.ts)
        request_data = _data(request) if request is not None else {}
        model = event.model or (request.model if request is not None else None) or "unknown"
        span = self.span(f"llm/{event.event_id}", parent.span_id, f"chat {model}", start, ts,
                         gen_ai__operation__name="chat", gen_ai__request__model=model,
                         gen_ai__agent__name=event.agent, gen_ai__usage__input_tokens=event.tokens_in,
                         gen_ai__usage__output_tokens=event.tokens_out, troupe__round=data.get("round"),
                         troupe__profile=data.get("profile"), troupe__status=event.status,
                         troupe__source=data.get("source"), troupe__request__messages=request_data.get("messages"),
                         troupe__request__tools=request_data.get("tools"))
        span.kind = "client"
        if data.get("finish_reason"):
            span.attributes["gen_ai.response.finish_reasons"] = [str(data["finish_reason"])]
        calls = data.get("tool_calls") or []
        if calls:
            span.attributes["troupe.tool_calls"] = [str(c.get("name")) for c in calls if isinstance(c, dict)]
        self.content(span.attributes, "troupe.input.last_message", request_data.get("last"))
        if self.policy.capture and event.type == "llm.response":
            parts: list[dict[str, Any]] = [{"type": "text", "content": data.get("text") or ""}]
            parts += [{"type": "tool_call", "name": c.get("name"), "arguments": c.get("arguments")}
                      for c in calls if isinstance(c, dict)]
            message = {"role": "assistant", "parts": parts, "finish_reason": data.get("finish_reason")}
            self.content(span.attributes, "gen_ai.output.messages", [message])
        parent.end_at_least(ts)
        return span

    def on_tool_call(self, event: Event, data: dict[str, Any], ts: int) -> None:
        turn = self.turn(event)
        call_id = str(data.get("id") or event.event_id)
        span = self.span(f"tool/{event.event_id}", turn.span.span_id, f"execute_tool {event.tool}", ts, ts,
                         gen_ai__operation__name="execute_tool", gen_ai__tool__name=event.tool,
                         gen_ai__tool__call__id=call_id, gen_ai__tool__type="function",
                         gen_ai__agent__name=event.agent)
        risk = data.get("risk")
        if isinstance(risk, dict):
            put(span.attributes, "troupe.risk.score", risk.get("score"))
            put(span.attributes, "troupe.risk.decision", risk.get("decision"))
        self.content(span.attributes, "gen_ai.tool.call.arguments", data.get("arguments"))
        turn.tools[call_id] = span

    def on_tool_result(self, event: Event, data: dict[str, Any], ts: int) -> None:
        turn = self.turn(event)
        call_id = str(data.get("id") or event.event_id)
        span = turn.tools.pop(call_id, None)
        if span is None:  # no tool.call row (a turn replayed from its journal, a partial export)
            start = ts - int((event.duration_ms or 0) * 1_000_000)
            span = self.span(f"tool/{event.event_id}", turn.span.span_id, f"execute_tool {event.tool}", start, ts,
                             gen_ai__operation__name="execute_tool", gen_ai__tool__name=event.tool,
                             gen_ai__tool__call__id=call_id, gen_ai__tool__type="function",
                             gen_ai__agent__name=event.agent)
        span.end_at_least(ts)
        put(span.attributes, "troupe.status", event.status)
        put(span.attributes, "troupe.replayed", data.get("replayed") or None)
        if event.type == "tool.error":
            span.status = "error"
            span.status_message = diagnostic(data.get("error_type") or "tool error")
            put(span.attributes, "error.type", data.get("error_type") or "_OTHER")
        self.content(span.attributes, "gen_ai.tool.call.result", data.get("result"))
        turn.span.end_at_least(ts)

    on_tool_error = on_tool_result

    def on_tool_progress(self, event: Event, data: dict[str, Any], ts: int) -> None:
        turn = self.turns.get(event.agent or "?")
        target = turn.tools.get(str(data.get("id")), turn.span) if turn is not None else self.root
        self.note(target, event, data)

    def content(self, attrs: dict[str, Any], key: str, value: Any) -> None:
        text = self.policy.text(value)
        if text is not None:
            attrs[key] = text

    def close(self, agent: str, ts: int) -> None:
        turn = self.turns.pop(agent)
        turn.span.end_at_least(ts)
        for tool in turn.tools.values():  # a call whose result never came (cancelled, crashed)
            tool.end_at_least(ts)
            tool.status, tool.status_message = "error", "no result recorded"

    # --- result --------------------------------------------------------------------------
    def finish(self) -> list[SpanRecord]:
        for agent in list(self.turns):
            self.close(agent, self.turns[agent].span.end_ns)
        if not self.started:
            self.root.start_ns = self.first_ns or 0
        common: dict[str, Any] = {"gen_ai.conversation.id": self.sid, "troupe.session_id": self.sid,
                                  "troupe.run_id": self.run_id}
        if self.team:
            common["troupe.team"] = self.team
        if not self.finished:
            common["troupe.partial"] = True  # exported before the session ended
        for span in self.spans:
            self.root.end_at_least(span.end_ns)
            for key, value in common.items():
                span.attributes.setdefault(key, value)
        return self.spans


def session_spans(events: Iterable[Event], *, capture_content: bool = False,
                  policy: ContentPolicy | None = None) -> list[SpanRecord]:
    """The spans of one session's events (the first event's session; rows of others are skipped).

    Events are taken in time order (ties keep their given order). Contents are exported only with
    ``capture_content`` (or a ``policy`` that captures), redacted.
    """
    rows = sorted(events, key=lambda e: e.ts)
    if not rows:
        return []
    mapper = _SessionMapper(rows[0].session_id, rows[0].run_id, policy or ContentPolicy(capture=capture_content))
    for event in rows:
        if event.session_id == mapper.sid:
            mapper.add(event)
    return mapper.finish()


def spans_by_session(events: Iterable[Event], *, capture_content: bool = False) -> dict[str, list[SpanRecord]]:
    """:func:`session_spans` of every session among ``events``, by session id."""
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.session_id, []).append(event)
    return {sid: session_spans(rows, capture_content=capture_content) for sid, rows in grouped.items()}


__all__ = ["session_spans", "spans_by_session"]
