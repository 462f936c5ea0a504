"""A session's workspace folder, and the containment every file and shell tool goes through.

A path the model gives is relative to the workspace root. :meth:`Workspace.resolve` turns it into
a real path inside the root or raises a model-visible error that says what was wrong and how to
fix it: absolute paths, ``..`` that climbs out, and symbolic links (anywhere along the path,
dangling ones included) that lead outside are refused.

Resolving and then opening leaves a window in which a component could be swapped for a symlink
(a shell command running at the same time, say). :meth:`Workspace.open` closes it: it walks the
resolved path one folder at a time from the root with ``O_NOFOLLOW``, so a symlink met on the way
is refused instead of followed.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from troupe.runtime.errors import ModelVisibleError, PermissionDeniedError, ToolArgumentError, ToolExecutionError

if TYPE_CHECKING:
    from troupe.tools.context import ToolContext

_EXAMPLE = "notes/x.txt"


class Workspace:
    """Containment over one root folder (created on first use)."""

    def __init__(self, root: str | os.PathLike[str], *, tool: str | None = None) -> None:
        self._given = Path(root)
        self._real: Path | None = None
        self.tool = tool

    @classmethod
    def of(cls, ctx: ToolContext, tool: str) -> Workspace:
        """The workspace of the calling session; a model-visible error when it has none."""
        if ctx.workspace is None:
            raise ToolExecutionError(
                f"tool {tool!r} needs a workspace folder, and this session has none; the file and shell tools "
                f"are unavailable here, so carry on without them",
                tool=tool,
            )
        return cls(ctx.workspace, tool=tool)

    # --- the root ------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The real path of the root folder, created if missing."""
        if self._real is None:
            self._given.mkdir(parents=True, exist_ok=True)
            self._real = Path(os.path.realpath(self._given))
        return self._real

    def contains(self, real: str | os.PathLike[str]) -> bool:
        """Whether a real (symlink-free, absolute) path is the root or under it."""
        try:
            Path(real).relative_to(self.root)
        except ValueError:
            return False
        return True

    def relative(self, real: str | os.PathLike[str]) -> str:
        """How the model names a real path inside the workspace (``"."`` for the root)."""
        rel = Path(real).relative_to(self.root).as_posix()
        return rel or "."

    # --- resolving model-given paths -------------------------------------------------------------
    def _fields(self, path: str) -> dict[str, Any]:
        return {"tool": self.tool, "path": path} if self.tool else {"path": path}

    def _denied(self, message: str, path: str) -> PermissionDeniedError:
        return PermissionDeniedError(message, **self._fields(path), reason="outside_workspace")

    def resolve(self, path: str) -> Path:
        """The real path inside the workspace that ``path`` (relative to the root) names.

        The target need not exist. Raises a model-visible error for anything that leaves the root.
        """
        raw = path.strip()
        if "\x00" in raw:
            raise ToolArgumentError(f"path {path!r} contains a NUL character; use a plain relative path such as "
                                    f"{_EXAMPLE!r}", **self._fields(path))
        if not raw:
            raw = "."
        pure = PurePosixPath(raw)
        if pure.is_absolute():
            raise self._denied(self._absolute_message(path, raw), path)
        depth = 0
        for part in pure.parts:
            if part == "..":
                depth -= 1
                if depth < 0:
                    raise self._denied(
                        f"path {path!r} leaves the workspace; use a path relative to the workspace root such as "
                        f"{_EXAMPLE!r} (the root itself is '.')",
                        path,
                    )
            elif part != ".":
                depth += 1
        real = Path(os.path.realpath(self.root / raw))
        if not self.contains(real):
            link = self._outside_link(pure)
            if link is None:
                through = "passes through a symbolic link that"
            elif link == "/".join(p for p in pure.parts if p != "."):
                through = "is a symbolic link that"
            else:
                through = f"goes through the symbolic link {link!r}, which"
            raise self._denied(
                f"path {path!r} {through} points outside the workspace; only files inside the workspace can be "
                f"used, so pick a path that is not a link to elsewhere (list_files shows what is there)",
                path,
            )
        return real

    def _absolute_message(self, path: str, raw: str) -> str:
        real = Path(os.path.realpath(raw))
        if self.contains(real):
            hint = f"here that is {self.relative(real)!r}"
        else:
            hint = f"such as {_EXAMPLE!r}"
        return (f"path {path!r} is absolute; the file tools only reach the workspace, so use a path relative to "
                f"the workspace root ({hint})")

    def _outside_link(self, pure: PurePosixPath) -> str | None:
        """The first symlink along ``pure`` whose target is outside the root (for the error message)."""
        current = self.root
        shown: list[str] = []
        for part in pure.parts:
            if part == ".":
                continue
            current = current / part
            shown.append(part)
            if part != ".." and current.is_symlink() and not self.contains(os.path.realpath(current)):
                return "/".join(shown)
        return None

    # --- opening without following links -------------------------------------------------------
    def open(self, real: Path, flags: int, mode: int = 0o644, *, make_parents: bool = False,
             shown: str | None = None) -> int:
        """Open a real path from :meth:`resolve` with ``os.open`` flags, refusing any symlink on the way.

        ``make_parents`` creates missing folders. Returns a file descriptor the caller closes.
        """
        shown = shown if shown is not None else self.relative(real)
        parts = Path(real).relative_to(self.root).parts
        if not parts:
            raise ToolExecutionError(f"{shown!r} is the workspace folder itself, not a file; name a file inside "
                                     f"it such as {_EXAMPLE!r}", **self._fields(shown))
        dir_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i, part in enumerate(parts[:-1]):
                try:
                    next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                except FileNotFoundError:
                    if not make_parents:
                        raise
                    try:
                        os.mkdir(part, 0o777, dir_fd=dir_fd)
                    except FileExistsError:
                        pass
                    next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                except OSError as e:
                    raise self._walk_error(e, "/".join(parts[: i + 1]), shown) from None
                os.close(dir_fd)
                dir_fd = next_fd
            try:
                return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise self._walk_error(e, "/".join(parts), shown) from None
                raise
        finally:
            os.close(dir_fd)

    def _walk_error(self, e: OSError, where: str, shown: str) -> ModelVisibleError:
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(self.root / where):
            return self._denied(
                f"path {shown!r} goes through {where!r}, which is (now) a symbolic link; the file tools do not "
                f"follow links they did not check, so use the real path of the file",
                shown,
            )
        if e.errno == errno.ENOTDIR:
            return ToolExecutionError(f"{where!r} is a file, not a folder, so {shown!r} cannot be inside it",
                                      **self._fields(shown))
        return ToolExecutionError(f"cannot open {shown!r}: {e.strerror}", **self._fields(shown))


__all__ = ["Workspace"]
