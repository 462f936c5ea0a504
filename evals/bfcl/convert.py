"""Convert the Berkeley Function Calling Leaderboard's data into Troupe eval suites.

    pip install --no-deps bfcl-eval          # the data only; its full dependency set is not needed
    python -m troupe.evals.bfcl.convert [--out evals/suites] [--limit N] [--categories simple,multiple,...]

For each category this writes ``<out>/bfcl_<category>/suite.yaml`` and ``cases.jsonl``, plus the
shared team ``<out>/bfcl_team.yaml``, the data's licence ``<out>/BFCL_LICENSE`` and a README.

A BFCL entry becomes a :class:`~troupe.evals.models.Case`: its user question is the input, its functions
are the case's declared tools (names made safe for OpenAI: ``math.factorial`` becomes
``math_factorial``, with ``Original name: math.factorial`` as the description's first line; BFCL
types become JSON Schema: ``dict`` -> ``object``, ``float`` -> ``number``, ``tuple`` -> ``array``,
``any`` -> no type), and its ground truth (``possible_answer``) becomes ``expect.tool_calls``:
every acceptable value of every argument, ``""`` meaning the argument may be left out.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import re
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

CATEGORIES: dict[str, str] = {
    "simple": "simple_python",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
    "live_simple": "live_simple",
    "live_multiple": "live_multiple",
    "live_parallel": "live_parallel",
    "live_parallel_multiple": "live_parallel_multiple",
}
"""Our category name -> the BFCL v4 file stem (``BFCL_v4_<stem>.json``)."""
DEFAULT_CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple")
DESCRIPTIONS = {
    "simple": "one function, one call",
    "multiple": "several functions, one call to the right one",
    "parallel": "one function, several calls",
    "parallel_multiple": "several functions, several calls",
    "live_simple": "user-contributed: one function, one call",
    "live_multiple": "user-contributed: several functions, one call",
    "live_parallel": "user-contributed: one function, several calls",
    "live_parallel_multiple": "user-contributed: several functions, several calls",
}
TEAM_FILE = "bfcl_team.yaml"
LICENSE_FILE = "BFCL_LICENSE"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "suites"

_TYPES = {"dict": "object", "float": "number", "tuple": "array", "str": "string", "int": "integer",
          "bool": "boolean", "list": "array"}
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")

INSTRUCTIONS = (
    "You answer by calling the functions you are given. Call every function the request needs, "
    "with argument values taken from the request and of the types the function's schema asks for; "
    "leave out optional arguments the request gives no value for. When the request needs several "
    "calls, make them all, in one response if you can. Do not ask questions. Once the function "
    "results are back, reply with one short sentence."
)


class ConvertError(Exception):
    """The BFCL data is missing or not in the shape this converter knows."""


# --- reading the wheel -------------------------------------------------------------------------
def bfcl_package_dir() -> Path:
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ConvertError("the bfcl-eval package is not installed; run: pip install --no-deps bfcl-eval")
    return Path(next(iter(spec.submodule_search_locations)))


def bfcl_version() -> str:
    try:
        return importlib.metadata.version("bfcl-eval")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def find_license() -> Path | None:
    """A licence file shipped in the wheel (dist-info or package), if there is one."""
    try:
        dist = importlib.metadata.distribution("bfcl-eval")
        for f in dist.files or []:
            if re.search(r"(^|/)(LICEN[CS]E|COPYING)[^/]*$", str(f), re.IGNORECASE):
                p = Path(str(dist.locate_file(f)))
                if p.is_file():
                    return p
    except importlib.metadata.PackageNotFoundError:
        pass
    pkg = bfcl_package_dir()
    for p in sorted(pkg.rglob("*")):
        if p.is_file() and re.fullmatch(r"(LICEN[CS]E|COPYING)(\.\w+)?", p.name, re.IGNORECASE):
            return p
    return None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """BFCL's ``.json`` files are JSON Lines."""
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ConvertError(f"{path}:{n}: not valid JSON ({e.msg})") from e
    return out


def category_files(data_dir: Path, category: str) -> tuple[Path, Path]:
    stem = CATEGORIES[category]
    q = data_dir / f"BFCL_v4_{stem}.json"
    a = data_dir / "possible_answer" / f"BFCL_v4_{stem}.json"
    if not q.is_file() or not a.is_file():
        found = sorted(p.name for p in data_dir.glob("BFCL_*.json"))
        raise ConvertError(f"BFCL category {category!r}: expected {q} and {a}; the data folder holds {found}")
    return q, a


# --- converting --------------------------------------------------------------------------------
def sanitize_name(name: str) -> str:
    """A tool name OpenAI accepts: ``[a-zA-Z0-9_-]{1,64}`` (dots and anything else become ``_``)."""
    out = _UNSAFE.sub("_", name.replace(".", "_"))[:64]
    return out or "function"


def convert_schema(node: Any) -> Any:
    """BFCL's parameter schema as JSON Schema (recursively)."""
    if isinstance(node, list):
        return [convert_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            if isinstance(value, str):
                t = _TYPES.get(value, value)
                if t != "any":
                    out["type"] = t
            elif isinstance(value, list):
                types = [_TYPES.get(t, t) for t in value if t != "any"]
                if types and len(types) == len(value):
                    out["type"] = types
            else:
                out["type"] = value
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: convert_schema(s) for name, s in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf", "allOf", "prefixItems", "not"):
            out[key] = convert_schema(value)
        elif key == "optional":
            continue  # not JSON Schema; 'required' already says it
        else:
            out[key] = value
    return out


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name[:60]}_{k}" in taken:
        k += 1
    return f"{name[:60]}_{k}"


def convert_tools(functions: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """``(declared tools, original name -> sanitised name)``."""
    tools: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for fn in functions:
        original = fn["name"]
        name = _unique(sanitize_name(original), set(names.values()))
        names[original] = name
        desc = fn.get("description", "") or ""
        if name != original:
            desc = f"Original name: {original}\n{desc}".rstrip()
        params = convert_schema(fn.get("parameters") or {"type": "object", "properties": {}})
        if "type" not in params:
            params["type"] = "object"
        tools.append({"name": name, "description": desc, "parameters": params})
    return tools, names


def convert_input(question: list[Any], case_id: str) -> str | list[dict[str, str]]:
    if len(question) != 1 or not isinstance(question[0], list):
        raise ConvertError(f"{case_id}: expected one turn in 'question', got {len(question)}")
    messages = question[0]
    if len(messages) == 1 and messages[0].get("role") == "user":
        return str(messages[0]["content"])
    turns = []
    for m in messages:
        if m.get("role") not in ("system", "user", "assistant"):
            raise ConvertError(f"{case_id}: unexpected message role {m.get('role')!r}")
        turns.append({"role": m["role"], "content": str(m["content"])})
    return turns


def convert_case(entry: dict[str, Any], answer: dict[str, Any], category: str) -> dict[str, Any]:
    cid = entry["id"]
    tools, names = convert_tools(entry["function"])
    calls = []
    for gt in answer["ground_truth"]:
        if not isinstance(gt, dict) or len(gt) != 1:
            raise ConvertError(f"{cid}: a ground-truth entry must map one function name to its arguments, got {gt!r}")
        ((original, args),) = gt.items()
        if original not in names:
            raise ConvertError(f"{cid}: ground truth calls {original!r}, which is not among its functions {list(names)}")
        calls.append({"name": names[original],
                      "arguments": {k: (v if isinstance(v, list) else [v]) for k, v in args.items()}})
    return {
        "id": cid,
        "input": convert_input(entry["question"], cid),
        "tools": tools,
        "tags": ["bfcl", category],
        "expect": {"tool_calls": calls},
    }


def convert_category(data_dir: Path, category: str, limit: int | None = None) -> list[dict[str, Any]]:
    q_path, a_path = category_files(data_dir, category)
    answers = {a["id"]: a for a in read_jsonl(a_path)}
    entries = read_jsonl(q_path)
    if limit is not None:
        entries = entries[:limit]
    out = []
    for entry in entries:
        if entry["id"] not in answers:
            raise ConvertError(f"{entry['id']}: no ground truth in {a_path}")
        out.append(convert_case(entry, answers[entry["id"]], category))
    return out


# --- writing -----------------------------------------------------------------------------------
def license_line(version: str) -> str:
    return (f"Berkeley Function Calling Leaderboard v4 data (ShishirPatil/gorilla, via bfcl-eval {version}), "
            f"Apache-2.0; see ../{LICENSE_FILE}")


def team_yaml() -> str:
    team = {
        "name": "bfcl",
        "description": "One agent that answers a BFCL question by calling the case's declared functions.",
        "entry": "solver",
        "default_model": "oracle",
        "models": {
            # The sweep replaces the oracle's script per case with the case's expected calls.
            "oracle": {"provider": "scripted", "scripts": {}},
            "local": {"provider": "local", "model": "default", "temperature": 0,
                      "parse_text_tool_calls": True, "tools_after_results": False},
        },
        "agents": [{"id": "solver", "role": "function caller", "instructions": INSTRUCTIONS, "max_rounds": 4}],
    }
    head = ("# The team every BFCL suite runs on (generated by `python -m troupe.evals.bfcl.convert`).\n"
            "# Each case gives the solver its own functions as declared tools. `oracle` is a scripted model\n"
            "# the sweep fills in per case from the expected calls (it checks the suite and its graders);\n"
            "# `local` is the embedded local model.\n")
    return head + yaml.safe_dump(team, sort_keys=False, allow_unicode=True, width=100)


def suite_yaml(category: str, n: int, version: str) -> str:
    stem = CATEGORIES[category]
    suite = {
        "name": f"bfcl_{category}",
        "description": (f"BFCL v4 '{stem}' ({DESCRIPTIONS[category]}): {n} cases from bfcl-eval {version}, "
                        f"graded by BFCL-style matching of the tool calls."),
        "team": f"../{TEAM_FILE}",
        "cases": "cases.jsonl",
        "pass_threshold": 1.0,
        "license": license_line(version),
    }
    return ("# Generated by `python -m troupe.evals.bfcl.convert`; do not edit by hand.\n"
            + yaml.safe_dump(suite, sort_keys=False, allow_unicode=True, width=100))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")


def readme(version: str, stats: list[tuple[str, int, int]]) -> str:
    rows = "\n".join(f"| `bfcl_{c}` | `BFCL_v4_{CATEGORIES[c]}.json` | {n} | {size / 1024:.0f} KiB |"
                     for c, n, size in stats)
    return f"""# Eval suites

## BFCL (Berkeley Function Calling Leaderboard)

The `bfcl_*` suites are generated from the Berkeley Function Calling Leaderboard v4 data
(<https://github.com/ShishirPatil/gorilla/tree/main/berkeley-function-call-leaderboard>), as shipped
in the `bfcl-eval` wheel, version **{version}**. The data is licensed under the Apache License 2.0
(see [`{LICENSE_FILE}`]({LICENSE_FILE})); each suite's `license:` field says so too.

| suite | BFCL file | cases | cases.jsonl |
|---|---|---|---|
{rows}

Each case's input is BFCL's question, its functions are the case's declared tools (dots and other
characters OpenAI refuses in tool names become `_`; the original name is the description's first
line, `Original name: math.factorial`), BFCL's types are mapped to JSON Schema (`dict` -> `object`,
`float` -> `number`, `tuple` -> `array`, `any` -> no type), and BFCL's `possible_answer` becomes
`expect.tool_calls` (all acceptable values per argument; `""` means it may be left out), graded by
a BFCL-style matcher (`evals/grade_calls.py`). All suites run on [`{TEAM_FILE}`]({TEAM_FILE}).

To regenerate (the wheel is a dev-time source only, not a dependency of Troupe):

```sh
.venv/bin/pip install --no-deps bfcl-eval
.venv/bin/python -m troupe.evals.bfcl.convert            # --out evals/suites --limit N --categories simple,...
```
"""


def run(out: Path, categories: list[str], limit: int | None = None) -> list[tuple[str, int, int]]:
    data_dir = bfcl_package_dir() / "data"
    version = bfcl_version()
    out.mkdir(parents=True, exist_ok=True)
    (out / TEAM_FILE).write_text(team_yaml(), encoding="utf-8")
    stats = []
    for category in categories:
        cases = convert_category(data_dir, category, limit)
        folder = out / f"bfcl_{category}"
        folder.mkdir(parents=True, exist_ok=True)
        write_jsonl(folder / "cases.jsonl", cases)
        (folder / "suite.yaml").write_text(suite_yaml(category, len(cases), version), encoding="utf-8")
        stats.append((category, len(cases), (folder / "cases.jsonl").stat().st_size))
    lic = find_license()
    if lic is not None:
        shutil.copyfile(lic, out / LICENSE_FILE)
    elif not (out / LICENSE_FILE).exists():
        print(f"warning: bfcl-eval {version} ships no licence file and {out / LICENSE_FILE} is missing; add the "
              "Apache-2.0 text there before committing the suites", file=sys.stderr)
    (out / "README.md").write_text(readme(version, present_suites(out)), encoding="utf-8")
    return stats


def present_suites(out: Path) -> list[tuple[str, int, int]]:
    """``(category, cases, bytes)`` for every generated BFCL suite under ``out``."""
    stats = []
    for category in CATEGORIES:
        cases = out / f"bfcl_{category}" / "cases.jsonl"
        if cases.is_file():
            n = sum(1 for line in cases.read_text(encoding="utf-8").splitlines() if line.strip())
            stats.append((category, n, cases.stat().st_size))
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m troupe.evals.bfcl.convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the suites (default: evals/suites)")
    parser.add_argument("--limit", type=int, default=None, help="at most N cases per category")
    parser.add_argument("--categories", default=",".join(DEFAULT_CATEGORIES),
                        help=f"comma-separated, from {list(CATEGORIES)} (default: %(default)s)")
    args = parser.parse_args(argv)
    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        parser.error(f"unknown categories {unknown}; choose from {list(CATEGORIES)}")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    try:
        stats = run(args.out, categories, args.limit)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for category, n, size in stats:
        print(f"bfcl_{category}: {n} cases, {size / 1024:.0f} KiB")
    print(f"wrote {args.out} (bfcl-eval {bfcl_version()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
