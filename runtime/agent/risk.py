"""Risk scoring: a score from 0 to 100 for one tool call, its reasons, and what the team's
thresholds make of it (``allow``, ``ask``, ``deny``).

The score adds up contributions (each reason says its own, ``level L3 +20``; the total is capped at
100):

- the tool: its permission level (:data:`LEVEL_WEIGHTS`) and the side effects its scopes or its name
  say it has (:data:`EFFECT_WEIGHTS`);
- its arguments: a path outside the session's workspace, an amount above ``risk.amount_over``, a
  recipient (``to``, ``iban``, ``account``, ...) the user's messages never mention, a shell command
  matching a risky pattern (:data:`RISKY_COMMANDS` plus ``risk.risky_commands``);
- the agent's taint (:mod:`troupe.runtime.agent.taint`): a call with side effects by an agent that
  has read untrusted content gets :data:`TAINTED`; one whose arguments trace to that content (and
  not to the user's messages) scores at least :data:`TRACED_FLOOR`.

A call *has side effects* when a scope or its name says so (``file:write``, ``send_email``,
``bank__transfer``; names count from level L1, and not for the session's own built-in tools), or
when its level is L2 or above and its name does not say it only reads (``get_``, ``list_``,
``read_``, ``search_``, ...).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from troupe.runtime.agent.taint import Taint
from troupe.runtime.config import PermissionLevel
from troupe.runtime.events.tool import RiskScore
from troupe.runtime.safety import RiskConfig, UntrustedSources
from troupe.tools.spec import ToolSpec

Decision = Literal["allow", "ask", "deny"]

LEVEL_WEIGHTS: Mapping[PermissionLevel, int] = {
    PermissionLevel.L0: 0, PermissionLevel.L1: 0, PermissionLevel.L2: 10,
    PermissionLevel.L3: 20, PermissionLevel.L4: 25, PermissionLevel.L5: 35,
}
EFFECT_WEIGHTS: Mapping[str, int] = {"shell": 20, "payment": 20, "message": 15, "network": 10, "write": 10}
"""Side effects a tool has, from its scopes and its name: the heaviest counts in full, each other one
:data:`EXTRA_EFFECT`, together at most :data:`EFFECTS_CAP`."""
EXTRA_EFFECT = 5
EFFECTS_CAP = 30
TAINTED = 20
"""A call with side effects by an agent that has read untrusted content."""
TRACED = 60
TRACED_FLOOR = 90
"""A call with side effects whose arguments trace to untrusted content: +:data:`TRACED`, and at least this in all."""
TRACED_READ = 10
"""A call without side effects whose arguments trace to untrusted content."""
PATH_OUTSIDE = 20
AMOUNT_OVER = 20
RECIPIENT_UNSEEN = 20
RISKY_COMMAND = 40

SESSION_TOOLS = frozenset({"send_message", "broadcast", "wait", "delegate", "task_create", "task_update", "task_list",
                           "task_wait", "assign_tasks", "blackboard_put", "blackboard_get", "blackboard_list"})
"""Built-in tools that act only on the session itself: scored by their level, never by their name."""

_READ_ACTIONS = frozenset({"read", "list", "get", "search", "view", "query"})
_SCOPE_FAMILIES: Mapping[str, frozenset[str]] = {
    "shell": frozenset({"shell", "exec", "process"}),
    "payment": frozenset({"payment", "payments", "pay", "bank", "banking", "money", "finance", "transfer", "wallet"}),
    "message": frozenset({"email", "mail", "message", "messages", "sms", "chat", "social", "slack"}),
}


def _scope_effects(scope: str) -> set[str]:
    """The side effects a scope grants: ``shell:exec``, ``bank:transfer``, ``email:send``,
    ``network:external``, ``file:write``; a ``:read`` scope grants none."""
    family, _, action = scope.lower().partition(":")
    if action in _READ_ACTIONS or (family == "network" and action not in ("external", "*", "")):
        return set()
    found = {effect for effect, families in _SCOPE_FAMILIES.items() if family in families}
    if family == "network":
        found.add("network")
    if action in ("send", "transfer", "pay"):
        found.add("payment" if action != "send" else "message")
    if not found and (action in ("write", "delete", "admin", "*") or scope == "*"):
        found.add("write")
    return found


_NAME_EFFECTS: Mapping[str, frozenset[str]] = {
    "shell": frozenset({"shell", "bash", "exec", "execute", "sh", "command", "eval"}),
    "payment": frozenset({"transfer", "pay", "payment", "wire", "money", "refund", "purchase", "buy", "withdraw",
                          "deposit", "transaction", "order", "checkout", "charge"}),
    "message": frozenset({"send", "forward", "reply", "post", "publish", "share", "invite", "notify", "email",
                          "mail", "sms", "tweet", "message"}),
    "write": frozenset({"write", "delete", "remove", "create", "update", "edit", "modify", "move", "rename", "upload",
                        "put", "set", "cancel", "book", "insert", "drop", "commit", "push", "deploy", "add", "change",
                        "reset", "schedule", "install", "grant", "revoke"}),
}
_READ_VERBS = frozenset({"get", "read", "list", "search", "find", "fetch", "lookup", "query", "show", "view", "check",
                         "count", "describe", "inspect", "browse", "open", "download", "retrieve", "calculate",
                         "compute", "verify", "summarize", "load", "peek", "stat", "whoami", "wait", "is", "has"})
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

_RECIPIENT_KEYS = frozenset({"to", "cc", "bcc", "recipient", "recipients", "receiver", "email", "emails", "iban",
                             "account", "address", "phone", "payee", "beneficiary", "destination", "dest"})
_AMOUNT_KEYS = frozenset({"amount", "sum", "value", "price", "total", "cost"})
_PATH_KEYS = frozenset({"path", "paths", "file", "filename", "filepath", "dir", "directory", "folder", "cwd",
                        "target", "dest", "destination", "src", "source"})
_COMMAND_KEYS = frozenset({"command", "cmd", "script", "commands"})

RISKY_COMMANDS: Sequence[tuple[str, str]] = [
    ("rm -rf of / or ~", r"\brm\s+(-\w+\s+)*-\w*[rRf]\w*\s+(-\w+\s+)*(--no-preserve-root\s+)?(/|~|\$HOME|/\*)(\s|$|;|&|\|)"),
    ("download piped to a shell", r"\b(curl|wget|fetch)\b[^|;&]*\|\s*(sudo\s+)?(ba|z|da|k)?sh\b"),
    ("sudo", r"(^|[\s;&|(])sudo\b"),
    ("write under /etc", r"(>>?|\btee\b(\s+-a)?)\s*/etc/|\b(cp|mv|ln|install|sed\s+-i|chmod|chown)\b[^;&|]*\s/etc/"),
    ("reads ssh keys", r"(~|\$HOME|/root|/home/[^/\s]+)/\.ssh\b|\bid_(rsa|ed25519|ecdsa|dsa)\b"),
    ("environment dump", r"(^|[;&|(]\s*)(env|printenv|export\s+-p|set)\s*($|[;&|>)])|/proc/\S*/environ"),
    ("fork bomb", r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:"),
    ("disk wipe", r"\bmkfs(\.\w+)?\b|\bdd\b[^;&|]*\bof=/dev/|>\s*/dev/(sd|nvme|hd)"),
    ("world-writable root", r"\bchmod\s+(-\w+\s+)*0?777\s+/(\s|$)"),
    ("reverse shell", r"\b(nc|ncat|netcat)\b[^;&|]*\s-(e|c)\b|/dev/tcp/|\bbase64\s+(-d|--decode)\b[^;&]*\|\s*(ba)?sh\b"),
]
"""Built-in risky shell patterns (name, regular expression); ``risk.risky_commands`` adds to them."""
_BUILTIN_RISKY = [(name, re.compile(pattern)) for name, pattern in RISKY_COMMANDS]


@dataclass(frozen=True)
class RiskAssessment:
    """One call's risk: ``score`` 0..100, ``reasons`` (each with its contribution) and ``decision``."""

    score: int
    reasons: tuple[str, ...]
    decision: Decision
    side_effects: bool = False
    traced: bool = False
    """An argument traces to untrusted content."""

    def event(self) -> RiskScore:
        return RiskScore(score=self.score, reasons=list(self.reasons), decision=self.decision)

    def explain(self) -> str:
        return "; ".join(self.reasons) or "no risk found"


def decide(score: int, config: RiskConfig) -> Decision:
    """What the team's thresholds make of ``score``."""
    if config.deny_at is not None and score >= config.deny_at:
        return "deny"
    if config.ask_at is not None and score >= config.ask_at:
        return "ask"
    return "allow"


def untrusted_source(spec: ToolSpec, untrusted: UntrustedSources) -> str | None:
    """Why a result of ``spec`` is untrusted (the rule that matched), or ``None``."""
    for pattern in untrusted.tools:
        if spec.name == pattern or (pattern.endswith("*") and spec.name.startswith(pattern[:-1])):
            return f"tool {pattern}"
    server = spec.source.removeprefix("mcp:") if spec.source.startswith("mcp:") else None
    if server is not None and server in untrusted.servers:
        return f"server {server}"
    for held in spec.scopes:
        for listed in untrusted.scopes:
            if listed in (held, "*") or (listed.endswith(":*") and held.startswith(listed[:-1])):
                return f"scope {held}"
    return None


def _words(name: str) -> list[str]:
    own = name.split("__", 1)[1] if "__" in name else name
    return [w.lower() for w in _WORD.findall(own)]


def effects(spec: ToolSpec) -> tuple[set[str], bool]:
    """The side effects ``spec`` has (by scope and by name) and whether its name says it only reads."""
    found = {effect for scope in spec.scopes for effect in _scope_effects(scope)}
    if spec.name in SESSION_TOOLS or spec.level is PermissionLevel.L0:
        return found, False  # session tools act on the session only; an L0 tool reads nothing outside the call
    words = _words(spec.origin_name or spec.name)
    reads = bool(words) and words[0] in _READ_VERBS
    if not reads:
        found |= {effect for effect, names in _NAME_EFFECTS.items() if any(w in names for w in words)}
    return found, reads


def _leaves(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(the innermost key, value) of every scalar in the arguments."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v, key)
    elif value is not None:
        yield key, value


def _key_words(key: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(key)} | {key.lower()}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(re.sub(r"[\s,$€£]", "", value))
        except ValueError:
            return None
    return None


def _outside(path: str, workspace: Path | None) -> bool:
    if path.startswith("~"):
        return True
    base = str(workspace) if workspace is not None else "/workspace"
    full = os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))
    return not (full == base or full.startswith(base.rstrip("/") + "/"))


def _looks_like_path(value: str) -> bool:
    return bool(value) and "://" not in value and not any(c.isspace() for c in value) and (
        value.startswith(("/", "~")) or ".." in value.replace("\\", "/").split("/"))


def _preview(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _argument_reasons(spec: ToolSpec, arguments: Mapping[str, Any], config: RiskConfig, taint: Taint | None,
                      workspace: Path | None, shell: bool) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    leaves = list(_leaves(arguments))
    commands = [(k, v) for k, v in leaves if isinstance(v, str) and (_key_words(k) & _COMMAND_KEYS or (shell and k))]
    paths = [(k, v) for k, v in leaves if isinstance(v, str) and (k, v) not in commands
             and (_looks_like_path(v) or (_key_words(k) & _PATH_KEYS and "@" not in v and "://" not in v))]
    outside = [(k, v) for k, v in paths if _outside(v.strip(), workspace)]
    if outside:
        k, v = outside[0]
        out.append((f"path outside the workspace ({k}={_preview(v)!s}) +{PATH_OUTSIDE}", PATH_OUTSIDE))
    if config.amount_over is not None:
        over = [(k, n) for k, v in leaves if _key_words(k) & _AMOUNT_KEYS
                and (n := _number(v)) is not None and n > config.amount_over]
        if over:
            k, n = over[0]
            out.append((f"amount {k}={n:g} over {config.amount_over:g} +{AMOUNT_OVER}", AMOUNT_OVER))
    if taint is not None:
        unseen = [(k, v) for k, v in leaves if _key_words(k) & _RECIPIENT_KEYS and str(v).strip()
                  and not taint.vouched(str(v))]
        if unseen:
            k, v = unseen[0]
            out.append((f"recipient {k}={_preview(v)} not in the user's messages +{RECIPIENT_UNSEEN}", RECIPIENT_UNSEEN))
    patterns = [*_BUILTIN_RISKY, *((p, re.compile(p)) for p in config.risky_commands)]
    for k, v in commands:
        hits = [name for name, rx in patterns if rx.search(v)]
        if hits:
            out.append((f"risky command ({', '.join(hits[:3])}) in {k} +{RISKY_COMMAND}", RISKY_COMMAND))
            break
    return out


def _trace(arguments: Mapping[str, Any], taint: Taint) -> tuple[str, str, str] | None:
    """The first argument that traces to untrusted content: (key, the traced part, source)."""
    for key, value in _leaves(arguments):
        if isinstance(value, bool):
            continue
        text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        hit = taint.trace(text)
        if hit is not None:
            return key, hit[0], hit[1]
    return None


def assess(spec: ToolSpec, arguments: Mapping[str, Any], config: RiskConfig, *, taint: Taint | None = None,
           workspace: Path | None = None) -> RiskAssessment:
    """Score one call of ``spec`` with ``arguments`` by an agent with ``taint`` (its untrusted reads
    and the user's messages it received; ``None``: neither is known) in ``workspace``."""
    reasons: list[tuple[str, int]] = []
    level = LEVEL_WEIGHTS[spec.level]
    if level:
        reasons.append((f"level {spec.level} +{level}", level))
    found, reads = effects(spec)
    side_effects = bool(found) or (not reads and list(PermissionLevel).index(spec.level) >= 2)
    budget = EFFECTS_CAP
    for i, effect in enumerate(sorted(found, key=lambda e: (-EFFECT_WEIGHTS[e], e))):
        weight = min(EFFECT_WEIGHTS[effect] if i == 0 else EXTRA_EFFECT, budget)
        if weight:
            reasons.append((f"side effect {effect} +{weight}", weight))
            budget -= weight
    reasons += _argument_reasons(spec, arguments, config, taint, workspace, shell="shell" in found)
    traced = None
    if taint is not None and taint.tainted:
        if side_effects:
            reasons.append((f"agent read untrusted content ({', '.join(taint.sources[:3])}) +{TAINTED}", TAINTED))
        traced = _trace(arguments, taint)
    if traced is not None:
        key, part, source = traced
        weight = max(TRACED, TRACED_FLOOR - sum(w for _, w in reasons)) if side_effects else TRACED_READ
        reasons.append((f"argument {key} traces to untrusted content from {source} ({_preview(part)}) +{weight}", weight))
    score = min(100, sum(w for _, w in reasons))
    return RiskAssessment(score, tuple(r for r, _ in reasons), decide(score, config), side_effects, traced is not None)


def score_call(spec: ToolSpec | None, arguments: str, config: RiskConfig, *, taint: Taint | None = None,
               workspace: Path | None = None) -> RiskAssessment | None:
    """:func:`assess` for a call as the model wrote it; ``None`` when scoring is off, the tool is
    unknown or the arguments are not a JSON object (those calls fail before they could run)."""
    if not config.enabled or spec is None:
        return None
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    return assess(spec, parsed, config, taint=taint, workspace=workspace)


def note_result(spec: ToolSpec | None, content: str, config: RiskConfig, taint: Taint | None) -> None:
    """The agent read ``content`` from ``spec``'s call: taint it when the team marks that source untrusted."""
    if taint is None or spec is None or not config.enabled:
        return
    if untrusted_source(spec, config.untrusted) is not None:
        taint.read(spec.name, content)


__all__ = ["LEVEL_WEIGHTS", "RISKY_COMMANDS", "RiskAssessment", "assess", "decide", "effects", "note_result", "score_call",
           "untrusted_source"]
