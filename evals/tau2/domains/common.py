"""What every τ² domain shares: the tool error, the two stateless tools, and the db's fingerprint."""

from __future__ import annotations

import hashlib
import json
from typing import Any

Db = dict[str, Any]


class TauToolError(Exception):
    """A tool refused the call (the model sees the message; the db is left as it was)."""


def calculate(db: Db, expression: str) -> str:
    """Calculate the result of a mathematical expression.

    Args:
        expression: The mathematical expression to calculate, such as '2 + 2'. The expression can
            contain numbers, operators (+, -, *, /), parentheses, and spaces.
    """
    if not all(ch in "0123456789+-*/(). " for ch in expression):
        raise TauToolError("Invalid characters in expression")
    try:
        value = eval(expression, {"__builtins__": {}}, {})  # only digits and operators reach here
    except Exception as e:
        raise TauToolError(f"Invalid expression: {e}") from e
    return str(round(float(value), 2))


def transfer_to_human_agents(db: Db, summary: str) -> str:
    """Transfer the user to a human agent, with a summary of the user's issue. Only transfer if the
    user explicitly asks for a human agent, or the user's issue cannot be resolved by the agent with
    the available tools.

    Args:
        summary: A summary of the user's issue.
    """
    return "Transfer successful"


def _normal(value: Any) -> Any:
    """Numbers compared as τ²'s pydantic models compare them: 100 and 100.0 are one value."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, float):
        rounded = round(value, 6)
        return int(rounded) if rounded.is_integer() else rounded
    return value


def db_hash(db: Db) -> str:
    """A fingerprint of the whole db: equal dbs (up to key order, int/float spelling and unset
    optional fields) hash equal."""
    text = json.dumps(_normal(db), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def dump(value: Any) -> str:
    """A tool's JSON answer."""
    return json.dumps(value, separators=(", ", ": "))


__all__ = ["Db", "TauToolError", "calculate", "db_hash", "dump", "transfer_to_human_agents"]
