"""Arrow helpers used by the generated `to_arrow` functions (pyarrow imported lazily)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def struct_array(values: Sequence[Any], t: Any, columns: Callable[[Sequence[Any], Any], list[Any]], null: Any) -> Any:
    """A StructArray of `values` (records or None) of struct type `t`, built column by column."""
    import pyarrow as pa

    mask = None
    if any(v is None for v in values):
        mask = pa.array([v is None for v in values], pa.bool_())
        values = [null if v is None else v for v in values]
    return pa.StructArray.from_arrays(columns(values, t), fields=list(t), mask=mask)
