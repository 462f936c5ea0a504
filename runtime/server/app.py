"""The HTTP application: ``build_app(settings)`` -> FastAPI, every router under ``/api/v1``.

    uvicorn:    uvicorn.run(build_app(ServerSettings(local=True)), host="127.0.0.1", port=8321)
    Ray Serve:  troupe.runtime.server.deploy:app (docs/server.md)
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, FastAPI

from troupe.runtime.server import auth, elicitation_routes, session_data, sessions, teams
from troupe.runtime.server.errors import ApiError, api_error_handler
from troupe.runtime.server.models import Health
from troupe.runtime.server.settings import ServerSettings
from troupe.runtime.server.state import Directory, ServerState

API = "/api/v1"
log = logging.getLogger("troupe.server")
OPTIONAL_ROUTERS = ("troupe.runtime.server.evals_routes", "troupe.runtime.server.sql")
"""Routers other modules add (evals, SQL) when they exist: each module exposes ``router``."""


def server_version() -> str:
    try:
        return version("troupe-runtime")
    except PackageNotFoundError:
        return "0"


health_router = APIRouter(tags=["health"])


@health_router.get("/health", response_model=Health)
async def health() -> Health:
    return Health(ok=True, version=server_version())


def _optional_routers() -> list[APIRouter]:
    found = []
    for name in OPTIONAL_ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        found.append(module.router)
    return found


def _mount_console(app: FastAPI) -> None:
    """The console (runtime/server/console.py: a ``router`` of ``/console/...``), when it exists."""
    try:
        console = importlib.import_module("troupe.runtime.server.console")
    except ModuleNotFoundError as e:
        if e.name != "troupe.runtime.server.console":
            raise
        return
    app.include_router(console.router)


def build_app(settings: ServerSettings, *, directory: Directory | None = None, state: ServerState | None = None,
              manage_runtime: bool = True) -> FastAPI:
    """The app over one :class:`ServerState` (made from ``settings`` unless given). ``manage_runtime``:
    start the runtime when the app starts and shut it (and every session it holds) down when it stops."""
    server = state or ServerState(settings, directory=directory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await server.start()
        try:
            yield
        finally:
            if manage_runtime:
                await server.shutdown()

    app = FastAPI(title="Troupe", version=server_version(), lifespan=lifespan, openapi_url=f"{API}/openapi.json",
                  docs_url=f"{API}/docs", redoc_url=None)
    app.state.server = server
    app.state.settings = settings
    app.state.keys_path = settings.keys_path
    app.add_exception_handler(ApiError, api_error_handler)
    auth.install(app, settings)  # keys, roles, rate limits; refusals recorded (after the handler it wraps)
    for router in (health_router, teams.router, sessions.router, session_data.router, elicitation_routes.router,
                   *_optional_routers()):
        app.include_router(router, prefix=API)
    _mount_console(app)
    return app


__all__ = ["API", "build_app", "server_version"]
