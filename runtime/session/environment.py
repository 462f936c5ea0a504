"""A session's environment: its sample dir, its own MCP servers, and the setup/teardown hooks.

Opened by the host of the session's entry agent before the first turn and closed after the last,
on every exit path (:class:`SessionEnvironment`). The hooks are import paths (``pkg.mod:fn``), sync
or async, called with an :class:`EnvironmentContext`; ``teardown`` returns the final state (a
JSON-able dict), recorded as an ``environment.captured`` event and carried by the session's result.

A ``scope: session`` MCP server's config is expanded per session (:func:`session_values`): every
host of the session computes the same values, so a server may start on any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from troupe.runtime.agent.dispatch import Dispatcher
from troupe.runtime.config import EnvironmentSpec, McpServerConfig, TeamConfig
from troupe.runtime.errors import ConfigError, TroupeError
from troupe.runtime.events import EnvironmentCapturedPayload, EnvironmentOpenedPayload
from troupe.runtime.session.spec import SessionSpec, sample_dir_for, session_values
from troupe.tools.spec import Tool


class EnvironmentSetupError(TroupeError):
    """The environment's fixture or setup hook failed: the session fails (its teardown still runs)."""


@dataclass(frozen=True)
class EnvironmentContext:
    """What a setup or teardown hook is told about the session it serves."""

    session_id: str
    run_id: str
    case_id: str
    sample: str
    sample_dir: Path
    params: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def session_servers(team: TeamConfig) -> dict[str, McpServerConfig]:
    return {name: cfg for name, cfg in team.mcp_servers.items() if cfg.scope == "session"}


def has_environment(team: TeamConfig) -> bool:
    """Whether sessions of ``team`` get an environment to open and close."""
    return team.environment is not None or bool(session_servers(team))


def load_hook(path: str) -> Callable[..., Any]:
    """The function at ``package.module:function`` (a clear config error when it is not there)."""
    module_name, _, attr = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"environment hook {path!r} cannot be imported: {type(e).__name__}: {e}", hook=path) from e
    if not callable(target):
        raise ConfigError(f"environment hook {path!r} is not callable", hook=path)
    return target


async def _call_hook(path: str, ctx: EnvironmentContext) -> Any:
    value = load_hook(path)(ctx)
    if inspect.isawaitable(value):
        value = await value
    return value


async def session_mcp_tools(dispatcher: Dispatcher, cache: dict[str, list[Tool]], server: str, cfg: McpServerConfig,
                            spec: SessionSpec) -> list[Tool]:
    """A ``scope: session`` server's tools for one session: its config expanded for the session, its
    tools listed once per host (``cache``, on the first session's own connection), its process the session's own."""
    from troupe.tools.mcp import mcp_tools
    from troupe.tools.mcp.server_params import session_config

    own = session_config(server, cfg, session_values(spec))
    sample_dir_for(spec).mkdir(parents=True, exist_ok=True)  # its cwd may be there
    key = f"session:{server}:{cfg.model_dump_json()}"
    if key not in cache:
        try:
            specs = await dispatcher.mcp_specs(server, own, str(spec.session_id))
        except Exception as e:
            raise ConfigError(f"MCP server {server!r} did not start or list its tools: {type(e).__name__}: {e}; "
                              "check its command/url in mcpServers", server=server) from e
        cache[key] = mcp_tools(server, own, specs)
    return mcp_tools(server, own, [t.spec for t in cache[key]])


class SessionEnvironment:
    """One session's environment, on the host of its entry agent; :meth:`close` may be called any number of times."""

    def __init__(self, spec: SessionSpec, emit: Callable[..., None]) -> None:
        self.spec = spec
        self.env = spec.team.environment or EnvironmentSpec()
        self.emit = emit
        self.dir = sample_dir_for(spec)
        self.ctx = EnvironmentContext(
            session_id=str(spec.session_id), run_id=str(spec.run_id), case_id=spec.labels.get("case_id", ""),
            sample=spec.labels.get("sample", "0"), sample_dir=self.dir, params=dict(self.env.params),
            labels=dict(spec.labels))
        self.final_state: dict[str, Any] | None = None
        self.error: str | None = None
        """Why the setup failed (``None``: it did not, or it has not run)."""
        self._closed: asyncio.Future[dict[str, Any] | None] | None = None

    async def open(self) -> None:
        """Make the sample dir, copy the fixture into it, run ``setup``; a failure raises
        :class:`EnvironmentSetupError` (after the ``environment.opened`` event that says why)."""
        error: str | None = None
        try:
            await asyncio.to_thread(self._prepare_dir)
            if self.env.setup:
                await _call_hook(self.env.setup, self.ctx)
        except Exception as e:  # noqa: BLE001 - any failure of the user's fixture or hook fails the session
            error = f"environment setup failed: {type(e).__name__}: {e}"
        self.emit(EnvironmentOpenedPayload(
            sample_dir=str(self.dir), fixture=self.env.fixture, setup=self.env.setup,
            servers=sorted(session_servers(self.spec.team)), labels=dict(self.spec.labels), error=error),
            status="error" if error else "ok")
        if error is not None:
            self.error = error
            raise EnvironmentSetupError(error, session=str(self.spec.session_id))

    def _prepare_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.env.fixture:
            fixture = Path(self.env.fixture).expanduser()
            if not fixture.is_dir():
                raise ConfigError(f"environment fixture {str(fixture)!r} is not a folder")
            shutil.copytree(fixture, self.dir, dirs_exist_ok=True)

    async def close(self) -> dict[str, Any] | None:
        """Run ``teardown`` once and return the final state it captured (``None`` without one, or on
        failure: a failed teardown is recorded, never raised)."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
            try:
                self._closed.set_result(await self._teardown())
            except BaseException as e:
                self._closed.set_exception(e)
                raise
        return await asyncio.shield(self._closed)

    async def _teardown(self) -> dict[str, Any] | None:
        state: dict[str, Any] | None = None
        error: str | None = None
        if self.env.teardown:
            try:
                value = await _call_hook(self.env.teardown, self.ctx)
                if value is not None and not isinstance(value, dict):
                    raise TypeError(f"a teardown hook returns a dict (the final state), not {type(value).__name__}")
                state = json.loads(json.dumps(value)) if value is not None else None
            except Exception as e:  # noqa: BLE001 - recorded; the session's own outcome stands
                error = f"environment teardown failed: {type(e).__name__}: {e}"
        self.final_state = state
        self.emit(EnvironmentCapturedPayload(sample_dir=str(self.dir), teardown=self.env.teardown,
                                             final_state=state, error=error),
                  status="error" if error else "ok")
        if not self.env.keep_dir:
            await asyncio.to_thread(shutil.rmtree, self.dir, True)
        return state


async def open_environment(spec: SessionSpec, emit: Callable[..., None], restore: bool = False) -> SessionEnvironment:
    """The session's environment, opened (unless ``restore``: a restored session's environment is as
    the crash left it); a failed setup is in its ``error``."""
    env = SessionEnvironment(spec, emit)
    if not restore:
        with contextlib.suppress(EnvironmentSetupError):
            await env.open()
    return env


__all__ = [
    "EnvironmentContext",
    "EnvironmentSetupError",
    "SessionEnvironment",
    "has_environment",
    "load_hook",
    "open_environment",
    "sample_dir_for",
    "session_mcp_tools",
    "session_servers",
    "session_values",
]
