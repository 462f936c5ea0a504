"""Resource subscriptions: an agent subscribes to a server's resource (``<server>__subscribe_resource``) and each
``notifications/resources/updated`` for that URI reaches it, through its session's ``on_update`` (a notice in
its mailbox and an ``mcp.resource_updated`` event: :mod:`troupe.runtime.agent.mcp_events`).

One connection may serve several sessions (``scope: node``): the server is asked once per URI
(``resources/subscribe`` for the first subscriber, ``resources/unsubscribe`` after the last one left), and each
update goes to every subscriber of that URI on that connection, each through its own ``on_update``: a session
never hears of another's subscriptions. A session's subscriptions end with it (:meth:`Subscriptions.end_session`);
a connection opened again after its server died subscribes again to what its subscribers still want.
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from troupe.runtime.errors import ToolArgumentError
from troupe.tools.mcp.models import CallerInfo, McpCallResult
from troupe.tools.mcp.specs import SUBSCRIBE, UNSUBSCRIBE

if TYPE_CHECKING:
    from troupe.tools.mcp.connection import McpConnection

logger = logging.getLogger(__name__)

SUBSCRIPTION_TOOLS = (SUBSCRIBE, UNSUBSCRIBE)

Updater = Callable[[dict[str, Any]], Any]
"""Told of each update of a subscribed resource (``{"server", "uri"}``); may be a coroutine function."""
Subscriber = tuple[str, str]
"""``(session id, agent)``."""


def can_subscribe(conn: McpConnection) -> bool:
    resources = conn.capabilities.resources
    return resources is not None and bool(resources.subscribe)


class Subscriptions:
    """Who is subscribed to what, per connection key (a manager's)."""

    def __init__(self) -> None:
        self._subs: dict[str, dict[str, dict[Subscriber, Updater]]] = {}

    def uris(self, key: str) -> list[str]:
        return sorted(self._subs.get(key, {}))

    def subscribers(self, key: str, uri: str) -> list[Subscriber]:
        return sorted(self._subs.get(key, {}).get(uri, {}))

    async def call(self, conn: McpConnection, tool: str, arguments: dict[str, Any], caller: CallerInfo | None,
                   on_update: Updater | None) -> McpCallResult:
        """``subscribe_resource`` / ``unsubscribe_resource`` for ``caller`` (its session and agent)."""
        uri = arguments.get("uri")
        if not isinstance(uri, str) or not uri:
            raise ToolArgumentError(f"{tool} needs a 'uri' string argument", tool=tool)
        if not can_subscribe(conn):
            raise ToolArgumentError(f"MCP server {conn.server!r} does not offer resource subscriptions", tool=tool)
        who: Subscriber = (caller.session_id, caller.agent) if caller is not None else ("", "")
        if tool == UNSUBSCRIBE:
            dropped = await self._drop(conn, uri, who)
            text = f"Unsubscribed from {uri}." if dropped else f"You were not subscribed to {uri}."
            return McpCallResult(text=text, subscription={"server": conn.server, "uri": uri, "action": "unsubscribe",
                                                          "changed": dropped})
        if on_update is None:
            raise ToolArgumentError(f"{tool}: this call has nobody to tell of updates (it needs a session)", tool=tool)
        subs = self._subs.setdefault(conn.key, {}).setdefault(uri, {})
        if not subs:
            try:
                await self._subscribe(conn, uri)
            except BaseException:
                self._forget(conn.key, uri)
                raise
        new = who not in subs
        subs[who] = on_update
        text = (f"Subscribed to {uri}: each time it changes you get a notice message; read it then with "
                f"{conn.server}__read_resource. Unsubscribe with {conn.server}__{UNSUBSCRIBE}.")
        return McpCallResult(text=text if new else f"Already subscribed to {uri}.",
                             subscription={"server": conn.server, "uri": uri, "action": "subscribe", "changed": new})

    async def updated(self, conn: McpConnection, uri: str) -> int:
        """The server says ``uri`` changed: tell each of its subscribers on ``conn``; returns how many."""
        subs = dict(self._subs.get(conn.key, {}).get(uri, {}))
        for (session_id, agent), on_update in subs.items():
            note = {"server": conn.server, "uri": uri, "session_id": session_id, "agent": agent}
            try:
                outcome = on_update(note)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # noqa: BLE001 - one subscriber's failure must not keep the others uninformed
                logger.exception("telling %s/%s of an update of %s failed", session_id, agent, uri)
        return len(subs)

    async def resubscribe(self, conn: McpConnection) -> None:
        """A new connection under a key with subscribers (the old one died): ask the server again."""
        for uri in self.uris(conn.key):
            try:
                await self._subscribe(conn, uri)
            except Exception as e:  # noqa: BLE001 - the subscribers stay; a later update may still come
                logger.warning("MCP server %r: subscribing again to %s failed: %s", conn.server, uri, e)

    async def end_session(self, session_id: str, conns: dict[str, McpConnection]) -> int:
        """Drop every subscription of ``session_id``; a URI nobody else wants is unsubscribed. Returns how many."""
        ended = 0
        for key in list(self._subs):
            for uri in list(self._subs.get(key, {})):
                mine = [who for who in self._subs[key][uri] if who[0] == session_id]
                for who in mine:
                    ended += await self._drop(conns.get(key), uri, who, key=key)
        return ended

    async def _drop(self, conn: McpConnection | None, uri: str, who: Subscriber, key: str | None = None) -> int:
        key = key or (conn.key if conn is not None else "")
        subs = self._subs.get(key, {}).get(uri)
        if subs is None or subs.pop(who, None) is None:
            return 0
        if not subs:
            self._forget(key, uri)
            if conn is not None and conn.alive:
                try:
                    await conn.request(f"unsubscribing from {uri!r}", lambda c: _ask(c, uri, False),
                                       conn.cfg.timeout_s)
                except Exception as e:  # noqa: BLE001 - best effort: we no longer listen anyway
                    logger.info("MCP server %r: resources/unsubscribe %s failed: %s", conn.server, uri, e)
        return 1

    @staticmethod
    async def _subscribe(conn: McpConnection, uri: str) -> None:
        await conn.request(f"subscribing to {uri!r}", lambda c: _ask(c, uri, True), conn.cfg.timeout_s)

    def _forget(self, key: str, uri: str) -> None:
        by_uri = self._subs.get(key, {})
        by_uri.pop(uri, None)
        if not by_uri:
            self._subs.pop(key, None)

    def forget_keys(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._subs.pop(key, None)


async def _ask(client: Any, uri: str, subscribe: bool) -> Any:
    """``resources/subscribe`` / ``unsubscribe`` (the SDK marks them deprecated: 2026 servers use
    ``subscriptions/listen``; a 2025 server answers them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pending = client.subscribe_resource(uri) if subscribe else client.unsubscribe_resource(uri)
        return await pending


__all__ = ["SUBSCRIBE", "SUBSCRIPTION_TOOLS", "UNSUBSCRIBE", "Subscriptions", "Updater", "can_subscribe"]
