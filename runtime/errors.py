"""Troupe's error tree, in three families.

* :class:`ModelVisibleError` - the model caused it and can recover: it becomes a tool result.
* :class:`ConfigError` - the developer must fix something; raised early, with the fix in the message.
* :class:`RunError` - the run itself failed or was stopped (budget, cancel, provider, script).

Exceptions carry structured fields and have no side effects.
"""

from __future__ import annotations

from typing import Any


class TroupeError(Exception):
    """Base of every Troupe error."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.fields))


def _rebuild(cls: type[TroupeError], message: str, fields: dict[str, Any]) -> TroupeError:
    err = cls.__new__(cls)
    TroupeError.__init__(err, message, **fields)
    return err


def sentence(text: str) -> str:
    """``text`` ending in exactly one full stop (or its own ``!``/``?``), for composing messages
    from parts that may or may not end in one (no ``..``)."""
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


# --- errors the model sees -------------------------------------------------------------------
class ModelVisibleError(TroupeError):
    """Rendered into a tool result; the agent's loop goes on."""


class ToolArgumentError(ModelVisibleError):
    pass


class ToolExecutionError(ModelVisibleError):
    pass


class ToolTimeoutError(ModelVisibleError):
    pass


class PermissionDeniedError(ModelVisibleError):
    pass


class ApprovalDeniedError(PermissionDeniedError):
    """A tool that needs approval was denied, or nobody answered in time."""


class ToolUnavailableError(ModelVisibleError):
    """The tool cannot run here: its resources exist on no node, or its server is down."""


class UnknownToolCallError(ModelVisibleError):
    """The model called a tool the agent does not have."""


# --- developer errors ------------------------------------------------------------------------
class ConfigError(TroupeError):
    pass


class TeamConfigError(ConfigError):
    pass


class UnknownToolError(ConfigError):
    pass


class UnknownAgentError(ConfigError):
    pass


class UnknownModelError(ConfigError):
    pass


class InvalidTransitionError(ModelVisibleError):
    """A state machine (agent, task) was asked for a move it does not allow."""


class VersionConflictError(ModelVisibleError):
    """A compare-and-set write lost: the entry's version is not what the writer expected."""


# --- run failures ----------------------------------------------------------------------------
class RunError(TroupeError):
    """The run stopped; ``status`` is the session status it maps to."""

    status = "failed"


class BudgetExceededError(RunError):
    status = "budget_exceeded"


class CancelledError(RunError):
    status = "cancelled"


class ProviderError(RunError):
    """A model endpoint failed after retries and failover."""


class ScriptExhaustedError(RunError):
    """A scripted model was asked for more responses than its script holds."""


class HostLostError(RunError):
    """The process running a session that is not checkpointed (a sweep sample) died under it; its
    host is restarted, and the session can be run again."""


__all__ = [
    "ApprovalDeniedError",
    "BudgetExceededError",
    "CancelledError",
    "ConfigError",
    "HostLostError",
    "InvalidTransitionError",
    "ModelVisibleError",
    "PermissionDeniedError",
    "ProviderError",
    "RunError",
    "ScriptExhaustedError",
    "TeamConfigError",
    "ToolArgumentError",
    "ToolExecutionError",
    "ToolTimeoutError",
    "ToolUnavailableError",
    "TroupeError",
    "UnknownAgentError",
    "UnknownModelError",
    "UnknownToolCallError",
    "UnknownToolError",
    "VersionConflictError",
    "sentence",
]
