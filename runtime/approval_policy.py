"""Approval policies: tool calls that need approval, decided by rules instead of a person.

A team (or ``troupe eval run --approve``, which sets it on every sample's team) may carry an
:class:`ApprovalPolicy`. The session's supervisor consults it when a gated call asks for approval:
the first rule that matches decides (``approval.decided`` with ``by: policy``); when none matches,
``default`` decides, and ``default: ask`` leaves the call to the client as without a policy.

.. code-block:: yaml

    default: no            # yes | no | ask
    rules:
      - tool: "files__read_*"        # a tool name or a glob (fnmatch)
        decision: yes
      - tool: bank__transfer
        when: {currency: [EUR, USD]} # every named argument equals one of these values
        decision: yes
      - tool: send_email
        risk_at_least: 70            # the call's risk score (``risk:`` in the team file)
        decision: no
      - tool: "*"
        decision: no
        reason: nothing else in the sweep

``elicitation:`` rules answer MCP servers' elicitation requests (``server``/``message`` globs; ``action``
accept with ``content``, decline, cancel or ask); a request no rule matches follows ``default`` (yes: accept
with the form's defaults, no: decline, ask: the client).

``risk_at_least`` / ``risk_below`` match on the call's risk score (0-100, the one ``approval.requested``
carries); a rule with either never matches a call that was not scored.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from troupe.runtime.errors import ConfigError

Decision = Literal["yes", "no"]


def _yes_no(v: Any) -> Any:
    """YAML reads a bare ``yes``/``no`` as a boolean: take it back."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    return v


class ApprovalRule(BaseModel):
    """One rule: a tool name (or glob), optionally argument values, and the decision."""

    model_config = ConfigDict(extra="forbid")

    tool: str = "*"
    """A tool name as the agent calls it (``server__tool`` for MCP tools) or an fnmatch glob."""
    when: dict[str, list[Any]] = Field(default_factory=dict)
    """Argument name -> acceptable values (a plain value is a one-value list); every one named must
    match. Arguments that are not valid JSON never match a rule with ``when``."""
    risk_at_least: int | None = Field(default=None, ge=0, le=100)
    """Matches only a call whose risk score is at least this (never an unscored call)."""
    risk_below: int | None = Field(default=None, ge=0, le=101)
    """Matches only a call whose risk score is below this (never an unscored call)."""
    decision: Decision
    reason: str = ""
    """Recorded with the decision (default: which rule decided)."""

    _decision = field_validator("decision", mode="before")(_yes_no)

    @field_validator("when", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (x if isinstance(x, list) else [x]) for k, x in v.items()}
        return v

    def matches(self, tool: str, arguments: dict[str, Any] | None, risk: int | None = None) -> bool:
        if not fnmatch.fnmatchcase(tool, self.tool):
            return False
        if self.risk_at_least is not None and (risk is None or risk < self.risk_at_least):
            return False
        if self.risk_below is not None and (risk is None or risk >= self.risk_below):
            return False
        if not self.when:
            return True
        if arguments is None:
            return False
        return all(name in arguments and arguments[name] in values for name, values in self.when.items())


class ElicitationRule(BaseModel):
    """How an MCP server's elicitation request (input asked of the user during a tool call) is answered
    without asking anyone: ``accept`` with ``content`` (the form's defaults fill in the rest), ``decline`` or
    ``cancel``; ``ask`` leaves it to the client."""

    model_config = ConfigDict(extra="forbid")

    server: str = "*"
    """The MCP server's name in the team file, or an fnmatch glob."""
    message: str = "*"
    """An fnmatch glob on the server's message (case-insensitive)."""
    action: Literal["accept", "decline", "cancel", "ask"]
    content: dict[str, Any] = Field(default_factory=dict)
    """The values an ``accept`` answers with (checked against the form's schema: a misfit is declined)."""
    reason: str = ""

    def matches(self, server: str, message: str) -> bool:
        return fnmatch.fnmatchcase(server, self.server) and fnmatch.fnmatch(message.lower(), self.message.lower())


class ApprovalPolicy(BaseModel):
    """Rules in order (the first match decides), then ``default``."""

    model_config = ConfigDict(extra="forbid")

    default: Literal["yes", "no", "ask"] = "no"
    """What a call no rule matches gets; ``ask`` waits for the client as without a policy."""
    rules: list[ApprovalRule] = Field(default_factory=list)
    elicitation: list[ElicitationRule] = Field(default_factory=list)
    """How MCP servers' elicitation requests are answered (the first match decides); a request no rule
    matches follows ``default``: ``yes`` accepts with the form's defaults, ``no`` declines, ``ask`` asks."""

    def elicit(self, server: str, message: str) -> tuple[str, dict[str, Any], str] | None:
        """``(action, content, reason)`` for an elicitation request from ``server``, or None to ask the client."""
        for i, rule in enumerate(self.elicitation):
            if rule.matches(server, message):
                if rule.action == "ask":
                    return None
                return rule.action, dict(rule.content), rule.reason or f"approval policy elicitation rule {i}: {rule.action}"
        if self.default == "ask":
            return None
        return ("accept" if self.default == "yes" else "decline"), {}, f"approval policy default: {self.default}"

    _default = field_validator("default", mode="before")(_yes_no)

    def decide(self, tool: str, arguments: str, risk: int | None = None) -> tuple[bool, str] | None:
        """``(approved, reason)`` for a call of ``tool`` with ``arguments`` (JSON text) and its risk
        score (``None``: not scored), or None to ask."""
        try:
            parsed = json.loads(arguments) if arguments else {}
        except json.JSONDecodeError:
            parsed = None
        args = parsed if isinstance(parsed, dict) else None
        for i, rule in enumerate(self.rules):
            if rule.matches(tool, args, risk):
                return rule.decision == "yes", rule.reason or f"approval policy rule {i} ({rule.tool!r}{_risk_text(rule)}): {rule.decision}"
        if self.default == "ask":
            return None
        return self.default == "yes", f"approval policy default: {self.default}"


def _risk_text(rule: ApprovalRule) -> str:
    parts = [f"risk >= {rule.risk_at_least}" if rule.risk_at_least is not None else "",
             f"risk < {rule.risk_below}" if rule.risk_below is not None else ""]
    return "".join(f", {p}" for p in parts if p)


def load_approval_policy(path: str | Path) -> ApprovalPolicy:
    """An :class:`ApprovalPolicy` from a YAML file, with errors that name the file and the field."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"approval policy {p} does not exist; pass yes, no or a policy YAML file", source=str(p))
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"approval policy {p}: not valid YAML: {e}", source=str(p)) from e
    try:
        return ApprovalPolicy.model_validate(data or {})
    except ValidationError as e:
        lines = [f"  - {'.'.join(map(str, x['loc'])) or '(top level)'}: {x['msg']}" for x in e.errors()]
        raise ConfigError("\n".join([f"invalid approval policy {p}:", *lines]), source=str(p)) from e


__all__ = ["ApprovalPolicy", "ApprovalRule", "ElicitationRule", "load_approval_policy"]
