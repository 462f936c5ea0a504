"""Event type -> payload model: look one up, parse a row's payload into it, or the whole union.

    payload_model("tool.call")                  # ToolCallPayload
    parse_payload("tool.call", row["payload"])  # ToolCallPayload(id=..., arguments=...)
    event.typed                                 # the same, from an Event
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Annotated, Any, Final, Union

from pydantic import Field, TypeAdapter

from troupe.runtime.errors import ConfigError
from troupe.runtime.events.a2a import A2ARequestPayload, A2AResponsePayload, A2AUpdatePayload
from troupe.runtime.events.access import AccessDeniedPayload
from troupe.runtime.events.agent import AgentErrorPayload, AgentSpawnedPayload, AgentStatePayload
from troupe.runtime.events.approval import (
    ApprovalDecidedPayload,
    ApprovalRequestedPayload,
    ApprovalRequestedPayloadV1,
    GuardrailDeniedPayload,
)
from troupe.runtime.events.blackboard import BlackboardExpiredPayload, BlackboardPutPayload, BlackboardPutPayloadV1
from troupe.runtime.events.environment import EnvironmentCapturedPayload, EnvironmentOpenedPayload
from troupe.runtime.events.kinds import EVENT_TYPES
from troupe.runtime.events.knowledge import KnowledgeSearchedPayload
from troupe.runtime.events.llm import (
    ContextCompactedPayload,
    LLMErrorPayload,
    LLMRequestPayload,
    LLMResponsePayload,
    LLMResponsePayloadV1,
    LLMTokenPayload,
)
from troupe.runtime.events.mcp import (
    ElicitationAnsweredPayload,
    ElicitationRequestedPayload,
    McpLogPayload,
    McpResourceUpdatedPayload,
    McpSubscriptionPayload,
)
from troupe.runtime.events.memory import (
    MemoryForgottenPayload,
    MemoryRecalledPayload,
    MemoryRecalledPayloadV1,
    MemoryWrittenPayload,
)
from troupe.runtime.events.message import MessageDeliveredPayload, MessageSentPayload
from troupe.runtime.events.payload import VERSION_KEY, Payload, registered
from troupe.runtime.events.plan import PlanCreatedPayload, PlanRevisedPayload, PlanStepPayload, ReflectionPayload
from troupe.runtime.events.session import (
    ActorRestoredPayload,
    BudgetExceededPayload,
    SessionFinishedPayload,
    SessionResumedPayload,
    SessionStartedPayload,
    SessionStartedPayloadV1,
    SessionStartedPayloadV2,
    TurnCancelledPayload,
    TurnFinishedPayload,
)
from troupe.runtime.events.skill import SkillLoadedPayload
from troupe.runtime.events.task import TaskCreatedPayload, TaskStatusPayload
from troupe.runtime.events.tool import (
    ToolCallPayload,
    ToolCallPayloadV1,
    ToolCallPayloadV2,
    ToolErrorPayload,
    ToolOutcomeFieldsV1,
    ToolProgressPayload,
    ToolResultPayload,
)
from troupe.runtime.events.workspace import (
    WorkspaceRollbackPayload,
    WorkspaceRollbackPayloadV1,
    WorkspaceSnapshotPayload,
)

AnyPayload = Annotated[
    Union[  # noqa: UP007 - a discriminated union reads best spelled out
        SessionStartedPayload, SessionFinishedPayload, SessionResumedPayload, ActorRestoredPayload, TurnFinishedPayload,
        TurnCancelledPayload,
        MessageSentPayload, MessageDeliveredPayload,
        LLMRequestPayload, LLMTokenPayload, LLMResponsePayload, LLMErrorPayload,
        ToolCallPayload, ToolResultPayload, ToolErrorPayload, ToolProgressPayload,
        TaskCreatedPayload, TaskStatusPayload,
        BlackboardPutPayload, BlackboardExpiredPayload,
        AgentStatePayload, AgentSpawnedPayload, AgentErrorPayload, ContextCompactedPayload,
        GuardrailDeniedPayload, ApprovalRequestedPayload, ApprovalDecidedPayload,
        BudgetExceededPayload,
        EnvironmentOpenedPayload, EnvironmentCapturedPayload,
        WorkspaceSnapshotPayload, WorkspaceRollbackPayload,
        MemoryWrittenPayload, MemoryForgottenPayload, MemoryRecalledPayload,
        PlanCreatedPayload, PlanStepPayload, PlanRevisedPayload, ReflectionPayload,
        AccessDeniedPayload,
        SkillLoadedPayload,
        KnowledgeSearchedPayload,
        ElicitationRequestedPayload, ElicitationAnsweredPayload, McpLogPayload,
        McpSubscriptionPayload, McpResourceUpdatedPayload,
        A2ARequestPayload, A2AUpdatePayload, A2AResponsePayload,
    ],
    Field(discriminator="event_type"),
]
"""Any payload, tagged by ``event_type`` (validate a dict that carries its type with :func:`any_payload`)."""

PAYLOAD_MODELS: Final[Mapping[str, type[Payload]]] = {t: registered()[t] for t in EVENT_TYPES}
"""Every event type's payload model, in :data:`~troupe.runtime.events.kinds.EventType` order."""

_OLDER: Final[dict[tuple[str, int], type[Payload]]] = {
    ("tool.call", 1): ToolCallPayloadV1,
    ("approval.requested", 1): ApprovalRequestedPayloadV1,
    ("workspace.rollback", 1): WorkspaceRollbackPayloadV1,
    ("blackboard.put", 1): BlackboardPutPayloadV1,
    ("tool.call", 2): ToolCallPayloadV2,
    ("llm.response", 1): LLMResponsePayloadV1,
    ("tool.result", 1): ToolOutcomeFieldsV1,
    ("tool.error", 1): ToolOutcomeFieldsV1,
    ("session.started", 1): SessionStartedPayloadV1,
    ("session.started", 2): SessionStartedPayloadV2,
    ("memory.recalled", 1): MemoryRecalledPayloadV1,
}
"""Models of earlier payload versions, kept so old rows stay readable: ``(type, version) -> model``.

To change a payload's fields: keep the old model under another name (a subclass of :class:`Payload`
that does not declare ``event_type``, so it is not registered as current), add it here under its
old version, then change the current model and raise its ``payload_version``."""



@functools.cache
def any_payload() -> TypeAdapter[Any]:
    """A validator of :data:`AnyPayload` (built on first use: most processes never need it)."""
    return TypeAdapter(AnyPayload)


class UnknownEventTypeError(ConfigError):
    """An event type without a payload model, or a payload version this code does not know."""


def _check_registry() -> None:
    models = registered()
    missing = [t for t in EVENT_TYPES if t not in models]
    extra = sorted(set(models) - set(EVENT_TYPES))
    if missing or extra:  # pragma: no cover - an import-time guard for whoever adds an event type
        raise UnknownEventTypeError(f"event types without a payload model: {missing}; models without a type: {extra}")


_check_registry()


def payload_model(type: str, *, version: int | None = None) -> type[Payload]:
    """The payload model of event ``type`` (of payload ``version``; the current one by default)."""
    model = PAYLOAD_MODELS.get(type)
    if model is None:
        raise UnknownEventTypeError(f"unknown event type {type!r}; known: {', '.join(EVENT_TYPES)}", type=type)
    if version is None or version == model.payload_version:
        return model
    older = _OLDER.get((type, version))
    if older is None:
        raise UnknownEventTypeError(f"{type!r} has no payload version {version} (the current one is {model.payload_version})",
                                    type=type, version=version)
    return older


def parse_payload(type: str, payload: str | Mapping[str, Any]) -> Payload:
    """A row's payload (its JSON text, or the dict of it) as the typed model of its type and version.

    Raises pydantic's ``ValidationError`` when the row does not fit the model.
    """
    data = dict(json.loads(payload) if isinstance(payload, str) else payload)
    version = data.pop(VERSION_KEY, 1)
    return payload_model(type, version=version).model_validate(data)


__all__ = ["PAYLOAD_MODELS", "AnyPayload", "UnknownEventTypeError", "any_payload", "parse_payload", "payload_model"]
