"""File tools over the session's workspace folder: read, write, list and search.

Every path goes through :class:`troupe.tools.workspace.Workspace`, which keeps it inside the workspace
(no absolute paths, no ``..`` out, no symbolic links to elsewhere). Paths in results are relative
to the workspace root, so the model can pass them straight back. Files are read as UTF-8 (bad
bytes replaced); every result is capped, and a cut says so and how to get the rest.
"""

from __future__ import annotations

import errno
import io
import os
import re
import stat
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

from troupe.runtime.errors import ModelVisibleError, ToolArgumentError, ToolExecutionError
from troupe.tools.context import ToolContext
from troupe.tools.spec import tool
from troupe.tools.workspace import Workspace

MAX_READ_CHARS = 100_000
"""Most characters one read_file call returns; a longer file is read in pieces with offset."""
MAX_LIST_ENTRIES = 500
MAX_MATCHES = 200
MAX_MATCH_LINE_CHARS = 300
MAX_SEARCH_FILES = 5_000
MAX_SEARCH_FILE_BYTES = 5_000_000
BINARY_PROBE_BYTES = 8_192
"""A file with a NUL byte in its first 8 KB is taken as binary."""
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache",
                       ".pytest_cache", ".ruff_cache", ".tox"})
"""Folders a recursive listing or a search does not go into (listed, not expanded)."""

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK  # a FIFO must not block the open


# --- helpers -------------------------------------------------------------------------------------
def _os_error(e: OSError, shown: str, tool_name: str, *, action: str) -> ModelVisibleError:
    fields = {"tool": tool_name, "path": shown}
    if isinstance(e, FileNotFoundError):
        return ToolExecutionError(f"cannot {action} {shown!r}: no such file or folder in the workspace; call "
                                  f"list_files to see what exists", **fields)
    if isinstance(e, IsADirectoryError):
        return ToolExecutionError(f"cannot {action} {shown!r}: it is a folder; name a file inside it instead "
                                  f"(list_files shows its contents)", **fields)
    if isinstance(e, NotADirectoryError):
        return ToolExecutionError(f"cannot {action} {shown!r}: a part of the path before the last one is a file, "
                                  f"not a folder", **fields)
    if isinstance(e, PermissionError):
        return ToolExecutionError(f"cannot {action} {shown!r}: permission denied by the file system", **fields)
    if e.errno == errno.ENXIO:
        return ToolExecutionError(f"cannot {action} {shown!r}: it is not a regular file", **fields)
    return ToolExecutionError(f"cannot {action} {shown!r}: {e.strerror or e}", **fields)


def _open_regular(ws: Workspace, real: Path, flags: int, shown: str, tool_name: str, *, action: str,
                  make_parents: bool = False) -> int:
    """Open ``real`` (from ``ws.resolve``) as a regular file; folders and special files are refused."""
    try:
        fd = ws.open(real, flags, make_parents=make_parents, shown=shown)
    except ModelVisibleError:
        raise
    except OSError as e:
        raise _os_error(e, shown, tool_name, action=action) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a folder; call list_files on it instead" if stat.S_ISDIR(mode) else "not a regular file"
        raise ToolExecutionError(f"cannot {action} {shown!r}: it is {what}", tool=tool_name, path=shown)
    return fd


def _looks_binary(head: bytes) -> bool:
    return b"\x00" in head


def _with_note(text: str, note: str) -> str:
    return text + ("" if not text or text.endswith("\n") else "\n") + note


# --- read_file -----------------------------------------------------------------------------------
@tool(level="L1", scopes=("file:read",), idempotent=True, source="builtin")
def read_file(ctx: ToolContext, path: str, offset: int = 1, limit: int | None = None) -> str:
    """Read a text file from the workspace (at most 100 KB per call; use offset to read on).

    Args:
        path: File path relative to the workspace root, e.g. "notes/plan.md".
        offset: Line number to start at (1 = the first line).
        limit: Most lines to return (default: as many as fit in 100 KB).
    """
    name = "read_file"
    if offset < 1:
        raise ToolArgumentError(f"offset must be a line number of 1 or more (1 = the first line), got {offset}",
                                tool=name)
    if limit is not None and limit < 1:
        raise ToolArgumentError(f"limit must be 1 or more lines (or left out for as much as fits), got {limit}",
                                tool=name)
    ws = Workspace.of(ctx, name)
    real = ws.resolve(path)
    shown = ws.relative(real)
    fd = _open_regular(ws, real, _READ_FLAGS, shown, name, action="read")
    with os.fdopen(fd, "rb") as raw:
        if _looks_binary(raw.read(BINARY_PROBE_BYTES)):
            size = os.fstat(raw.fileno()).st_size
            raise ToolExecutionError(f"{shown!r} looks like a binary file ({size} bytes); read_file shows text "
                                     f"files only", tool=name, path=shown)
        raw.seek(0)
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="\n")
        lines: list[str] = []
        size = 0
        lineno = 0
        more = False
        cut_line = False
        for line in text:
            lineno += 1
            if lineno < offset:
                continue
            if limit is not None and len(lines) >= limit:
                more = True
                break
            if size + len(line) > MAX_READ_CHARS:
                if not lines:  # one line longer than the cap: show its start
                    lines.append(line[:MAX_READ_CHARS])
                    cut_line = True
                    # whether anything follows this line
                    more = next(text, None) is not None
                else:
                    more = True
                break
            lines.append(line)
            size += len(line)
        text.detach()
    if not lines:
        if lineno == 0:
            return f"({shown!r} is empty)"
        raise ToolArgumentError(f"offset {offset} is past the end of {shown!r}, which has {lineno} lines; "
                                f"use an offset from 1 to {lineno}", tool=name, path=shown)
    body = "".join(lines)
    last = offset + len(lines) - 1
    notes = []
    if cut_line:
        notes.append(f"[line {last} is longer than {MAX_READ_CHARS} characters; only its start is shown]")
    if more:
        notes.append(f"[showing lines {offset}-{last} of {shown!r}; more follows: call read_file with "
                     f"offset={last + 1} to continue]")
    return _with_note(body, "\n".join(notes)) if notes else body


# --- write_file ----------------------------------------------------------------------------------
@tool(level="L2", scopes=("file:write",), source="builtin")
def write_file(ctx: ToolContext, path: str, content: str, append: bool = False) -> str:
    """Write text to a file in the workspace, creating it and its folders if needed.

    Args:
        path: File path relative to the workspace root, e.g. "notes/plan.md".
        content: The text to write (UTF-8).
        append: Add to the end of the file instead of replacing its content.
    """
    name = "write_file"
    ws = Workspace.of(ctx, name)
    if path.strip().endswith("/"):
        raise ToolArgumentError(f"path {path!r} ends with '/', which names a folder; give a file name such as "
                                f"{path.strip() + 'notes.txt'!r}", tool=name, path=path)
    real = ws.resolve(path)
    shown = ws.relative(real)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | (os.O_APPEND if append else 0)
    fd = _open_regular(ws, real, flags, shown, name, action="write", make_parents=True)
    data = content.encode("utf-8", errors="replace")
    try:
        if not append:
            os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        total = os.fstat(fd).st_size
    except OSError as e:
        raise _os_error(e, shown, name, action="write") from None
    finally:
        os.close(fd)
    if append:
        return f"appended {len(data)} bytes to {shown!r} (now {total} bytes)"
    return f"wrote {len(data)} bytes to {shown!r}"


# --- list_files ----------------------------------------------------------------------------------
def _entries(dirpath: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(dirpath) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _target(ws: Workspace, entry: os.DirEntry[str]) -> tuple[bool, bool]:
    """(usable, is_dir) for an entry: a symlink is usable only when it resolves inside the workspace."""
    if entry.is_symlink():
        target = os.path.realpath(entry.path)
        if not ws.contains(target):
            return False, False
        return True, os.path.isdir(target)
    try:
        return True, entry.is_dir(follow_symlinks=False)
    except OSError:
        return True, False


@tool(level="L1", scopes=("file:read",), idempotent=True, source="builtin")
def list_files(ctx: ToolContext, path: str = ".", recursive: bool = False) -> str:
    """List the files and folders in a workspace folder (folders end with "/").

    Args:
        path: Folder relative to the workspace root; "." is the root.
        recursive: Also list everything inside subfolders.
    """
    name = "list_files"
    ws = Workspace.of(ctx, name)
    real = ws.resolve(path)
    shown = ws.relative(real)
    if not real.exists():
        raise ToolExecutionError(f"there is no folder {shown!r} in the workspace; call list_files with path '.' "
                                 f"to see what exists", tool=name, path=shown)
    if not real.is_dir():
        raise ToolExecutionError(f"{shown!r} is a file, not a folder; use read_file to read it", tool=name,
                                 path=shown)
    out: list[str] = []
    not_expanded: list[str] = []
    truncated = False
    stack: list[Iterator[os.DirEntry[str]]] = [iter(_entries(str(real)))]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        if len(out) >= MAX_LIST_ENTRIES:
            truncated = True
            break
        _, is_dir = _target(ws, entry)
        rel = ws.relative(entry.path)
        out.append(rel + "/" if is_dir else rel)
        if recursive and is_dir and not entry.is_symlink():
            if entry.name in SKIP_DIRS:
                not_expanded.append(rel + "/")
            else:
                stack.append(iter(_entries(entry.path)))
    if not out:
        return f"(folder {shown!r} is empty)"
    notes = []
    if not_expanded:
        notes.append(f"[not expanded: {', '.join(not_expanded)}; list them by path to see inside]")
    if truncated:
        notes.append(f"[stopped at {MAX_LIST_ENTRIES} entries; list a subfolder, or use search_files with a glob, "
                     f"to see the rest]")
    return "\n".join(out + notes)


# --- search_files --------------------------------------------------------------------------------
def _glob_matches(glob: str, rel: str) -> bool:
    base = rel.rsplit("/", 1)[-1]
    if "/" not in glob:
        return fnmatch(base, glob)
    return fnmatch(rel, glob) or (glob.startswith("**/") and _glob_matches(glob[3:], rel))


def _files_under(ws: Workspace, real: Path) -> Iterator[tuple[str, Path]]:
    """(shown path, real path) of every usable file under a folder, in sorted order."""
    stack: list[Iterator[os.DirEntry[str]]] = [iter(_entries(str(real)))]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            continue
        usable, is_dir = _target(ws, entry)
        if not usable:
            continue
        if is_dir:
            if not entry.is_symlink() and entry.name not in SKIP_DIRS:
                stack.append(iter(_entries(entry.path)))
            continue
        yield ws.relative(entry.path), Path(os.path.realpath(entry.path))


@tool(level="L1", scopes=("file:read",), idempotent=True, source="builtin")
def search_files(ctx: ToolContext, pattern: str, path: str = ".", glob: str | None = None) -> str:
    """Search text files in the workspace for a regular expression; returns "path:line: text" matches.

    Args:
        pattern: Python regular expression, e.g. "def \\w+_test" or "TODO".
        path: Folder (searched recursively) or file, relative to the workspace root.
        glob: Only files whose name matches, e.g. "*.py" (a pattern with "/" matches the whole path).
    """
    name = "search_files"
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise ToolArgumentError(f"invalid regular expression {pattern!r}: {e}; use Python regex syntax and escape "
                                f"special characters such as '(' or '.' with a backslash", tool=name) from None
    ws = Workspace.of(ctx, name)
    real = ws.resolve(path)
    shown = ws.relative(real)
    if real.is_dir():
        files: Iterator[tuple[str, Path]] = _files_under(ws, real)
    elif real.is_file():
        files = iter([(shown, real)])
    else:
        raise ToolExecutionError(f"there is no file or folder {shown!r} in the workspace; call list_files to see "
                                 f"what exists", tool=name, path=shown)
    matches: list[str] = []
    searched = binary = too_big = 0
    capped = files_capped = False
    for rel, target in files:
        if glob and not _glob_matches(glob, rel):
            continue
        if searched >= MAX_SEARCH_FILES:
            files_capped = True
            break
        try:
            fd = _open_regular(ws, target, _READ_FLAGS, rel, name, action="search")
        except ModelVisibleError:
            continue
        with os.fdopen(fd, "rb") as raw:
            if os.fstat(raw.fileno()).st_size > MAX_SEARCH_FILE_BYTES:
                too_big += 1
                continue
            if _looks_binary(raw.read(BINARY_PROBE_BYTES)):
                binary += 1
                continue
            raw.seek(0)
            searched += 1
            text_lines = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="\n")
            for lineno, line in enumerate(text_lines, start=1):
                if rx.search(line):
                    text = line.rstrip("\r\n")
                    if len(text) > MAX_MATCH_LINE_CHARS:
                        text = text[:MAX_MATCH_LINE_CHARS] + " [...]"
                    matches.append(f"{rel}:{lineno}: {text}")
                    if len(matches) >= MAX_MATCHES:
                        capped = True
                        break
            text_lines.detach()
        if capped:
            break
    skipped = []
    if binary:
        skipped.append(f"{binary} binary")
    if too_big:
        skipped.append(f"{too_big} over {MAX_SEARCH_FILE_BYTES // 1_000_000} MB")
    skipped_note = f"; skipped {' and '.join(skipped)} file(s)" if skipped else ""
    if not matches:
        where = f" matching {glob!r}" if glob else ""
        return f"no matches for {pattern!r} in {searched} file(s){where} under {shown!r}{skipped_note}"
    notes = []
    if capped:
        notes.append(f"[stopped at {MAX_MATCHES} matches; narrow the pattern, path or glob to see the rest]")
    if files_capped:
        notes.append(f"[searched the first {MAX_SEARCH_FILES} files only; narrow the path or glob]")
    if skipped_note:
        notes.append(f"[{skipped_note[2:]}]")
    return "\n".join(matches + notes)


TOOLS = [read_file, write_file, list_files, search_files]
