"""Tool lookup by name, with suggestions when a name is wrong.

An agent's ``tools`` list may name a tool (``calculator``), a pattern over names (``time__*``:
every tool of the MCP server ``time``), or a Python tool by import path (``pkg.module:attr``,
a :func:`~troupe.tools.spec.tool` or a plain typed function, which becomes one).
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import weakref
from collections.abc import Iterable

from troupe.runtime.errors import ConfigError, UnknownToolError
from troupe.tools.spec import Tool

_GRANTED_ONLY: set[str] = set()


def granted_only(*names: str) -> None:
    """Mark tools that an agent gets only through a capability (the memory tools: its ``memory`` scope); a
    pattern in ``tools`` (``*``) never selects them, so an agent is not handed tools its services refuse."""
    _GRANTED_ONLY.update(names)


class ToolNameClashError(ConfigError, ValueError):
    """Two different tools with one name (a team's Python tool named like a built-in): a model calls tools by name."""


def _origin(t: Tool) -> str:
    fn = t.fn
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', getattr(fn, '__name__', '?'))}"


def _clash(known: Tool, new: Tool) -> ToolNameClashError:
    name, theirs = new.name, _origin(known)
    what = "the built-in tool" if theirs.startswith("troupe.tools.") else "the tool"
    return ToolNameClashError(
        f"tool {name!r} ({_origin(new)}) has the name of {what} {name!r} ({theirs}); tool names must be unique "
        f"(the model calls tools by name): rename yours (@tool(name=\"my_{name}\")), or list {name!r} to use the "
        "existing one", tool=name)


class ToolRegistry:
    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.register(t)

    def register(self, tool: Tool) -> Tool:
        """Add ``tool``; registering it again (or an equal tool made from the same function) is a
        no-op that returns the one already there; a different tool of that name is a :class:`ToolNameClashError`."""
        known = self._tools.get(tool.name)
        if known is not None and known is not tool:
            if known.fn is tool.fn and known.spec == tool.spec:
                return known
            raise _clash(known, tool)
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._tools, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "."
            raise UnknownToolError(
                f"unknown tool {name!r}{hint} Known tools: {', '.join(sorted(self._tools))}", tool=name
            ) from None

    def resolve(self, names: Iterable[str]) -> list[Tool]:
        """The tools an agent's ``tools`` list selects, in order, each once."""
        out: dict[str, Tool] = {}
        for entry in names:
            for t in self._select(entry):
                out.setdefault(t.name, t)
        return list(out.values())

    def _select(self, entry: str) -> list[Tool]:
        if is_import_path(entry):
            return [self.register(import_tool(entry))]
        if any(c in entry for c in "*?["):
            matched = [self._tools[n] for n in sorted(self._tools) if fnmatch.fnmatchcase(n, entry) and n not in _GRANTED_ONLY]
            if not matched:
                raise UnknownToolError(f"no tool matches {entry!r}; known tools: {', '.join(sorted(self._tools))}",
                                       tool=entry)
            return matched
        return [self.get(entry)]

    def overlay(self, tools: Iterable[Tool]) -> ToolRegistry:
        """A copy with ``tools`` added (a session's MCP tools on top of the built-ins)."""
        reg = ToolRegistry(self._tools.values())
        for t in tools:
            reg.register(t)
        return reg

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools


def is_import_path(entry: str) -> bool:
    module, sep, attr = entry.partition(":")
    return bool(sep and module and attr) and all(part.isidentifier() for part in (*module.split("."), *attr.split(".")))


_made: weakref.WeakKeyDictionary[object, Tool] = weakref.WeakKeyDictionary()
"""Tools made from plain functions or classes, by the object: one tool per function, however often
a team that lists it is opened (two different tools under one name would collide in a registry)."""


def import_tool(path: str) -> Tool:
    """Load ``pkg.module:attr``: a :class:`Tool`, or a typed function or class to make one of."""
    from troupe.tools.spec import tool as make_tool

    module_name, _, attr = path.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownToolError(f"tool {path!r}: cannot import module {module_name!r} ({e}); is it installed on every "
                               "node (or in the job's working_dir)?", tool=path) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UnknownToolError(f"tool {path!r}: module {module_name!r} has no {attr!r}", tool=path) from None
    if isinstance(obj, Tool):
        return obj
    if callable(obj):
        try:
            made = _made.get(obj)
        except TypeError:  # not weakly referable: made afresh (the registry still accepts its twin)
            return make_tool(obj)
        if made is None:
            made = _made[obj] = make_tool(obj)
        return made
    raise UnknownToolError(f"tool {path!r} is a {type(obj).__name__}, not a tool or a function", tool=path)


__all__ = ["ToolNameClashError", "ToolRegistry", "import_tool", "is_import_path"]
