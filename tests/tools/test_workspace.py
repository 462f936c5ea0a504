"""The workspace file tools and their containment, on the real file system (no Ray).

Every refusal is checked for its side effect too: nothing is read from, or written to, outside.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from troupe.runtime.config import AgentSpec, PermissionLevel, WorkspaceConfig
from troupe.runtime.errors import ModelVisibleError, PermissionDeniedError, ToolArgumentError, ToolExecutionError
from troupe.runtime.ids import AgentId, RunId, SessionId
from troupe.tools.builtins import BUILTIN_TOOLS
from troupe.tools.builtins import workspace as ws_tools
from troupe.tools.builtins.workspace import list_files, read_file, search_files, write_file
from troupe.tools.context import ToolContext
from troupe.tools.spec import Execution
from troupe.tools.workspace import Workspace

SECRET = "top secret outside the workspace"


def make_ctx(workspace: Path | None, **config: Any) -> ToolContext:
    return ToolContext(
        session_id=SessionId("s-ws"), run_id=RunId("r-ws"), agent=AgentId("lead"), services=None,  # type: ignore[arg-type]
        spec=AgentSpec(id="lead"), workspace=workspace, workspace_config=WorkspaceConfig(**config),
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "ws"  # not created yet: the first tool call makes it


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.txt").write_text(SECRET)
    return d


@pytest.fixture
def ctx(root: Path) -> ToolContext:
    return make_ctx(root)


async def read(ctx: ToolContext, path: str, **kw: Any) -> str:
    return await read_file.invoke({"path": path, **kw}, ctx)


async def write(ctx: ToolContext, path: str, content: str, **kw: Any) -> str:
    return await write_file.invoke({"path": path, "content": content, **kw}, ctx)


async def ls(ctx: ToolContext, path: str = ".", **kw: Any) -> str:
    return await list_files.invoke({"path": path, **kw}, ctx)


async def grep(ctx: ToolContext, pattern: str, **kw: Any) -> str:
    return await search_files.invoke({"pattern": pattern, **kw}, ctx)


def files_in(d: Path) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*"))


# --- round trips ---------------------------------------------------------------------------------
async def test_root_is_created_on_first_use(root, ctx):
    assert not root.exists()
    assert await ls(ctx) == "(folder '.' is empty)"
    assert root.is_dir()


async def test_write_then_read_round_trip(root, ctx):
    content = "héllo wörld ✓\r\nsecond line\n\nlast line without newline"
    assert await write(ctx, "notes/deep/a.txt", content) == f"wrote {len(content.encode())} bytes to 'notes/deep/a.txt'"
    assert (root / "notes/deep/a.txt").read_bytes() == content.encode()
    assert await read(ctx, "notes/deep/a.txt") == content
    assert await read(ctx, "./notes//deep/../deep/a.txt") == content


async def test_write_replaces_and_appends(root, ctx):
    await write(ctx, "f.txt", "a long first version\n")
    await write(ctx, "f.txt", "short\n")
    assert await read(ctx, "f.txt") == "short\n"
    assert await write(ctx, "f.txt", "more\n", append=True) == "appended 5 bytes to 'f.txt' (now 11 bytes)"
    assert (root / "f.txt").read_text() == "short\nmore\n"
    assert await write(ctx, "new.txt", "x", append=True) == "appended 1 bytes to 'new.txt' (now 1 bytes)"


async def test_empty_file(ctx):
    await write(ctx, "empty.txt", "")
    assert await read(ctx, "empty.txt") == "('empty.txt' is empty)"


async def test_read_offset_and_limit(ctx):
    await write(ctx, "n.txt", "".join(f"line {i}\n" for i in range(1, 11)))
    assert await read(ctx, "n.txt", offset=9) == "line 9\nline 10\n"
    assert await read(ctx, "n.txt", offset=3, limit=2) == (
        "line 3\nline 4\n[showing lines 3-4 of 'n.txt'; more follows: call read_file with offset=5 to continue]")
    assert await read(ctx, "n.txt", offset=9, limit=2) == "line 9\nline 10\n"  # nothing follows: no note
    with pytest.raises(ToolArgumentError, match=r"offset 11 is past the end of 'n.txt', which has 10 lines"):
        await read(ctx, "n.txt", offset=11)
    with pytest.raises(ToolArgumentError, match="offset must be a line number of 1 or more"):
        await read(ctx, "n.txt", offset=0)
    with pytest.raises(ToolArgumentError, match="limit must be 1 or more"):
        await read(ctx, "n.txt", limit=0)


async def test_read_is_capped_and_continues_by_offset(ctx):
    line = "x" * 99 + "\n"
    content = line * 2500  # 250 KB
    await write(ctx, "big.txt", content)
    first = await read(ctx, "big.txt")
    body, note = first.rsplit("\n[", 1)
    assert len(body) + 1 <= ws_tools.MAX_READ_CHARS
    assert note == "showing lines 1-1000 of 'big.txt'; more follows: call read_file with offset=1001 to continue]"
    second = await read(ctx, "big.txt", offset=1001)
    third = await read(ctx, "big.txt", offset=2001)
    assert third == line * 500
    assert body + "\n" + second.rsplit("\n[", 1)[0] + "\n" + third == content


async def test_read_cuts_one_overlong_line(ctx):
    await write(ctx, "min.js", "y" * (ws_tools.MAX_READ_CHARS + 50) + "\nnext\n")
    out = await read(ctx, "min.js")
    assert out.startswith("y" * ws_tools.MAX_READ_CHARS + "\n[line 1 is longer than 100000 characters")
    assert out.endswith("call read_file with offset=2 to continue]")
    assert await read(ctx, "min.js", offset=2) == "next\n"


async def test_read_replaces_bad_utf8_and_refuses_binary(root, ctx):
    await ls(ctx)
    (root / "latin1.txt").write_bytes(b"caf\xe9\n")
    assert await read(ctx, "latin1.txt") == "caf\ufffd\n"
    (root / "blob.bin").write_bytes(b"\x89PNG\x00\x01\x02" * 10)
    with pytest.raises(ToolExecutionError, match=r"'blob.bin' looks like a binary file \(70 bytes\)"):
        await read(ctx, "blob.bin")


async def test_read_errors_say_what_to_do(root, ctx):
    await write(ctx, "dir/f.txt", "x")
    with pytest.raises(ToolExecutionError, match=r"cannot read 'nope.txt': no such file .* call list_files"):
        await read(ctx, "nope.txt")
    with pytest.raises(ToolExecutionError, match=r"cannot read 'dir': it is a folder; call list_files"):
        await read(ctx, "dir")
    with pytest.raises(ToolExecutionError, match=r"'dir/f.txt' is a file, not a folder"):
        await read(ctx, "dir/f.txt/inner")
    with pytest.raises(ToolExecutionError, match="is the workspace folder itself"):
        await read(ctx, ".")


async def test_read_refuses_a_fifo_without_blocking(root, ctx):
    await ls(ctx)
    os.mkfifo(root / "pipe")
    with pytest.raises(ToolExecutionError, match="'pipe': it is not a regular file"):
        await read(ctx, "pipe")


async def test_write_errors(root, ctx):
    await write(ctx, "dir/f.txt", "x")
    with pytest.raises(ToolArgumentError, match=r"ends with '/', which names a folder; give a file name such as "
                                                r"'dir/notes.txt'"):
        await write(ctx, "dir/", "x")
    with pytest.raises(ToolExecutionError, match=r"cannot write 'dir': it is a folder"):
        await write(ctx, "dir", "x")
    with pytest.raises(ToolExecutionError, match=r"'dir/f.txt' is a file, not a folder"):
        await write(ctx, "dir/f.txt/g.txt", "x")
    with pytest.raises(ToolExecutionError, match="is the workspace folder itself"):
        await write(ctx, ".", "x")
    assert files_in(root) == ["dir", "dir/f.txt"]


async def test_list_files(root, ctx):
    await write(ctx, "b.txt", "")
    await write(ctx, "a/x.py", "")
    await write(ctx, "a/sub/y.py", "")
    await write(ctx, ".git/config", "")
    assert await ls(ctx) == ".git/\na/\nb.txt"
    assert await ls(ctx, "a") == "a/sub/\na/x.py"
    assert await ls(ctx, recursive=True) == (
        ".git/\na/\na/sub/\na/sub/y.py\na/x.py\nb.txt\n[not expanded: .git/; list them by path to see inside]")
    assert await ls(ctx, ".git") == ".git/config"
    (root / "a/empty").mkdir()
    assert await ls(ctx, "a/empty") == "(folder 'a/empty' is empty)"
    with pytest.raises(ToolExecutionError, match="'b.txt' is a file, not a folder; use read_file"):
        await ls(ctx, "b.txt")
    with pytest.raises(ToolExecutionError, match="there is no folder 'zzz' in the workspace"):
        await ls(ctx, "zzz")


async def test_list_files_is_capped(root, ctx, monkeypatch):
    monkeypatch.setattr(ws_tools, "MAX_LIST_ENTRIES", 5)
    for i in range(8):
        await write(ctx, f"d/f{i}.txt", "")
    out = (await ls(ctx, recursive=True)).splitlines()
    assert out[:5] == ["d/", "d/f0.txt", "d/f1.txt", "d/f2.txt", "d/f3.txt"]
    assert out[5].startswith("[stopped at 5 entries; list a subfolder")


async def test_search_files(root, ctx):
    await write(ctx, "src/a.py", "def alpha():\n    return 1\n# TODO: beta\n")
    await write(ctx, "src/b.txt", "TODO in text\n")
    await write(ctx, "README.md", "nothing here\n" + "z" * 400 + " TODO\n")
    (root / "src/blob.bin").write_bytes(b"TODO\x00binary")
    assert await grep(ctx, "TODO") == (
        "README.md:2: " + "z" * 300 + " [...]\n"
        "src/a.py:3: # TODO: beta\n"
        "src/b.txt:1: TODO in text\n"
        "[skipped 1 binary file(s)]"
    )
    assert await grep(ctx, "TODO", glob="*.py") == "src/a.py:3: # TODO: beta"
    assert await grep(ctx, "TODO", glob="src/*.txt") == "src/b.txt:1: TODO in text"
    assert await grep(ctx, "TODO", glob="**/*.py") == "src/a.py:3: # TODO: beta"
    assert await grep(ctx, r"def \w+\(", path="src/a.py") == "src/a.py:1: def alpha():"
    assert await grep(ctx, "gamma", path="src") == "no matches for 'gamma' in 2 file(s) under 'src'; skipped 1 binary file(s)"
    with pytest.raises(ToolArgumentError, match=r"invalid regular expression 'def \(': .* escape special"):
        await grep(ctx, "def (")
    with pytest.raises(ToolExecutionError, match="there is no file or folder 'nope'"):
        await grep(ctx, "x", path="nope")


async def test_search_files_is_capped(ctx, monkeypatch):
    monkeypatch.setattr(ws_tools, "MAX_MATCHES", 3)
    await write(ctx, "many.txt", "hit\n" * 10)
    out = (await grep(ctx, "hit")).splitlines()
    assert out == ["many.txt:1: hit", "many.txt:2: hit", "many.txt:3: hit",
                   "[stopped at 3 matches; narrow the pattern, path or glob to see the rest]"]


# --- containment ---------------------------------------------------------------------------------
BAD_PATHS = ["../x.txt", "..", "a/../../x.txt", "a/b/../../../x.txt", "/etc/passwd", "/tmp/x.txt"]


@pytest.mark.parametrize("bad", BAD_PATHS)
async def test_traversal_refused_by_every_tool(tmp_path, root, ctx, bad):
    await write(ctx, "a/b/ok.txt", "fine")
    before = files_in(tmp_path)
    calls = [
        read_file.invoke({"path": bad}, ctx),
        write_file.invoke({"path": bad, "content": "pwned"}, ctx),
        write_file.invoke({"path": bad, "content": "pwned", "append": True}, ctx),
        list_files.invoke({"path": bad}, ctx),
        search_files.invoke({"pattern": ".", "path": bad}, ctx),
    ]
    for call in calls:
        with pytest.raises(PermissionDeniedError) as info:
            await call
        msg = str(info.value)
        assert f"path {bad!r}" in msg
        assert "relative to the workspace root" in msg
        assert "root:" not in msg and "passwd:" not in msg
    assert files_in(tmp_path) == before
    assert not Path("/tmp/x.txt").exists() or Path("/tmp/x.txt").read_text() != "pwned"


async def test_absolute_path_inside_workspace_suggests_the_relative_one(root, ctx):
    await write(ctx, "notes/a.txt", "x")
    with pytest.raises(PermissionDeniedError, match=r"is absolute; .* \(here that is 'notes/a.txt'\)"):
        await read(ctx, str(root / "notes/a.txt"))


async def test_symlink_to_outside_file_refused(root, ctx, outside):
    await ls(ctx)
    os.symlink(outside / "secret.txt", root / "link.txt")
    with pytest.raises(PermissionDeniedError, match="'link.txt' is a symbolic link that points outside") as info:
        await read(ctx, "link.txt")
    assert SECRET not in str(info.value)
    with pytest.raises(PermissionDeniedError):
        await write(ctx, "link.txt", "pwned")
    with pytest.raises(PermissionDeniedError):
        await write(ctx, "link.txt", "pwned", append=True)
    with pytest.raises(PermissionDeniedError):
        await grep(ctx, "secret", path="link.txt")
    assert (outside / "secret.txt").read_text() == SECRET
    assert await ls(ctx) == "link.txt"  # listed, but not followed
    assert await grep(ctx, "secret") == "no matches for 'secret' in 0 file(s) under '.'"


async def test_symlink_to_outside_dir_refused(root, ctx, outside):
    await ls(ctx)
    os.symlink(outside, root / "linkdir")
    with pytest.raises(PermissionDeniedError, match="goes through the symbolic link 'linkdir', which points outside"):
        await read(ctx, "linkdir/secret.txt")
    for call in (write(ctx, "linkdir/new.txt", "pwned"), write(ctx, "linkdir/sub/new.txt", "pwned"),
                 write(ctx, "linkdir/secret.txt", "pwned"), ls(ctx, "linkdir"), ls(ctx, "linkdir/."),
                 grep(ctx, "secret", path="linkdir"), read(ctx, "linkdir/../outside/secret.txt")):
        with pytest.raises(PermissionDeniedError):
            await call
    assert files_in(outside) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == SECRET
    assert await ls(ctx, recursive=True) == "linkdir"
    assert await grep(ctx, "secret") == "no matches for 'secret' in 0 file(s) under '.'"


@pytest.mark.parametrize("relative_target", [False, True])
async def test_dangling_symlink_to_outside_refused(root, ctx, outside, relative_target):
    await ls(ctx)
    target = outside / "created.txt"
    os.symlink("../outside/created.txt" if relative_target else target, root / "dangling.txt")
    os.symlink(outside / "newdir", root / "dangling_dir")
    with pytest.raises(PermissionDeniedError, match="'dangling.txt' is a symbolic link that points outside"):
        await write(ctx, "dangling.txt", "pwned")
    with pytest.raises(PermissionDeniedError):
        await write(ctx, "dangling.txt", "pwned", append=True)
    with pytest.raises(PermissionDeniedError):
        await read(ctx, "dangling.txt")
    with pytest.raises(PermissionDeniedError, match="goes through the symbolic link 'dangling_dir'"):
        await write(ctx, "dangling_dir/f.txt", "pwned")
    assert files_in(outside) == ["secret.txt"]


async def test_symlink_inside_the_workspace_is_allowed(root, ctx):
    await write(ctx, "real/data.txt", "inside\n")
    os.symlink(root / "real/data.txt", root / "alias.txt")
    os.symlink("real", root / "alias_dir")
    assert await read(ctx, "alias.txt") == "inside\n"
    assert await read(ctx, "alias_dir/data.txt") == "inside\n"
    assert await write(ctx, "alias.txt", "changed\n") == "wrote 8 bytes to 'real/data.txt'"
    assert await write(ctx, "alias_dir/new.txt", "n") == "wrote 1 bytes to 'real/new.txt'"
    assert (root / "real/data.txt").read_text() == "changed\n"
    assert await ls(ctx) == "alias.txt\nalias_dir/\nreal/"
    assert await ls(ctx, "alias_dir") == "real/data.txt\nreal/new.txt"
    assert await grep(ctx, "changed") == "alias.txt:1: changed\nreal/data.txt:1: changed"


async def test_open_refuses_a_link_swapped_in_after_resolve(root, outside):
    # A concurrent command replaces a checked folder with a link to elsewhere between resolve and open.
    ws = Workspace(root, tool="write_file")
    (ws.root / "d").mkdir()
    real = ws.resolve("d/f.txt")
    (root / "d").rmdir()
    os.symlink(outside, root / "d")
    with pytest.raises(PermissionDeniedError, match="'d', which is \\(now\\) a symbolic link"):
        ws.open(real, os.O_WRONLY | os.O_CREAT, make_parents=True)
    os.symlink(outside / "secret.txt", root / "g.txt")
    with pytest.raises(PermissionDeniedError):
        ws.open(root / "g.txt", os.O_WRONLY | os.O_TRUNC)
    assert files_in(outside) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == SECRET


def test_workspace_resolve(root):
    ws = Workspace(root)
    assert ws.resolve(".") == ws.root == Path(os.path.realpath(root))
    assert ws.resolve("") == ws.root
    assert ws.resolve(" a/b/../c.txt ") == ws.root / "a/c.txt"
    assert ws.relative(ws.root / "a/c.txt") == "a/c.txt" and ws.relative(ws.root) == "."
    with pytest.raises(ToolArgumentError, match="NUL character"):
        ws.resolve("a\x00b")
    with pytest.raises(PermissionDeniedError) as info:
        ws.resolve("../x")
    assert info.value.fields == {"path": "../x", "reason": "outside_workspace"}
    assert str(info.value) == ("path '../x' leaves the workspace; use a path relative to the workspace root such as "
                               "'notes/x.txt' (the root itself is '.')")


# --- no workspace, specs -------------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda c: read_file.invoke({"path": "a"}, c),
    lambda c: write_file.invoke({"path": "a", "content": ""}, c),
    lambda c: list_files.invoke({}, c),
    lambda c: search_files.invoke({"pattern": "a"}, c),
])
async def test_no_workspace_is_a_model_visible_error(call):
    with pytest.raises(ModelVisibleError, match="needs a workspace folder, and this session has none"):
        await call(make_ctx(None))


def test_file_tool_specs():
    specs = {t.name: t.spec for t in BUILTIN_TOOLS}
    for name in ("read_file", "list_files", "search_files"):
        assert specs[name].level is PermissionLevel.L1
        assert specs[name].scopes == ("file:read",)
        assert specs[name].idempotent is True
    assert specs["write_file"].level is PermissionLevel.L2
    assert specs["write_file"].scopes == ("file:write",)
    assert specs["write_file"].idempotent is False
    for t in (read_file, write_file, list_files, search_files):
        assert t.wants_ctx and t.spec.execution is Execution.INLINE
        assert "ctx" not in t.spec.parameters["properties"]
        assert t.spec.description
    assert read_file.spec.parameters["required"] == ["path"]
    assert write_file.spec.parameters["required"] == ["path", "content"]
    assert search_files.spec.parameters["required"] == ["pattern"]
    assert "required" not in list_files.spec.parameters
    assert read_file.spec.parameters["properties"]["offset"]["description"] == "Line number to start at (1 = the first line)."
