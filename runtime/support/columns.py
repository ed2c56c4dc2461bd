"""Arrow helpers used by the generated `to_arrow` functions (pyarrow imported lazily)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

# Below this many rows, converting the records' Avro dicts as one struct array is cheaper than
# building each column (a pa.array call per leaf column costs ~5 µs); above it, columns win.
ROWS_VIA_DICTS = 32


@cache
def _struct_of(schema: Any) -> Any:
    import pyarrow as pa

    return pa.struct(list(schema))


def table_from_rows(rows: Sequence[Mapping[str, Any]], schema: Any) -> Any:
    """A Table of `schema` from dicts shaped like it (nested records as dicts)."""
    import pyarrow as pa

    return pa.Table.from_struct_array(pa.array(rows, type=_struct_of(schema)))


def struct_array(values: Sequence[Any], t: Any, columns: Callable[[Sequence[Any], Any], list[Any]], null: Any) -> Any:
    """A StructArray of `values` (records or None) of struct type `t`, built column by column."""
    import pyarrow as pa

    mask = None
    if any(v is None for v in values):
        mask = pa.array([v is None for v in values], pa.bool_())
        values = [null if v is None else v for v in values]
    arrays = columns(values, t)
    if mask is not None:  # under a null struct, a required child holds a placeholder, not a null
        arrays = [_placeholders(a, f) if not f.nullable and a.null_count else a for a, f in zip(arrays, t, strict=True)]
    return pa.StructArray.from_arrays(arrays, fields=list(t), mask=mask)


def _placeholders(array: Any, f: Any) -> Any:
    """Fill the nulls of a required child of an optional struct (only the slots where the
    struct itself is null: decoders reject a present struct missing a required field), since
    Arrow refuses nulls in a non-nullable child even where the parent is null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.fill_null(array, pa.scalar(_zero(f.type), f.type))


def _zero(t: Any) -> Any:
    import decimal

    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return ""
    if pa.types.is_boolean(t):
        return False
    if pa.types.is_decimal(t):
        return decimal.Decimal(0)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return []
    if pa.types.is_struct(t):
        return {c.name: _zero(c.type) if not c.nullable else None for c in t}
    return 0  # integers, floats, timestamps, dates
