"""Arrow and DuckDB column types derived from a pydantic model's annotations: the one place both
the event lake (:mod:`troupe.runtime.events.schema`) and the eval results (:mod:`troupe.evals.results`)
take their Parquet schema and SQL types from.

    str -> string/VARCHAR   int -> int64/BIGINT   float -> float64/DOUBLE   bool -> bool/BOOLEAN
    datetime -> timestamp[us, UTC]/TIMESTAMPTZ     Literal[...] of strings -> string
    list[X] -> list<X>/X[]  X | None -> X (nullable)
    Annotated[int, ArrowType("int16")] -> int16/SMALLINT (an explicit narrower type)

pyarrow is imported on first use: processes that only emit events need not load it.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel

_SCALARS: Final[dict[Any, str]] = {str: "string", int: "int64", float: "float64", bool: "bool", datetime: "timestamp"}
_DUCK: Final[dict[str, str]] = {
    "string": "VARCHAR",
    "int16": "SMALLINT",
    "int64": "BIGINT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
    "date32[day]": "DATE",
}
"""DuckDB type by the Arrow type's name (``str(pa.float64())`` is ``double``)."""


@dataclass(frozen=True)
class ArrowType:
    """An explicit Arrow type for a field (``Annotated[int, ArrowType("int16")]``): a pyarrow type factory name."""

    name: str


def _make(kind: str) -> Any:
    import pyarrow as pa

    if kind == "timestamp":
        return pa.timestamp("us", tz="UTC")
    if kind == "bool":
        return pa.bool_()
    return getattr(pa, kind)()


def arrow_type(annotation: Any) -> tuple[Any, bool]:
    """The Arrow type of a model field's annotation, and whether it may be null."""
    import pyarrow as pa

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *meta = typing.get_args(annotation)
        explicit = [m for m in meta if isinstance(m, ArrowType)]
        if explicit:
            return _make(explicit[0].name), arrow_type(base)[1]
        return arrow_type(base)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"no Arrow type for {annotation!r}")
        return arrow_type(args[0])[0], True
    if origin is typing.Literal:
        if all(isinstance(v, str) for v in typing.get_args(annotation)):
            return pa.string(), False
        raise TypeError(f"no Arrow type for {annotation!r}")
    if origin is list:
        (item,) = typing.get_args(annotation)
        return pa.list_(arrow_type(item)[0]), False
    if annotation in _SCALARS:
        return _make(_SCALARS[annotation]), False
    raise TypeError(f"no Arrow type for {annotation!r}")


def arrow_schema(model: type[BaseModel], *, all_nullable: bool = False, metadata: dict[str, str] | None = None) -> Any:
    """One column per field of ``model``, in field order (``all_nullable``: every column may be null)."""
    import pyarrow as pa

    fields = []
    for name, info in model.model_fields.items():
        annotation = info.annotation if not info.metadata else typing.Annotated[(info.annotation, *info.metadata)]
        dtype, nullable = arrow_type(annotation)
        fields.append(pa.field(name, dtype, nullable=all_nullable or nullable))
    return pa.schema(fields, metadata=metadata)


def duckdb_type(dtype: Any) -> str:
    """The DuckDB SQL type of an Arrow type of :func:`arrow_type`."""
    import pyarrow as pa

    if pa.types.is_list(dtype):
        return f"{duckdb_type(dtype.value_type)}[]"
    try:
        return _DUCK[str(dtype)]
    except KeyError:
        raise TypeError(f"no DuckDB type for Arrow {dtype}") from None


def empty_select(schema: Any) -> str:
    """``SELECT`` of no rows with ``schema``'s columns and types (a view over a lake with no files yet)."""
    cols = ", ".join(f"CAST(NULL AS {duckdb_type(f.type)}) AS {f.name}" for f in schema)
    return f"SELECT {cols} WHERE false"


__all__ = ["ArrowType", "arrow_schema", "arrow_type", "duckdb_type", "empty_select"]
