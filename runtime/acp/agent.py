"""The ACP agent: a Troupe team behind ``initialize``, ``session/new``, ``session/prompt`` and ``session/cancel``.

Run by ``acp.run_agent`` (see :func:`serve`); each ACP session is a :class:`~.bridge.SessionBridge`.
"""

from __future__ import annotations

import logging
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from acp import PROTOCOL_VERSION, RequestError, run_agent
from acp.schema import (
    AgentCapabilities,
    Implementation,
    InitializeResponse,
    McpCapabilities,
    NewSessionResponse,
    PromptCapabilities,
    PromptResponse,
)

from troupe.runtime.acp.bridge import SessionBridge
from troupe.runtime.acp.elicitation import client_modes
from troupe.runtime.acp.team import adapt_team
from troupe.runtime.config import TeamConfig

log = logging.getLogger("troupe.acp")


def prompt_text(blocks: list[Any]) -> str:
    """The user's turn from a prompt's content blocks: text as is, an embedded text resource under its
    URI, a resource link as its URI (images and audio are not advertised, so not sent)."""
    parts: list[str] = []
    for block in blocks:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            parts.append(f"<file uri=\"{resource.uri}\">\n{text}\n</file>" if text is not None else f"[{resource.uri}]")
        elif kind == "resource_link":
            parts.append(f"[{block.name}]({block.uri})")
    return "\n\n".join(p for p in parts if p)


def _version() -> str:
    try:
        return version("troupe-runtime")
    except PackageNotFoundError:
        return "0"


class TroupeAgent:
    """An ACP agent for one team; ``troupe`` is the runtime its sessions run on (local or Ray)."""

    def __init__(self, team: TeamConfig, troupe: Any, *, placement: str | None = None) -> None:
        self.team = team
        self.troupe = troupe
        self.placement = placement
        self.sessions: dict[str, SessionBridge] = {}
        self.conn: Any = None
        self.elicitation_modes: set[str] = set()

    def on_connect(self, conn: Any) -> None:
        self.conn = conn

    async def initialize(self, protocol_version: int, client_capabilities: Any = None, client_info: Any = None,
                         **kwargs: Any) -> InitializeResponse:
        log.info("client %s, protocol %s", getattr(client_info, "name", "?"), protocol_version)
        self.elicitation_modes = client_modes(client_capabilities)
        return InitializeResponse(
            protocol_version=min(protocol_version, PROTOCOL_VERSION),
            agent_capabilities=AgentCapabilities(
                load_session=False,
                prompt_capabilities=PromptCapabilities(image=False, audio=False, embedded_context=True),
                mcp_capabilities=McpCapabilities(http=True, sse=False)),
            auth_methods=[],
            agent_info=Implementation(name="troupe", title=f"Troupe: {self.team.name}", version=_version()),
        )

    async def authenticate(self, method_id: str, **kwargs: Any) -> None:
        raise RequestError.invalid_params({"message": "this agent needs no authentication (authMethods is empty)"})

    async def new_session(self, cwd: str, mcp_servers: list[Any] | None = None, **kwargs: Any) -> NewSessionResponse:
        acp_id = f"sess_{uuid.uuid4().hex}"
        team = adapt_team(self.team, cwd, mcp_servers)
        self.sessions[acp_id] = SessionBridge(acp_id, self.troupe, team, self.conn, placement=self.placement)
        self.sessions[acp_id].elicitation_modes = self.elicitation_modes
        return NewSessionResponse(session_id=acp_id)

    def _bridge(self, session_id: str) -> SessionBridge:
        bridge = self.sessions.get(session_id)
        if bridge is None:
            raise RequestError.invalid_params({"message": f"unknown session {session_id!r}", "sessionId": session_id})
        return bridge

    async def prompt(self, session_id: str, prompt: list[Any], **kwargs: Any) -> PromptResponse:
        text = prompt_text(prompt)
        if not text.strip():
            raise RequestError.invalid_params({"message": "the prompt has no text"})
        return await self._bridge(session_id).prompt(text)

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        bridge = self.sessions.get(session_id)
        if bridge is not None:
            await bridge.cancel()

    async def close(self) -> None:
        for bridge in list(self.sessions.values()):
            try:
                await bridge.close()
            except Exception:
                log.exception("closing ACP session %s", bridge.acp_id)
        self.sessions.clear()


async def serve(agent: TroupeAgent) -> None:
    """Speak ACP on stdin/stdout until the client closes stdin (stdout is claimed first: :mod:`.stdio`)."""
    from troupe.runtime.acp.stdio import protocol_streams

    reader, writer = await protocol_streams()
    try:
        await run_agent(agent, writer, reader)  # type: ignore[arg-type]  # a structural Agent: the methods it serves
    finally:
        await agent.close()


__all__ = ["TroupeAgent", "prompt_text", "serve"]
