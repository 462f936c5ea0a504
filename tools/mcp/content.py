"""Render MCP results as the text a model reads, plus small summaries for the event log.

Models read text: binary blocks become one descriptive line (mime type and size, never base64),
embedded resources show their URI before their text, and structured content is added as compact
JSON only when the text blocks do not already say the same thing (most servers send both).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from mcp import types as mt

from troupe.runtime.llm.types import TOOL_ERROR_PREFIX
from troupe.tools.mcp.models import McpCallResult

MAX_TEXT_CHARS = 16_000
"""Cap on the text one result gives the model; the rest is cut with a note that says how much."""


def b64_size(data: str) -> int:
    """Decoded size of base64 ``data`` without decoding it."""
    stripped = data.strip().rstrip("=")
    return len(stripped) * 3 // 4


def cap_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[truncated: {len(text) - limit:,} more characters]"


def _resource_contents(contents: mt.TextResourceContents | mt.BlobResourceContents) -> tuple[list[str], dict[str, Any]]:
    mime = contents.mime_type or "unknown type"
    lines = [f"[resource {contents.uri} ({mime})]"]
    summary: dict[str, Any] = {"type": "resource", "uri": contents.uri, "mime_type": contents.mime_type}
    if isinstance(contents, mt.TextResourceContents):
        lines.append(contents.text)
        summary["chars"] = len(contents.text)
    else:
        size = b64_size(contents.blob)
        lines.append(f"[blob {size:,} bytes]")
        summary["bytes"] = size
    return lines, summary


SUCCESS_NOTE = "[the tool succeeded; its output follows]"
"""Put before a successful result whose text starts like Troupe's own error prefix, so the model does not
read a server's ``Error: ...`` text (a log line, a quoted message) as a failed call."""


def annotations_of(block: Any) -> dict[str, Any] | None:
    """A block's annotations (``audience``, ``priority``, ``last_modified``) as JSON, if it has any."""
    ann = getattr(block, "annotations", None)
    if ann is None:
        return None
    data = ann.model_dump(mode="json", exclude_none=True)
    return data or None


def for_user_only(annotations: dict[str, Any] | None) -> bool:
    """A block annotated for the user and not the assistant: the model is told it exists, not its text."""
    audience = (annotations or {}).get("audience") or []
    return bool(audience) and "assistant" not in audience


def render_block(block: Any) -> tuple[list[str], dict[str, Any]]:
    """The lines one content block adds to the model's text, and its summary (with its annotations)."""
    lines, summary = _render_block(block)
    annotations = annotations_of(block)
    if annotations is not None:
        summary["annotations"] = annotations
        if for_user_only(annotations):
            lines = [f"[{summary.get('type', 'content')} for the user only, not shown here]"]
    return lines, summary


def _render_block(block: Any) -> tuple[list[str], dict[str, Any]]:
    if isinstance(block, mt.TextContent):
        return [block.text], {"type": "text", "chars": len(block.text)}
    if isinstance(block, (mt.ImageContent, mt.AudioContent)):
        size = b64_size(block.data)
        return [f"[{block.type} {block.mime_type}, {size:,} bytes]"], {
            "type": block.type, "mime_type": block.mime_type, "bytes": size}
    if isinstance(block, mt.EmbeddedResource):
        return _resource_contents(block.resource)
    if isinstance(block, mt.ResourceLink):
        label = f"[resource link {block.uri}]"
        if block.description or block.name:
            label += f" {block.name}" + (f": {block.description}" if block.description else "")
        return [label], {"type": "resource_link", "uri": block.uri, "name": block.name, "mime_type": block.mime_type}
    kind = getattr(block, "type", type(block).__name__)
    return [f"[{kind} content]"], {"type": str(kind)}


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None


def _carried(structured: Any, texts: Sequence[str]) -> bool:
    """Whether the text blocks already say what ``structured`` says.

    Servers usually send both: the JSON itself (``{"sum": 3}`` and its text dump), or a one-key
    wrapper around the text (``{"result": "..."}``, ``{"content": "..."}``).
    """
    joined = "\n".join(texts).strip()
    if not joined:
        return False
    candidates = [structured]
    if isinstance(structured, dict) and len(structured) == 1:
        candidates.append(next(iter(structured.values())))
    parsed = _json_or_none(joined)
    for value in candidates:
        if isinstance(value, str) and value.strip() == joined:
            return True
        if parsed is not None and parsed == value:
            return True
        if any(_json_or_none(t) == value for t in texts if t.strip()):
            return True
    return False


def _as_object(structured: Any) -> dict[str, Any] | None:
    if structured is None:
        return None
    return structured if isinstance(structured, dict) else {"result": structured}


def render_call_result(result: mt.CallToolResult) -> McpCallResult:
    """A tool call's result as :class:`McpCallResult` (progress and sampling are filled by the caller)."""
    lines: list[str] = []
    blocks: list[dict[str, Any]] = []
    texts: list[str] = []
    for block in result.content:
        block_lines, summary = render_block(block)
        lines.extend(block_lines)
        blocks.append(summary)
        if isinstance(block, mt.TextContent) and not for_user_only(summary.get("annotations")):
            texts.append(block.text)
    structured = result.structured_content
    if structured is not None and not _carried(structured, texts):
        lines.append(json.dumps(structured, ensure_ascii=False, separators=(",", ":"), default=str))
    text = "\n".join(lines)
    if not text and result.is_error:
        text = "the tool reported an error without a message"
    if not result.is_error and text.lstrip().lower().startswith(TOOL_ERROR_PREFIX.strip().lower()):
        text = f"{SUCCESS_NOTE}\n{text}"
    return McpCallResult(text=cap_text(text), is_error=result.is_error, structured=_as_object(structured), blocks=blocks)


def render_resource_read(result: mt.ReadResourceResult) -> McpCallResult:
    lines: list[str] = []
    blocks: list[dict[str, Any]] = []
    for contents in result.contents:
        block_lines, summary = _resource_contents(contents)
        lines.extend(block_lines)
        blocks.append(summary)
    return McpCallResult(text=cap_text("\n".join(lines) or "(the resource is empty)"), blocks=blocks)


def render_resource_list(resources: Iterable[mt.Resource],
                         templates: Iterable[mt.ResourceTemplate] = ()) -> McpCallResult:
    lines = []
    for r in resources:
        line = f"{r.uri} - {r.title or r.name}"
        if r.mime_type:
            line += f" ({r.mime_type})"
        if r.description:
            line += f": {r.description}"
        lines.append(line)
    shapes = [f"{t.uri_template} - {t.title or t.name}" + (f": {t.description}" if t.description else "")
              for t in templates]
    if shapes:  # read with read_resource(uri=<the template>, arguments={...})
        lines += ["", "Resource templates (read_resource with the template as uri and its {placeholders} in arguments):",
                  *shapes]
    return McpCallResult(text=cap_text("\n".join(lines) or "(no resources)"))


def render_completion(result: mt.CompleteResult) -> McpCallResult:
    """A completion's values, one a line, and whether there are more."""
    done = result.completion
    more = f"\n({done.total} in all)" if done.total and done.total > len(done.values) else ""
    more += "\n(more values exist)" if done.has_more and not more else ""
    return McpCallResult(text=cap_text("\n".join(done.values) or "(no suggestions)") + more,
                         structured={"values": list(done.values), "total": done.total, "has_more": done.has_more})


def render_prompt_list(prompts: Iterable[mt.Prompt]) -> McpCallResult:
    lines = []
    for p in prompts:
        args = ", ".join(a.name + ("" if a.required else "?") for a in p.arguments or [])
        line = f"{p.name}({args})"
        if p.description:
            line += f": {p.description}"
        lines.append(line)
    return McpCallResult(text=cap_text("\n".join(lines) or "(no prompts)"))


def render_prompt(result: mt.GetPromptResult) -> McpCallResult:
    lines: list[str] = []
    blocks: list[dict[str, Any]] = []
    if result.description:
        lines.append(f"[prompt] {result.description}")
    for message in result.messages:
        block_lines, summary = render_block(message.content)
        lines.append(f"{message.role}: " + "\n".join(block_lines))
        blocks.append({**summary, "role": message.role})
    return McpCallResult(text=cap_text("\n".join(lines)), blocks=blocks)


__all__ = [
    "MAX_TEXT_CHARS",
    "SUCCESS_NOTE",
    "annotations_of",
    "b64_size",
    "cap_text",
    "for_user_only",
    "render_block",
    "render_call_result",
    "render_prompt",
    "render_prompt_list",
    "render_resource_list",
    "render_resource_read",
]
