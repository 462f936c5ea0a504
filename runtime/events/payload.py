"""The base of every event payload: a frozen, documented, versioned pydantic model tagged by its type.

A payload model per event type says which keys an event's ``payload`` column holds. Each concrete
model declares its tag as a ``Literal`` field (``event_type: Literal["tool.call"] = "tool.call"``),
which makes the models a discriminated union (:data:`~troupe.runtime.events.registry.AnyPayload`)
and registers them by type (:func:`~troupe.runtime.events.registry.payload_model`).

Versioning: ``payload_version`` (a class variable) is the payload's schema version. Renaming, removing or
retyping a field means bumping it (``tests/runtime/test_event_reference.py`` fails otherwise). A row
of version 1 carries no version key (every row written before payloads were versioned is version 1);
a later version writes ``"v": N`` into the JSON, so readers know which model a row was written with.

Serialised with :meth:`Payload.dump`: fields that were never set are left out, so an optional key
(``blocks`` of a ``tool.result``) is absent from a row rather than ``null``, exactly as the rows
written before these models existed.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict

VERSION_KEY: Final = "v"
"""The JSON key of a payload's schema version (written only when it is not 1)."""

RECORD_CHARS: Final = 20_000
"""How much of a model response's text, a tool call's arguments and a tool result a row keeps: enough
for a replay to serve exactly what the model saw (a tool result the model reads is at most 16,000
characters plus a note); a value cut to it is marked ``truncated`` and cannot be replayed exactly."""

_TAG: Final[set[str]] = {"event_type"}
_REGISTERED: dict[str, type[Payload]] = {}
"""Event type -> its payload model, filled as the models are defined."""


class Payload(BaseModel):
    """The ``payload`` of one event type (subclasses declare ``event_type`` as a ``Literal``)."""

    # defer_build: a model's validator is built when it is first used, so a process that imports
    # the events (the event log, the driver) but never emits a type pays nothing for it.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, defer_build=True)

    payload_version: ClassVar[int] = 1
    """Schema version of this payload; bump it when a field is renamed, removed or retyped."""

    if TYPE_CHECKING:
        event_type: str  # each concrete model declares it as a Literal field with a default

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" not in inspect.get_annotations(cls):
            return  # a shared base (the fields of tool.result and tool.error), or a subclass of a model
        name = cls.model_fields["event_type"].default
        if name in _REGISTERED and _REGISTERED[name].__qualname__ != cls.__qualname__:
            raise TypeError(f"event type {name!r} has two payload models: {_REGISTERED[name].__name__} and {cls.__name__}")
        _REGISTERED[name] = cls

    def dump(self) -> dict[str, Any]:
        """The payload as it goes into the row (before redaction): the fields that were set, JSON keys."""
        # The serializer called directly: model_dump's wrapper costs more than the dump (hot path).
        data: dict[str, Any] = self.__pydantic_serializer__.to_python(self, by_alias=True, exclude_unset=True)
        data.pop("event_type", None)  # set only when validated from a dict that carried its tag
        if self.payload_version != 1:
            data[VERSION_KEY] = self.payload_version
        return data

    def dump_text(self) -> str:
        """:meth:`dump` as compact JSON text (the row's ``payload`` before redaction).

        Serialised by pydantic's Rust serializer: about five times cheaper than ``json.dumps`` of the
        dict, which more than pays for validating the model (emitting is a hot path). Values it does
        not know are written as ``str(value)``, as ``json.dumps(default=str)`` would.
        """
        text = self.__pydantic_serializer__.to_json(
            self, by_alias=True, exclude_unset=True, exclude=_TAG, fallback=str
        ).decode()
        if self.payload_version != 1:  # the version key last, as dump() puts it
            text = f'{text[:-1]}{"," if len(text) > 2 else ""}"{VERSION_KEY}":{self.payload_version}}}'
        return text


def registered() -> dict[str, type[Payload]]:
    """Every payload model defined so far, by event type."""
    return dict(_REGISTERED)


def clip(text: str, limit: int = RECORD_CHARS) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters, and whether it was cut."""
    return (text, False) if len(text) <= limit else (text[:limit], True)


__all__ = ["RECORD_CHARS", "VERSION_KEY", "Payload", "clip", "registered"]
