"""The CLI's side of approvals: answer ``approval.requested`` events from a terminal prompt or a flag (and
MCP servers' ``elicitation.requested``: :mod:`troupe.runtime.cli.elicitation_prompt`)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TextIO

from troupe.runtime.cli.elicitation_prompt import prompt_elicitation
from troupe.runtime.events import Event


class ApproveMode(StrEnum):
    ASK = "ask"
    """Prompt on the terminal for each call."""
    YES = "yes"
    """Approve every call (trusted runs)."""
    NO = "no"
    """Deny every call."""


class ApprovalPrompt:
    def __init__(self, session: Any, mode: ApproveMode, *, read_line: Callable[[], str] | None = None,
                 out: TextIO = sys.stderr) -> None:
        self.session = session
        self.mode = mode
        self.read_line = read_line or sys.stdin.readline
        self.out = out

    async def __call__(self, event: Event) -> None:
        if event.type == "elicitation.requested":
            await prompt_elicitation(self.session, event.data, self.mode.value, self.read_line, self.out)
            return
        if event.type != "approval.requested":
            return
        req = event.data
        if self.mode is ApproveMode.YES:
            await self.session.approve(req["id"], "approved by --approve yes")
            return
        if self.mode is ApproveMode.NO:
            await self.session.deny(req["id"], "denied by --approve no")
            return
        self.out.write(f"\n[approval] agent {req['agent']!r} wants to call {req['tool']}({req['arguments']})\n"
                       f"{risk_lines(req.get('risk'))}"
                       f"[approval] allow? [y/N] (denied after {req['timeout_s']:g}s) ")
        self.out.flush()
        answer = await asyncio.to_thread(self.read_line)
        if answer.strip().lower() in ("y", "yes"):
            await self.session.approve(req["id"], "approved at the prompt")
        else:
            await self.session.deny(req["id"], "denied at the prompt")


def risk_lines(risk: dict[str, Any] | None) -> str:
    """The prompt's lines about a call's risk score and its reasons (nothing when it was not scored)."""
    if not risk:
        return ""
    lines = [f"[approval] risk score {risk.get('score')} ({risk.get('decision', 'ask')})\n"]
    lines += [f"[approval]   - {reason}\n" for reason in risk.get("reasons") or ()]
    return "".join(lines)


def default_mode(flag: str | None) -> ApproveMode:
    """``--approve`` when given; otherwise ask on a terminal, deny when nobody can answer."""
    if flag:
        return ApproveMode(flag)
    return ApproveMode.ASK if sys.stdin.isatty() else ApproveMode.NO


__all__ = ["ApprovalPrompt", "ApproveMode", "default_mode", "risk_lines"]
