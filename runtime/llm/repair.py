"""Tool-call arguments a model wrote almost as JSON, repaired when the fix is unambiguous."""

from __future__ import annotations

import ast
import json
import re

_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def repair_arguments(text: str) -> str:
    """Tool-call arguments as the model wrote them, or a repaired JSON object when the repair is
    unambiguous: empty -> ``{}``, a fenced block, trailing text after a complete object, a Python
    literal (single quotes, ``True``). Cut-off JSON is left alone (completing it would run a tool on
    half its input): the call then gets a model-visible error and the model writes it again."""
    if not text.strip():
        return "{}"
    try:
        json.loads(text)
        return text
    except ValueError:
        pass
    candidate = text.strip()
    if fenced := _FENCE.match(candidate):
        candidate = fenced.group(1)
    try:
        value, end = json.JSONDecoder().raw_decode(candidate)
        if isinstance(value, dict) and candidate[end:].strip(" \n\t}") == "":
            return json.dumps(value, ensure_ascii=False)
    except ValueError:
        pass
    try:
        value = ast.literal_eval(candidate)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            return text
    return text


__all__ = ["repair_arguments"]
