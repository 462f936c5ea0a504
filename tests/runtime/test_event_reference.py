"""docs/events.md is generated from the payload models: it must be up to date, and a payload whose
fields changed must have a new version."""

from __future__ import annotations

import re
from pathlib import Path

from troupe.runtime.events import PAYLOAD_MODELS
from troupe.runtime.events.reference import COMMAND, payload_rows, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"
_SECTION = re.compile(r"^### (\S+)\n\n`\w+`, payload version (\d+)", re.M)
_ROW = re.compile(r"^\| `([^`]+)` \| `([^`]+)` \| (yes|no) \|", re.M)


def committed_fields(text: str) -> dict[str, tuple[int, list[tuple[str, str, str]]]]:
    """Per event type in a reference: its payload version and (key, type, required) of each field."""
    out = {}
    starts = list(_SECTION.finditer(text))
    for m, nxt in zip(starts, [*starts[1:], None], strict=True):
        body = text[m.end(): nxt.start() if nxt is not None else len(text)]
        out[m.group(1)] = (int(m.group(2)), _ROW.findall(body))
    return out


def unbumped_changes(committed: str) -> list[str]:
    """Event types whose fields differ from the committed reference at the same payload version."""
    old = committed_fields(committed)
    changed = []
    for type_, model in PAYLOAD_MODELS.items():
        if type_ not in old:
            continue  # a new event type
        version, fields = old[type_]
        now = [(key, kind, required) for key, kind, required, _ in payload_rows(model)]
        if now != fields and version == model.payload_version:
            changed.append(type_)
    return changed


def test_fields_did_not_change_without_a_version_bump() -> None:
    assert unbumped_changes(DOC.read_text()) == [], (
        "these payloads changed keys or types without a bump of their payload_version "
        "(keep the old model in registry._OLDER, then bump it)"
    )


def test_the_committed_reference_is_up_to_date() -> None:
    assert DOC.read_text() == render(), f"docs/events.md is out of date: run `{COMMAND}`"


def test_the_reference_lists_every_type_and_field() -> None:
    documented = committed_fields(render())
    assert list(documented) == list(PAYLOAD_MODELS)
    assert ("from", "str", "yes") in documented["task.status"][1]
    assert ("http_status", "int \\| str \\| None", "no") in documented["llm.error"][1]


def test_the_bump_check_sees_a_changed_field() -> None:
    text = render()
    retyped = text.replace("| `arguments` | `str` | yes | The arguments as the model wrote them",
                           "| `arguments` | `dict` | yes | The arguments as the model wrote them")
    assert retyped != text
    assert unbumped_changes(retyped) == ["tool.call"]
    version = PAYLOAD_MODELS["tool.call"].payload_version
    bumped = retyped.replace(f"`ToolCallPayload`, payload version {version}", "`ToolCallPayload`, payload version 0")
    assert unbumped_changes(bumped) == []
