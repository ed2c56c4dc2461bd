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
    """A StructArray of `values` (records or None) of struct type `t`, built column by column.

    `null` is the generated placeholder record that stands in under a null struct: Arrow still
    builds the child columns there, and its values (not nulls) keep every non-nullable child
    column free of nulls, which Arrow and Parquet require even where the parent is null.
    """
    import pyarrow as pa

    mask = None
    if any(v is None for v in values):
        mask = pa.array([v is None for v in values], pa.bool_())
        values = [null if v is None else v for v in values]
    return pa.StructArray.from_arrays(columns(values, t), fields=list(t), mask=mask)
