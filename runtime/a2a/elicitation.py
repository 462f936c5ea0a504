"""An MCP server's request for input (``elicitation.requested``) put to the A2A client, and its answer read back.

The task waiting for it is ``input-required``; its status message says the server's question in a text part
(with the form's fields: name, type, required or default) and describes the form in a data part (the fields,
the ``requested_schema``, how to answer). The client's next message on that task answers (:func:`read_reply`):

- a data part ``{"action": "accept", "content": {...}}`` (or ``"decline"``/``"cancel"``), or just the content
  object (``{"name": "Ada"}``: accepted); its ``reason``, if any, is recorded;
- else the words of its text parts: ``decline`` or ``cancel``; ``accept`` (``ok``, ``yes``, ``done``) accepts
  with the form's defaults (a URL request: the client has been to the URL); a JSON object is the content.

A form's content gets its schema's defaults and is checked against the schema here; a misfit (or a message that
is no answer) is not sent to the session: the task asks again, saying what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from a2a.helpers import get_message_text
from a2a.types import Message, Part
from google.protobuf.json_format import MessageToDict

from troupe.runtime.events import Event
from troupe.tools.mcp.elicitation import apply_defaults, validation_errors

ACTIONS = ("accept", "decline", "cancel")
ACCEPT_WORDS = frozenset({"accept", "accepted", "ok", "yes", "y", "done"})
PROP_KEYS = ("title", "description", "default", "enum", "format", "minimum", "maximum", "minLength", "maxLength")
"""What a field's description keeps of its JSON-schema property."""


@dataclass
class Asked:
    """An elicitation a task waits for: what the A2A client was told, and how to check its answer."""

    id: str
    mode: str
    schema: dict[str, Any] | None
    line: str
    """The text part: the question, the fields, how to answer."""
    form: dict[str, Any]
    """The data part: the request and its form, for programs."""

    def parts(self, problem: str = "") -> list[Part]:
        """The ``input-required`` message's parts (``problem``: why the last answer was not taken)."""
        data = {**self.form, **({"problem": problem} if problem else {})}
        part = Part()
        part.data.struct_value.update(data)
        part.media_type = "application/json"
        text = f"{problem}; answer again. {self.line}" if problem else self.line
        return [Part(text=text), part]


@dataclass
class Reply:
    """The client's answer: an action, the form's values (``accept`` of a form), what it said (for the record,
    never the values), or ``problem``: it is no answer, and why."""

    action: str = "decline"
    content: dict[str, Any] | None = None
    said: str = ""
    problem: str = ""


def fields(schema: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The form's fields in order: ``name``, ``type``, ``required``, and what the property says of itself."""
    schema = schema or {}
    required = set(schema.get("required") or ())
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        prop = prop if isinstance(prop, dict) else {}
        out.append({"name": name, "type": prop.get("type", "string"), "required": name in required,
                    **{k: prop[k] for k in PROP_KEYS if k in prop}})
    return out


def _field_line(field: dict[str, Any]) -> str:
    how = [str(field["type"])]
    if field["required"]:
        how.append("required")
    if "default" in field:
        how.append(f"default {json.dumps(field['default'])}")
    if "enum" in field:
        how.append("one of " + "/".join(map(str, field["enum"])))
    return f"{field['name']} ({', '.join(how)})"


def elicitation_request(event: Event) -> Asked:
    """What to ask the A2A client for an ``elicitation.requested`` event."""
    p = event.data
    mode, schema = str(p.get("mode") or "form"), p.get("requested_schema")
    who = f"MCP server {p.get('server') or '?'!r} (in {event.agent or '?'}'s call of {event.tool or '?'})"
    form: dict[str, Any] = {"elicitation_id": str(p.get("id") or ""), "agent": event.agent or "",
                            "tool": event.tool or "", "server": p.get("server") or "", "mode": mode,
                            "message": p.get("message") or "", "timeout_s": p.get("timeout_s")}
    if mode == "url":
        form["url"] = p.get("url") or ""
        line = (f"{who} asks: {p.get('message')}; open {p.get('url')}, then answer 'accept' when done, "
                "or 'decline' or 'cancel'")
        form["answer"] = {"action": "accept | decline | cancel"}
    else:
        found = fields(schema)
        form["fields"], form["requested_schema"] = found, schema or {}
        listed = "; ".join(map(_field_line, found)) or "none"
        line = (f"{who} asks: {p.get('message')}; fields: {listed}. Answer with a data part "
                '{"action": "accept", "content": {...the fields...}} (or just the fields), or "decline" or "cancel"')
        form["answer"] = {"action": "accept | decline | cancel",
                          "content": "object: the fields (for accept; an omitted field takes its default)"}
    return Asked(id=form["elicitation_id"], mode=mode, schema=schema, line=line, form=form)


def _integers(schema: dict[str, Any] | None, content: dict[str, Any]) -> dict[str, Any]:
    """A data part's numbers are doubles (protobuf ``Struct``): ``2.0`` back to ``2`` for an integer field."""
    props = (schema or {}).get("properties") or {}
    out = dict(content)
    for name, value in content.items():
        if (props.get(name) or {}).get("type") == "integer" and isinstance(value, float) and value.is_integer():
            out[name] = int(value)
    return out


def _from_data(data: dict[str, Any], text: str) -> Reply:
    action = data.get("action")
    reason = str(data.get("reason") or "")
    if action is None:  # just the form's values
        values = {k: v for k, v in data.items() if k != "reason"}
        return Reply("accept", values, reason or text or "a data part with the form's values")
    if action not in ACTIONS:
        return Reply(problem=f"the data part's action {action!r} is none of {', '.join(ACTIONS)}")
    content = data.get("content")
    if content is not None and not isinstance(content, dict):
        return Reply(problem="the data part's content is not an object of the form's fields")
    return Reply(str(action), content if action == "accept" else None, reason or text or f"a data part: {action}")


def read_reply(message: Message, asked: Asked) -> Reply:
    """The client's answer to ``asked`` (see the module); an accepted form is checked and has its defaults."""
    text = get_message_text(message).strip()
    reply: Reply | None = None
    for part in message.parts:
        if part.WhichOneof("content") == "data" and isinstance(data := MessageToDict(part)["data"], dict):
            reply = _from_data(data, text)
            break
    if reply is None:
        word = text.lower().rstrip(".!")
        if word in ("decline", "cancel"):
            reply = Reply(word, None, text)
        elif word in ACCEPT_WORDS:
            reply = Reply("accept", {}, text)
        elif text.startswith("{"):
            try:
                values = json.loads(text)
            except ValueError:
                values = None
            reply = (Reply("accept", values, "a JSON object with the form's values") if isinstance(values, dict)
                     else Reply(problem="the text is not a JSON object of the form's fields"))
        else:
            reply = Reply(problem=f"{text[:100]!r} is not an answer (a data part, 'accept', 'decline' or 'cancel')")
    if reply.problem or reply.action != "accept":
        return reply
    if asked.mode == "url":
        reply.content = None
        return reply
    reply.content = apply_defaults(asked.schema, _integers(asked.schema, reply.content or {}))
    if errors := validation_errors(asked.schema, reply.content):
        return Reply(problem="the answer does not fit the form: " + "; ".join(errors))
    return reply


__all__ = ["ACCEPT_WORDS", "ACTIONS", "Asked", "Reply", "elicitation_request", "fields", "read_reply"]
