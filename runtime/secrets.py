"""Secrets by name: what the team file's ``secrets:`` names, read where it is used, never shown.

A team names its secrets (``BANK: env:BANK_TOKEN``, ``DB: file:/run/secrets/db``); a tool asks for
one by name (``ctx.secret("BANK")``; :func:`get` in an ``io`` or ``cpu`` tool, which has no context;
or ``${secret:BANK}`` in an MCP server's env, args or headers)
and the value is read from the environment variable or the file on the node that uses it. The value
never travels: messages, configs and checkpoints carry the reference, and the model never asks for
it. Every value read is registered for redaction (:func:`troupe.runtime.redact.register_secret`) in
the process that read it, and each process that hosts a session's actors registers its team's
secrets before it emits anything (:func:`register_all`), so events, tool results, checkpoints and
logs show ``[redacted]`` where the value would be. See docs/secrets.md.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from troupe.runtime.errors import ConfigError
from troupe.runtime.redact import REDACTED, register_secret
from troupe.runtime.safety import SecretRef

if TYPE_CHECKING:
    from pydantic import BaseModel

MIN_LENGTH = 6
"""Shorter values cannot be scrubbed from text without scrubbing everything else too
(:func:`~troupe.runtime.redact.register_secret` ignores them), so they are refused."""

REFERENCE = re.compile(r"\$\{secret:([A-Za-z_][A-Za-z0-9_.-]*)\}")
"""``${secret:NAME}`` in an MCP server's env, args or headers."""


class SecretError(ConfigError):
    """A secret cannot be had: an unknown name, an unset variable, a missing or unreadable file."""


def _where() -> str:
    return f"on {socket.gethostname()} (pid {os.getpid()})"


def _read(name: str, ref: SecretRef) -> str:
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise SecretError(
                f"secret {name!r} is read from the environment variable {ref.env}, which is not set {_where()}; "
                f"export {ref.env} where the runtime runs (on Ray, in the environment of `ray start` on every node "
                f"that runs the tool), or use a file (file:/path) instead",
                secret=name, env=ref.env)
        what = f"the environment variable {ref.env}"
    else:
        assert ref.file is not None
        path = Path(ref.file).expanduser()
        try:
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            raise SecretError(f"secret {name!r} is read from the file {path}, which does not exist {_where()}; "
                              f"create it (the value on one line) on every node that runs the tool, or fix the path",
                              secret=name, file=str(path)) from None
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            raise SecretError(f"secret {name!r} is read from the file {path}, which cannot be read {_where()} ({why}); "
                              f"make it a UTF-8 text file readable by the user {getpass.getuser()!r}",
                              secret=name, file=str(path)) from None
        what = f"the file {path}"
    if not value:
        raise SecretError(f"secret {name!r}: {what} is empty {_where()}; put the secret's value there",
                          secret=name)
    if len(value) < MIN_LENGTH:
        raise SecretError(f"secret {name!r}: the value in {what} is shorter than {MIN_LENGTH} characters, too short "
                          f"to be scrubbed from events and logs; use a longer secret", secret=name)
    return value


def resolve(name: str, refs: Mapping[str, SecretRef]) -> str:
    """The value of the team's secret ``name``, read here and now (env var or file), and registered
    for redaction in this process. Raises :class:`SecretError` saying what is wrong and how to fix it."""
    ref = refs.get(name)
    if ref is None:
        known = ", ".join(sorted(refs)) or "none"
        raise SecretError(f"unknown secret {name!r}; this team's secrets are: {known} (a team names them under "
                          f"'secrets:' in its team file, e.g. '{name}: env:VARIABLE')", secret=name)
    value = _read(name, ref)
    register_secret(value)
    return value


def register_all(refs: Mapping[str, SecretRef]) -> list[str]:
    """Read and register every secret of ``refs`` that can be read in this process (the ones that
    cannot, for example a file that only exists on another node, are left to whoever reads them);
    returns the names registered. Called where a session's actors start, before any event."""
    done: list[str] = []
    for name in refs:
        try:
            resolve(name, refs)
        except SecretError:
            continue
        done.append(name)
    return done


@dataclass
class _CallSecrets:
    refs: Mapping[str, SecretRef]
    read: list[str] = field(default_factory=list)


_CALL: ContextVar[_CallSecrets | None] = ContextVar("troupe_call_secrets", default=None)
_T = TypeVar("_T")


def get(name: str) -> str:
    """The value of the team's secret ``name``, for the tool call running now: an ``io`` or ``cpu``
    tool (a plain function, with no context) asks for a secret this way, wherever it runs. The call
    carries the session's references, never values; the value is read here, from the environment
    variable or the file (:func:`resolve`), registered for redaction, and scrubbed from the tool's
    result before it leaves this process. Raises :class:`SecretError` outside a tool call."""
    call = _CALL.get()
    if call is None:
        raise SecretError(f"secret {name!r} was asked for outside a tool call: troupe.runtime.secrets.get works in a "
                          "tool the runtime runs (inline, io or cpu; a tool with a ctx can use ctx.secret); a cpu tool "
                          "with sandbox=True runs in a sandbox that holds no secrets", secret=name)
    value = resolve(name, call.refs)
    call.read.append(value)
    return value


@contextmanager
def tool_call(refs: Mapping[str, SecretRef]) -> Iterator[list[str]]:
    """Within: :func:`get` resolves against ``refs`` (one call's session's secrets). Yields the
    values read so far, for :func:`scrub`."""
    call = _CallSecrets(refs)
    token = _CALL.set(call)
    try:
        yield call.read
    finally:
        _CALL.reset(token)


async def call_with(refs: Mapping[str, SecretRef], run: Callable[[], Awaitable[_T]]) -> _T:
    """``await run()`` (one tool call) with :func:`get` resolving against ``refs``; what it returns,
    with the values it read :func:`scrub`-bed out."""
    with tool_call(refs) as read:
        value = await run()
    return scrub(value, read)


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with each of ``secrets`` replaced by ``[redacted]`` in its text: strings, and the
    strings in lists, tuples and dicts (keys too); anything else as it is. The same object when
    nothing changes."""
    found = [s for s in set(secrets) if s]
    if not found:
        return value

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            for s in found:
                if s in v:
                    v = v.replace(s, REDACTED)
            return v
        if isinstance(v, (list, tuple)):
            items = [walk(x) for x in v]
            return v if all(a is b for a, b in zip(items, v, strict=True)) else (items if isinstance(v, list) else tuple(items))
        if isinstance(v, dict):
            pairs = [(walk(k), walk(x)) for k, x in v.items()]
            return v if all(k is k0 and x is x0 for (k, x), (k0, x0) in zip(pairs, v.items(), strict=True)) else dict(pairs)
        return v

    return walk(value)


def expand(text: str, refs: Mapping[str, SecretRef], *, where: str) -> str:
    """``text`` with each ``${secret:NAME}`` replaced by the secret's value (read and registered here)."""
    if "${secret:" not in text:
        return text

    def sub(m: re.Match[str]) -> str:
        try:
            return resolve(m.group(1), refs)
        except SecretError as e:
            raise SecretError(f"{where}: {e.message}", **e.fields) from None

    return REFERENCE.sub(sub, text)


def referenced(texts: Iterable[str]) -> set[str]:
    """The secret names ``${secret:NAME}`` references in ``texts``."""
    return {m.group(1) for text in texts for m in REFERENCE.finditer(text)}


_Server = TypeVar("_Server", bound="BaseModel")


def bind_servers(servers: Mapping[str, _Server], refs: Mapping[str, SecretRef]) -> dict[str, _Server]:
    """MCP server configs (``McpServerConfig``) given the references of the secrets they name with
    ``${secret:NAME}`` (in their ``secrets`` field), so whoever starts a server can read them; a name
    the team does not define is an error that lists the ones it does."""
    out: dict[str, _Server] = {}
    for server, cfg in servers.items():
        own: dict[str, SecretRef] = dict(getattr(cfg, "secrets", {}))
        texts: list[str] = [*getattr(cfg, "args", ()), *getattr(cfg, "env", {}).values(),
                            *getattr(cfg, "headers", {}).values()]
        names = referenced(texts)
        unknown = sorted(n for n in names if n not in refs and n not in own)
        if unknown:
            known = ", ".join(sorted(refs)) or "none"
            raise ValueError(f"MCP server {server!r} names secret(s) {unknown} (${{secret:...}}) that are not under "
                             f"'secrets:'; this team's secrets are: {known}")
        wanted = {n: refs[n] for n in sorted(names) if n in refs}
        if not names or all(own.get(n) == r for n, r in wanted.items()):
            out[server] = cfg
        else:
            update: dict[str, Any] = {"secrets": {**own, **wanted}}
            out[server] = cfg.model_copy(update=update)
    return out


__all__ = ["MIN_LENGTH", "REFERENCE", "SecretError", "bind_servers", "call_with", "expand", "get", "referenced", "register_all",
           "resolve", "scrub", "tool_call"]
