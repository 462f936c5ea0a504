"""The event reference (``docs/events.md``), generated from the models:

    python -m troupe.runtime.events.reference > docs/events.md

``tests/runtime/test_event_reference.py`` regenerates it and fails when the committed file is out
of date, or when a payload's fields changed without a bump of its ``payload_version``.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
import types
import typing
from typing import Any

from pydantic import BaseModel

from troupe.runtime.events.arrow import arrow_type, duckdb_type
from troupe.runtime.events.envelope import EVENT_SCHEMA_VERSION, Event
from troupe.runtime.events.kinds import EPHEMERAL_TYPES
from troupe.runtime.events.payload import VERSION_KEY, Payload
from troupe.runtime.events.registry import PAYLOAD_MODELS

COMMAND = "python -m troupe.runtime.events.reference > docs/events.md"


def type_name(annotation: Any) -> str:
    """An annotation as a reader writes it: ``str | None``, ``list[str]``, ``dict[str, Any]``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(a) for a in typing.get_args(annotation))}]"
    if annotation is type(None):
        return "None"
    if annotation is Any:
        return "Any"
    return getattr(annotation, "__name__", str(annotation))


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """The attribute docstrings of a model's fields (its bases' too), read from the source.

    Read here rather than by pydantic's ``use_attribute_docstrings``, which parses every model's
    source when its class is created: every process that emits would pay that at import.
    """
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError):  # pragma: no cover - a class without source (built at runtime)
            continue
        body = typing.cast(ast.ClassDef, tree.body[0]).body
        for node, nxt in itertools.pairwise(body):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _doc(model: type[BaseModel]) -> str:
    return " ".join(inspect.cleandoc(model.__doc__ or "").split())


def payload_rows(model: type[Payload]) -> list[tuple[str, str, str, str]]:
    """(key, type, required, description) of each payload field, in field order (the tag left out)."""
    rows = []
    docs = field_docs(model)
    for name, info in model.model_fields.items():
        if name == "event_type":
            continue
        rows.append((info.alias or name, _cell(type_name(info.annotation)), "yes" if info.is_required() else "no",
                     _cell(docs.get(name))))
    return rows


def _envelope_rows() -> list[str]:
    out = []
    docs = field_docs(Event)
    for name, info in Event.model_fields.items():
        annotation = info.annotation if not info.metadata else typing.Annotated[(info.annotation, *info.metadata)]
        dtype, _ = arrow_type(annotation)
        shown = "EventType" if name == "type" else type_name(info.annotation)
        out.append(f"| `{name}` | `{_cell(shown)}` | `{duckdb_type(dtype)}` | {_cell(docs.get(name))} |")
    return out


def render() -> str:
    """The whole reference, as Markdown."""
    lines = [
        "# Event reference",
        "",
        f"Generated from `troupe.runtime.events` by `{COMMAND}`; do not edit by hand",
        "(`tests/runtime/test_event_reference.py` fails when this file is out of date).",
        "",
        "Every event is one row of the lake's `events` view: typed envelope columns, and a `payload`",
        "column of JSON text whose keys the event type's payload model documents. Emitters construct",
        "these models (`emit(ToolCallPayload(id=..., arguments=...), tool=name)`); readers use the dict",
        "(`event.data`, `json_extract_string(payload, '$.id')` in SQL) or the model (`event.typed`,",
        "`parse_payload(type, text)`).",
        "",
        f"Versions: changing a column bumps the envelope's `schema_version` (now {EVENT_SCHEMA_VERSION}); renaming,",
        "removing or retyping a payload key bumps that payload's version. A payload of version 1 carries",
        f"no version key; a later version writes `\"{VERSION_KEY}\": N` into the JSON.",
        "Keys marked *required: no* are left out of a row when the emitter did not set them.",
        "",
        f"## Envelope columns (schema version {EVENT_SCHEMA_VERSION})",
        "",
        "| column | Python type | SQL type | meaning |",
        "| --- | --- | --- | --- |",
        *_envelope_rows(),
        "",
        "The view adds `date` (`DATE`, a hive partition key; `run_id` is the other).",
        "",
        "## Event types",
        "",
        "| type | payload model | version | what happened |",
        "| --- | --- | --- | --- |",
    ]
    for type_, model in PAYLOAD_MODELS.items():
        lines.append(f"| [`{type_}`](#{type_.replace('.', '')}) | `{model.__name__}` | {model.payload_version} "
                     f"| {_cell(_doc(model).split('. ')[0].rstrip('.'))} |")
    for type_, model in PAYLOAD_MODELS.items():
        lines += ["", f"### {type_}", "", f"`{model.__name__}`, payload version {model.payload_version}"
                  + (" (ephemeral: live subscribers only, never written to the lake)" if type_ in EPHEMERAL_TYPES else "")
                  + ".", "", _doc(model), "", "| key | type | required | meaning |", "| --- | --- | --- | --- |"]
        lines += [f"| `{key}` | `{kind}` | {required} | {doc} |" for key, kind, required, doc in payload_rows(model)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
