"""``troupe a2a serve TEAM``: the team as an A2A agent over HTTP (JSON-RPC; the 1.0 method names and 0.3's
``message/send``, ``message/stream``, ``tasks/get``, ``tasks/cancel``), its card at ``/.well-known/agent-card.json``.

Sessions run in this process (``--local``) or on Ray; the lake records them like any other session.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from starlette.applications import Starlette

from troupe.runtime.a2a.access import gate
from troupe.runtime.a2a.card import agent_card
from troupe.runtime.a2a.executor import TeamExecutor
from troupe.runtime.access import KeyStore, check_bind
from troupe.runtime.config import TeamConfig

log = logging.getLogger("troupe.a2a")


@dataclass
class A2AOptions:
    team: str
    host: str = "127.0.0.1"
    port: int = 8040
    lake: str | None = None
    local: bool = False
    address: str | None = None
    placement: str | None = None
    model: str | None = None
    public_url: str | None = None
    """The URL the card advertises (default ``http://HOST:PORT/``; set it behind a proxy)."""
    turn_timeout_s: float | None = None
    keys_path: str | None = None


def build_app(team: TeamConfig, executor: TeamExecutor, *, url: str, secured: bool,
              on_stop: Callable[[], Awaitable[None]] | None = None) -> Starlette:
    """The A2A Starlette app (card + JSON-RPC) for ``team`` run by ``executor``; no access control. Its lifespan's
    end closes the handler, every session (``executor.close``), then ``on_stop()`` - inside uvicorn's shutdown, so a
    signal cannot cut it short."""
    card = agent_card(team, url, secured=secured)
    handler = DefaultRequestHandler(agent_executor=executor, task_store=InMemoryTaskStore(), agent_card=card)
    routes = [*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True)]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await handler.aclose()
            await executor.close()
            if on_stop is not None:
                await on_stop()

    return Starlette(routes=routes, lifespan=lifespan)


async def serve(options: A2AOptions) -> None:
    """Serve until interrupted; every session is closed on the way out."""
    import uvicorn

    from troupe.runtime.api import Troupe, as_team, validate_team
    from troupe.tools.builtins import default_registry

    team = as_team(options.team)
    if options.model:
        team = team.with_model(options.model)
    validate_team(team, default_registry())
    store = KeyStore(options.keys_path)
    check_bind(options.host, store, what="troupe a2a serve")
    troupe = await Troupe.start(local=options.local, lake=options.lake, address=options.address,
                                placement=options.placement)

    async def open_session(owner: str | None) -> Any:
        return await troupe.open(team, placement=options.placement, conversation=True, owner=owner)

    executor = TeamExecutor(open_session, turn_timeout_s=options.turn_timeout_s)
    url = options.public_url or f"http://{options.host}:{options.port}/"
    async def stop() -> None:
        denials.close()
        await troupe.shutdown()
        log.info("stopped")

    app = build_app(team, executor, url=url, secured=store.configured(), on_stop=stop)
    guarded, denials = gate(app, store, troupe.lake)
    server = uvicorn.Server(uvicorn.Config(guarded, host=options.host, port=options.port, log_level="warning",
                                           lifespan="on"))
    print(f"troupe a2a serve: team {team.name!r} at {url} (card {url.rstrip('/')}/.well-known/agent-card.json; "
          f"lake {troupe.lake}; {'API keys required' if store.configured() else 'loopback clients, no keys'})",
          file=sys.stderr, flush=True)
    await server.serve()


__all__ = ["A2AOptions", "build_app", "serve"]
