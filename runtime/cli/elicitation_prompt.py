"""The CLI's side of MCP elicitation: answer ``elicitation.requested`` events from a terminal prompt or a flag.

A form shows the server's message, then asks each field in turn (its title, description, type, choices and
default; an empty line takes the default or leaves an optional field out); a URL request shows the URL and
asks whether it was done. ``--approve yes`` accepts with the form's defaults, ``--approve no`` declines. A
misfit answer is refused by the session with what is wrong, and the prompt asks again (three tries).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TextIO

from troupe.runtime.errors import ConfigError

TRIES = 3


def _coerce(text: str, prop: dict[str, Any]) -> Any:
    kind = prop.get("type")
    if kind == "boolean":
        return text.lower() in ("y", "yes", "true", "1")
    if kind == "integer":
        return int(text)
    if kind == "number":
        return float(text)
    if kind == "array":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _field_line(name: str, prop: dict[str, Any], required: bool) -> str:
    title = prop.get("title") or name
    bits = [str(prop.get("type") or "string")]
    choices = prop.get("enum") or [o.get("const") for o in prop.get("oneOf") or () if isinstance(o, dict)]
    if choices:
        bits.append("one of " + ", ".join(map(str, choices)))
    if "default" in prop:
        bits.append(f"default {json.dumps(prop['default'])}")
    if not required:
        bits.append("optional")
    desc = f" - {prop['description']}" if prop.get("description") else ""
    return f"[input]   {title}{desc} ({'; '.join(bits)}): "


async def prompt_elicitation(session: Any, req: dict[str, Any], mode: str, read_line: Callable[[], str],
                             out: TextIO) -> None:
    """Answer one ``elicitation.requested`` event's data ``req`` through ``session.answer_elicitation``."""
    answer = getattr(session, "answer_elicitation", None)
    if answer is None:  # a client that cannot answer (the request is declined on its timeout)
        return
    if req["id"] not in {p["id"] for p in await session.elicitations()}:
        return  # the team's policy answered it already
    if mode == "yes":
        await answer(req["id"], "accept", {}, "accepted with the form's defaults by --approve yes")
        return
    if mode == "no":
        await answer(req["id"], "decline", None, "declined by --approve no")
        return
    out.write(f"\n[input] MCP server {req.get('server')!r} asks: {req.get('message')}\n")
    if req.get("mode") == "url":
        out.write(f"[input] open {req.get('url')} ; done? [y/N] (declined after {req.get('timeout_s') or 0:g}s) ")
        out.flush()
        done = (await asyncio.to_thread(read_line)).strip().lower() in ("y", "yes")
        await answer(req["id"], "accept" if done else "decline", None, "at the prompt")
        return
    out.write("[input] answer? [y/N] ")
    out.flush()
    if (await asyncio.to_thread(read_line)).strip().lower() not in ("y", "yes"):
        await answer(req["id"], "decline", None, "declined at the prompt")
        return
    schema = req.get("requested_schema") or {}
    required = set(schema.get("required") or ())
    for _ in range(TRIES):
        content: dict[str, Any] = {}
        for name, prop in (schema.get("properties") or {}).items():
            out.write(_field_line(name, prop, name in required))
            out.flush()
            text = (await asyncio.to_thread(read_line)).strip()
            if text:
                try:
                    content[name] = _coerce(text, prop)
                except ValueError:
                    content[name] = text  # the session says what is wrong
        try:
            await answer(req["id"], "accept", content, "answered at the prompt")
            return
        except ConfigError as e:
            out.write(f"[input] {e}\n")
    await answer(req["id"], "decline", None, f"no valid answer at the prompt in {TRIES} tries")


__all__ = ["prompt_elicitation"]
