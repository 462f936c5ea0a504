"""The connection of a remote A2A member to its agent: one ``a2a-sdk`` client, the remote conversation it
continues, and one call per turn recorded as ``a2a.request`` / ``a2a.update`` / ``a2a.response`` events.

The member's turn (:mod:`troupe.runtime.agent.a2a_member`) calls :meth:`RemoteAgent.call`; the remote task's
updates stream in when the agent card offers streaming. The remote agent keeps the conversation by its
``context_id`` (taken from its first answer); a task that stopped for input (``input_required``) gets the
member's next message as that input.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from troupe.runtime.a2a_config import A2AMember
from troupe.runtime.errors import ConfigError, ProviderError
from troupe.runtime.events import A2ARequestPayload, A2AResponsePayload, A2AUpdatePayload, Emitter
from troupe.runtime.events.payload import Payload, clip
from troupe.runtime.ids import unique_hex
from troupe.runtime.llm.types import LLMRequest, LLMResponse, TokenCallback
from troupe.runtime.safety import SecretRef
from troupe.runtime.secrets import expand

TERMINAL = frozenset({"completed", "failed", "canceled", "rejected"})
INTERRUPTED = frozenset({"input_required", "auth_required"})


def safe_url(url: str) -> str:
    """The URL without credentials or query (what events show)."""
    parts = urlsplit(url)
    netloc = f"{parts.hostname}:{parts.port}" if parts.port else (parts.hostname or "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def state_name(state: int) -> str:
    """``TASK_STATE_INPUT_REQUIRED`` -> ``input_required``."""
    from a2a.types import TaskState

    return TaskState.Name(state).removeprefix("TASK_STATE_").lower()


def parts_text(parts: Any) -> str:
    """The text of a message's or artifact's parts (data parts as JSON, files by name)."""
    import json

    from google.protobuf.json_format import MessageToDict

    out: list[str] = []
    for p in parts:
        kind = p.WhichOneof("content")
        if kind == "text":
            out.append(p.text)
        elif kind == "data":
            out.append(json.dumps(MessageToDict(p.data)))
        elif kind == "url":
            out.append(f"[file {p.filename or p.url}]")
        elif kind == "raw":
            out.append(f"[file {p.filename or 'bytes'} ({len(p.raw)} bytes)]")
    return "\n".join(out)


@dataclass
class Outcome:
    """How one call ended."""

    state: str
    text: str
    context_id: str | None = None
    task_id: str | None = None
    artifacts: list[str] = field(default_factory=list)
    updates: int = 0


class _Collect:
    """Folds the stream of one call into its :class:`Outcome` (and emits each update)."""

    def __init__(self, emit: Emitter, call_id: str) -> None:
        self.emit, self.call_id = emit, call_id
        self.state = "submitted"
        self.context_id: str | None = None
        self.task_id: str | None = None
        self.artifacts: dict[str, str] = {}
        self.last_message = ""
        self.updates = 0

    def add(self, response: Any) -> None:
        kind = response.WhichOneof("payload")
        self.updates += 1
        if kind == "task":
            task = response.task
            self.task_id, self.context_id, self.state = task.id, task.context_id, state_name(task.status.state)
            for a in task.artifacts:
                self.artifacts[a.name or a.artifact_id] = parts_text(a.parts)
            if task.status.HasField("message"):
                self.last_message = parts_text(task.status.message.parts)
            self._emit("task", text=self.last_message)
        elif kind == "status_update":
            u = response.status_update
            self.task_id, self.context_id, self.state = u.task_id, u.context_id, state_name(u.status.state)
            text = parts_text(u.status.message.parts) if u.status.HasField("message") else ""
            self.last_message = text or self.last_message
            self._emit("status", text=text)
        elif kind == "artifact_update":
            a = response.artifact_update.artifact
            name = a.name or a.artifact_id
            text = parts_text(a.parts)
            self.artifacts[name] = (self.artifacts.get(name, "") + text) if response.artifact_update.append else text
            self._emit("artifact", text=text, artifact=name)
        elif kind == "message":  # a direct answer: no task
            m = response.message
            self.context_id = m.context_id or self.context_id
            self.last_message, self.state = parts_text(m.parts), "completed"
            self._emit("message", text=self.last_message)

    def _emit(self, kind: str, *, text: str, artifact: str | None = None) -> None:
        self.emit(A2AUpdatePayload(call_id=self.call_id, kind=kind, state=self.state,
                                   text=clip(text)[0][:2000], artifact=artifact))

    def outcome(self) -> Outcome:
        texts = [t for t in self.artifacts.values() if t]
        text = "\n\n".join(texts) if texts and self.state == "completed" else (self.last_message or "\n\n".join(texts))
        return Outcome(state=self.state, text=text, context_id=self.context_id, task_id=self.task_id,
                       artifacts=list(self.artifacts), updates=self.updates)


class RemoteAgent:
    """A remote A2A agent, as a member's model slot sees it: :meth:`call` per turn, :meth:`aclose` at the end.

    It fills the member's ``llm`` slot (closed with the session's model clients) but is not a model:
    :meth:`complete` refuses."""

    def __init__(self, config: A2AMember, *, agent: str, secrets: Mapping[str, SecretRef] | None = None) -> None:
        self.config = config
        self.agent = agent
        self.secrets = dict(secrets or {})
        self.model_name = f"a2a:{safe_url(config.url)}"
        self.context_id: str | None = None
        self.pending_task: str | None = None
        """A remote task waiting for input: the next call continues it."""
        self._client: Any = None
        self._http: Any = None
        self._streaming = False
        self.card: Any = None

    async def complete(self, request: LLMRequest, *, on_token: TokenCallback | None = None) -> LLMResponse:
        raise ConfigError(f"agent {self.agent!r} is a remote A2A agent ({self.model_name}); it has no model to call")

    def _headers(self) -> dict[str, str]:
        where = f"agent {self.agent!r} a2a headers"
        return {k: expand(v, self.secrets, where=f"{where}.{k}") for k, v in self.config.header_templates().items()}

    async def connect(self) -> Any:
        if self._client is not None:
            return self._client
        try:
            import httpx
            from a2a.client import A2ACardResolver, ClientConfig, create_client
        except ImportError as e:
            raise ConfigError(f"agent {self.agent!r} is a remote A2A agent, which needs the a2a-sdk package: "
                              "pip install 'troupe-runtime[a2a]'") from e
        self._http = httpx.AsyncClient(headers=self._headers(), timeout=httpx.Timeout(self.config.timeout_s, connect=10.0))
        try:
            resolver = A2ACardResolver(self._http, self.config.url)
            self.card = await resolver.get_agent_card(relative_card_path=self.config.card_path)
            streaming = self.config.streaming if self.config.streaming is not None else bool(self.card.capabilities.streaming)
            self._streaming = streaming and bool(self.card.capabilities.streaming)
            self._client = await create_client(self.card, ClientConfig(streaming=streaming, httpx_client=self._http))
        except Exception as e:
            await self.aclose()
            raise ProviderError(f"agent {self.agent!r}: the A2A agent at {safe_url(self.config.url)} could not be reached "
                                f"or its card read: {type(e).__name__}: {e}", model=self.model_name, reason="error") from e
        return self._client

    @property
    def streaming(self) -> bool:
        """The calls stream the remote task's updates (known once connected)."""
        return self._streaming

    async def call(self, text: str, emit: Emitter) -> Outcome:
        """Send ``text``; wait for the remote task to end or ask for input. Transport failures raise
        :class:`ProviderError`; a remote task that failed is an :class:`Outcome` with that state."""
        client = await self.connect()
        from a2a.types import CancelTaskRequest, Message, Part, Role, SendMessageRequest

        call_id = unique_hex()[:16]
        message = Message(role=Role.ROLE_USER, message_id=unique_hex(), parts=[Part(text=text)],
                          context_id=self.context_id or "", task_id=self.pending_task or "")
        emit(A2ARequestPayload(url=safe_url(self.config.url), agent_name=self.card.name, call_id=call_id,
                               text=clip(text)[0][:2000], context_id=self.context_id, remote_task_id=self.pending_task,
                               streaming=self.streaming), model=self.model_name)
        def emit_update(payload: Payload, /, **fields: Any) -> None:
            emit(payload, model=self.model_name, **fields)

        collect = _Collect(emit_update, call_id)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.config.timeout_s):
                async for response in client.send_message(SendMessageRequest(message=message)):
                    collect.add(response)
        except BaseException as e:
            error = "cancelled" if isinstance(e, asyncio.CancelledError) else f"{type(e).__name__}: {e}"
            if collect.task_id and collect.state not in TERMINAL:  # stop the remote task too (best effort)
                try:
                    async with asyncio.timeout(5):
                        await client.cancel_task(CancelTaskRequest(id=collect.task_id))
                except BaseException:
                    pass
            emit(A2AResponsePayload(call_id=call_id, state="error", context_id=collect.context_id,
                                    remote_task_id=collect.task_id, updates=collect.updates, error=error[:2000]),
                 model=self.model_name, status="error", duration_ms=(time.perf_counter() - started) * 1e3)
            if isinstance(e, Exception):
                raise ProviderError(f"agent {self.agent!r}: the call to the A2A agent at {safe_url(self.config.url)} "
                                    f"failed: {error}", model=self.model_name, reason="error") from e
            raise
        out = collect.outcome()
        self.context_id = out.context_id or self.context_id
        self.pending_task = out.task_id if out.state in INTERRUPTED else None
        status = "ok" if out.state == "completed" else out.state
        emit(A2AResponsePayload(call_id=call_id, state=out.state, text=clip(out.text)[0][:2000], context_id=out.context_id,
                                remote_task_id=out.task_id, artifacts=out.artifacts, updates=out.updates),
             model=self.model_name, status=status, duration_ms=(time.perf_counter() - started) * 1e3)
        return out

    async def aclose(self) -> None:
        client, http, self._client, self._http = self._client, self._http, None, None
        if client is not None:
            try:
                await client.close()
            except Exception:
                pass
        if http is not None:
            await http.aclose()


__all__ = ["INTERRUPTED", "TERMINAL", "Outcome", "RemoteAgent", "parts_text", "safe_url", "state_name"]
