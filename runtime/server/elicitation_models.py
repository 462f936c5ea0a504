"""Request and response bodies of the elicitation routes (:mod:`troupe.runtime.server.elicitation_routes`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from troupe.runtime.session.elicitations import Action as ElicitationAction


class ElicitationInfo(BaseModel):
    """An MCP server's request for the user's input, waiting for an answer (its ``elicitation.requested``
    event's data, with the session)."""

    id: str
    session_id: str
    agent: str
    tool: str
    call_id: str = ""
    server: str
    mode: Literal["form", "url"] = "form"
    message: str
    requested_schema: dict[str, Any] | None = None
    """The form's JSON schema (each field's type, title, description, default, enum); ``None`` for a URL."""
    url: str | None = None
    timeout_s: float | None = None
    """Declined when nobody answers within this long from when it was asked."""


class ElicitationAnswerRequest(BaseModel):
    action: ElicitationAction
    content: dict[str, Any] | None = None
    """The form's values (``accept``); the schema's defaults fill in what is left out."""
    reason: str = ""


class ElicitationAnswered(BaseModel):
    id: str
    session_id: str
    action: ElicitationAction
    by: str
    reason: str = ""


class ElicitationMisfit(BaseModel):
    """The 422 answer to a form that does not fit its schema (the request stays pending)."""

    error: str
    reason: str
    errors: list[str] = Field(default_factory=list)


__all__ = ["ElicitationAction", "ElicitationAnswerRequest", "ElicitationAnswered", "ElicitationInfo",
           "ElicitationMisfit"]
