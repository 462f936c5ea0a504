"""A team whose one agent calls the repo's MCP test server's ``book`` tool, which asks the user a form
(``name``: string, required; ``seats``: integer, default 2) through MCP elicitation; the reply is the tool's
result. For the server, client, CLI and console tests of answering elicitations from outside the process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.mcp_servers import stdio_config


def booking_team(name: str = "booking", *, timeout_s: float = 30.0) -> dict[str, Any]:
    server = stdio_config(elicitation_timeout_s=timeout_s).model_dump(mode="json", exclude_defaults=True)
    return {"name": name, "entry": "lead", "default_model": "m", "placement": "packed",
            "mcpServers": {"own": server},
            "models": {"m": {"provider": "scripted", "scripts": {"lead": [
                {"tool_calls": [{"name": "own__book", "arguments": {}}]}, {"text": "done"}]}}},
            "agents": [{"id": "lead", "role": "books a table", "tools": ["own__book"], "permissions": {"level": "L2"}}]}


def write_booking_team(teams: Path, name: str = "booking", **kw: Any) -> Path:
    """``teams/<name>/team.yaml``; returns its path."""
    path = teams / name / "team.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(booking_team(name, **kw)))
    return path


__all__ = ["booking_team", "write_booking_team"]
