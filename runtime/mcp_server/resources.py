"""Troupe's MCP resources, prompt and completions: an open session's blackboard and task tree as
resources a client can read and subscribe to, the team folders and open sessions as listings, a
``run_team`` prompt, and ``completion/complete`` for their arguments (team names, session ids,
blackboard keys).

URIs: ``troupe://teams``, ``troupe://sessions``, ``troupe://sessions/{session_id}/blackboard``
(every entry), ``troupe://sessions/{session_id}/blackboard/{+key}`` (one key; keys may hold
``/``), ``troupe://sessions/{session_id}/tasks`` (the task tree). Contents are JSON, the same
models the tools return.

Each request reads as its caller (:func:`.owners.caller`): ``troupe://sessions`` lists the caller's own open
sessions (an admin's: all), and another user's session resource (a read, a subscription, a key completion) is
refused with a JSON-RPC error -32602 whose ``data.error`` is ``other_user_session``, recorded as an
``access.denied`` event; an unknown session stays unknown (-32602, resource not found).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import Completion, CompletionArgument, CompletionContext, PromptReference, ResourceTemplateReference

from troupe.runtime.access import AccessDenied, Principal
from troupe.runtime.mcp_server.core import ServiceError, TroupeService
from troupe.runtime.mcp_server.owners import caller

JSON = "application/json"
MAX_COMPLETIONS = 100
"""The spec's cap on the values of one completion."""
BLACKBOARD_TEMPLATE = "troupe://sessions/{session_id}/blackboard"
KEY_TEMPLATE = "troupe://sessions/{session_id}/blackboard/{+key}"
TASKS_TEMPLATE = "troupe://sessions/{session_id}/tasks"
_SESSION_URI = re.compile(r"^troupe://sessions/(?P<sid>[^/]+)/(?P<what>blackboard|tasks)(?:/(?P<key>.+))?$")


@dataclass(frozen=True)
class SessionResource:
    """A session resource's URI, parsed."""

    session_id: str
    what: str
    """``blackboard`` or ``tasks``."""
    key: str | None = None


def parse_uri(uri: str) -> SessionResource | None:
    m = _SESSION_URI.match(uri)
    if m is None or (m["what"] == "tasks" and m["key"]):
        return None
    return SessionResource(m["sid"], m["what"], m["key"])


def is_refusal(e: MCPError) -> bool:
    """Whether ``e`` answers a refused request (not an unknown resource)."""
    data = e.error.data
    return isinstance(data, dict) and "error" in data and "status" in data  # as owners.Caller.error makes them


async def read_session_resource(service: TroupeService, res: SessionResource, who: Principal | None = None) -> str:
    """The JSON text of a session resource as ``who`` (default: the request's caller) reads it:
    ResourceNotFoundError for an unknown session or key; another user's session refused (an MCPError, recorded)."""
    try:
        return await _read(service, res, who or caller().who)
    except ServiceError as e:
        raise ResourceNotFoundError(e.message) from None
    except AccessDenied as e:
        raise caller().error(e) from None


async def _read(service: TroupeService, res: SessionResource, who: Principal) -> str:
    if res.what == "tasks":
        return (await service.task_tree(res.session_id, who)).model_dump_json()
    view = await service.read_blackboard(res.session_id, res.key or "", who)
    if res.key is None:
        return view.model_dump_json()
    entry = next((e for e in view.entries if e.key == res.key), None)
    if entry is None:
        raise ServiceError(f"session {res.session_id} has no blackboard key {res.key!r} (read "
                           f"troupe://sessions/{res.session_id}/blackboard for the keys it has)")
    return entry.model_dump_json()


def install(server: MCPServer, service: TroupeService) -> None:
    @server.resource("troupe://teams", name="teams", description="The team files this server may run", mime_type=JSON)
    def teams() -> str:
        return service.list_teams().model_dump_json()

    @server.resource("troupe://sessions", name="sessions", mime_type=JSON,
                     description="The sessions this server has open that are yours (an admin key: everyone's)")
    async def sessions() -> str:
        try:
            return service.list_sessions(caller().who).model_dump_json()
        except AccessDenied as e:
            raise caller().error(e) from None

    @server.resource(BLACKBOARD_TEMPLATE, name="blackboard", mime_type=JSON,
                     description="An open session's blackboard (subscribe: notified when any key changes)")
    async def blackboard(session_id: str) -> str:
        return await read_session_resource(service, SessionResource(session_id, "blackboard"))

    @server.resource(KEY_TEMPLATE, name="blackboard-key", mime_type=JSON,
                     description="One key of an open session's blackboard (subscribe: notified when it changes)")
    async def blackboard_key(session_id: str, key: str) -> str:
        return await read_session_resource(service, SessionResource(session_id, "blackboard", key))

    @server.resource(TASKS_TEMPLATE, name="tasks", mime_type=JSON,
                     description="An open session's task tree (subscribe: notified when a task changes)")
    async def tasks(session_id: str) -> str:
        return await read_session_resource(service, SessionResource(session_id, "tasks"))

    @server.prompt(name="run_team", description="Run a team on a request with the run_team tool")
    def run_team(team: str, input: str) -> list[UserMessage]:
        return [UserMessage(f"Call the run_team tool with team={json.dumps(team)} and input={json.dumps(input)}, "
                            "then report the team's reply, its status and the session id.")]


def _matching(values: list[str], prefix: str) -> Completion:
    found = sorted({v for v in values if v.startswith(prefix)})
    return Completion(values=found[:MAX_COMPLETIONS], total=len(found), has_more=len(found) > MAX_COMPLETIONS)


async def complete(service: TroupeService, ref: PromptReference | ResourceTemplateReference,
                   argument: CompletionArgument, context: CompletionContext | None) -> Completion | None:
    """Troupe's completions (``None``: not an argument of Troupe's), of what the caller may see."""
    if isinstance(ref, PromptReference) and ref.name == "run_team" and argument.name == "team":
        listed = service.list_teams().teams
        return _matching([t.path for t in listed] + [t.name for t in listed if t.name], argument.value)
    if not isinstance(ref, ResourceTemplateReference) or not ref.uri.startswith("troupe://sessions/"):
        return None
    try:
        who = caller().who
    except AccessDenied as e:
        raise caller().error(e) from None
    if argument.name == "session_id":
        return _matching([s.session_id for s in service.list_sessions(who).sessions], argument.value)
    if argument.name == "key":
        sid = (context.arguments or {}).get("session_id") if context is not None else None
        if not sid:
            return Completion(values=[], total=0, has_more=False)
        try:
            view = await service.read_blackboard(sid, argument.value, who)
        except ServiceError:
            return Completion(values=[], total=0, has_more=False)
        except AccessDenied as e:
            raise caller().error(e) from None
        return _matching([e.key for e in view.entries], argument.value)
    return None


__all__ = ["BLACKBOARD_TEMPLATE", "KEY_TEMPLATE", "TASKS_TEMPLATE", "SessionResource", "complete", "install",
           "is_refusal", "parse_uri", "read_session_resource"]
