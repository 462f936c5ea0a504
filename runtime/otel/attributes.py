"""What of an event goes into span attributes: ids, names and figures always; message contents
(prompts, replies, tool arguments and results, task goals and outputs, blackboard values) only
when the export opts in, redacted as the lake is.

Fields are listed per event type (an allow-list): a field added to a payload later is not exported
until it is listed here, so a new content field cannot leak by default.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from troupe.runtime.otel.spans import AttributeValue
from troupe.runtime.redact import redact, redact_text

DEFAULT_MAX_CONTENT_CHARS: Final = 4000
"""A content attribute longer than this is cut (the lake keeps 2,000 characters of most texts)."""
MAX_DIAGNOSTIC_CHARS: Final = 500
"""Error messages (always exported, redacted) are cut to this."""

EVENT_FIELDS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    # type: (fields always exported, content fields exported only when opted in)
    "message.delivered": (("id", "sender", "kind"), ("content",)),
    "message.sent": (("id", "to", "topic", "kind"), ("content",)),
    "task.created": (("assignee", "parent_id"), ("goal", "input")),
    "task.status": (("from", "to", "assignee", "previous_assignee", "cancelled_with", "artifacts"), ("output", "error")),
    "blackboard.put": (("key", "version", "kind", "author", "value_truncated", "ttl_s", "taint"), ("value", "provenance")),
    "blackboard.expired": (("key", "version", "author", "expires_at"), ()),
    "context.compacted": (("removed_messages", "tokens_before", "tokens_after", "clipped_messages", "reason"), ()),
    "agent.spawned": (("parent", "tools", "model"), ()),
    "agent.error": (("type",), ()),
    "guardrail.denied": (("id", "reason", "approval_id"), ("error",)),
    "approval.requested": (("id", "tool", "call_id", "timeout_s"), ("arguments",)),
    "approval.decided": (("id", "approved", "by", "reason", "call_id"), ()),
    "session.resumed": (("usage",), ()),
    "budget.exceeded": (("budget", "limit", "usage"), ()),
    "turn.finished": (("turn", "usage"), ("input", "reply")),
    "actor.restored": (("seq", "kind", "saved_at", "replays_turn", "unread", "unsent"), ()),
    "tool.progress": (("id", "progress", "total"), ("message",)),
    "environment.opened": (("fixture", "servers"), ("setup",)),
    "environment.captured": ((), ("teardown",)),
    "workspace.snapshot": (("snapshot", "seq", "reason", "files", "bytes_total", "bytes_new"), ()),
    "workspace.rollback": (("to", "replaced", "snapshot", "added", "removed", "changed", "by", "live"), ()),
}
"""Span events: which payload fields become ``troupe.<field>`` attributes. A type not listed here
(and not turned into a span of its own) becomes an event with its envelope's attributes only."""


@dataclass(frozen=True)
class ContentPolicy:
    """Whether message contents are exported, and how long each may be."""

    capture: bool = False
    max_chars: int = DEFAULT_MAX_CONTENT_CHARS

    def text(self, value: Any) -> str | None:
        """``value`` as redacted text for a content attribute, or ``None`` when contents are off."""
        if not self.capture or value is None:
            return None
        text = value if isinstance(value, str) else json.dumps(redact(value), ensure_ascii=False, default=str)
        text = redact_text(text)
        return text if len(text) <= self.max_chars else text[: self.max_chars - 1] + "…"


def diagnostic(text: Any) -> str:
    """An error message as exported: redacted and cut to :data:`MAX_DIAGNOSTIC_CHARS`."""
    out = redact_text(str(text))
    return out if len(out) <= MAX_DIAGNOSTIC_CHARS else out[: MAX_DIAGNOSTIC_CHARS - 1] + "…"


def scalar(value: Any) -> AttributeValue | None:
    """``value`` as an attribute value: scalars as they are, lists of one scalar type as lists,
    other values as JSON text; ``None`` for null or an empty list."""
    if value is None:
        return None
    if isinstance(value, (str, bool, int, float)):
        return redact_text(value) if isinstance(value, str) else value
    if isinstance(value, list):
        if not value:
            return None
        if all(isinstance(v, str) for v in value):
            return [redact_text(v) for v in value]
        if all(isinstance(v, bool) for v in value):
            return list(value)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return list(value)
    return redact_text(json.dumps(redact(value), ensure_ascii=False, default=str, sort_keys=True))


def put(attributes: dict[str, AttributeValue], key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is null (attributes have no null)."""
    converted = scalar(value)
    if converted is not None:
        attributes[key] = converted


def usage_attributes(prefix: str, usage: Any) -> dict[str, AttributeValue]:
    """``usage`` dicts (``tokens``, ``llm_calls``, ``tool_calls``) flattened under ``prefix``."""
    if not isinstance(usage, Mapping):
        return {}
    return {f"{prefix}.{k}": v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)}


def event_attributes(event_type: str, data: Mapping[str, Any], policy: ContentPolicy) -> dict[str, AttributeValue]:
    """The payload attributes of a span event for ``event_type`` (see :data:`EVENT_FIELDS`)."""
    plain, content = EVENT_FIELDS.get(event_type, ((), ()))
    out: dict[str, AttributeValue] = {}
    for name in plain:
        if name == "usage":
            out.update(usage_attributes("troupe.usage", data.get(name)))
        elif name in data:
            put(out, f"troupe.{name}", data[name])
    for name in content:
        text = policy.text(data.get(name))
        if text is not None:
            out[f"troupe.{name}"] = text
    return out


__all__ = [
    "DEFAULT_MAX_CONTENT_CHARS",
    "EVENT_FIELDS",
    "ContentPolicy",
    "diagnostic",
    "event_attributes",
    "put",
    "scalar",
    "usage_attributes",
]
