"""Hypothesis strategies for VALID DynamoDB images of a generated record type, with the exact
value each attribute must decode to (int for int/long, Decimal at the field's scale, aware UTC
datetime, ...): the one generator's wild images (`dmd.tools.synth`), drawn through hypothesis'
`st.randoms()`, so examples shrink and replay.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from dmd.support.records import FieldInfo
from dmd.tools.synth import MAX_BOTO_DIGITS, Node, tree, wild_image

__all__ = ["MAX_BOTO_DIGITS", "Node", "images", "significant_digits", "tree"]


def significant_digits(text: str) -> int:
    return len(Decimal(text).as_tuple().digits)


@st.composite
def images(draw: st.DrawFn, type_name: str, fields: tuple[FieldInfo, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid image of `type_name` and its intended values; it may carry attributes the schema
    does not know (a DynamoDB item can hold more), which the decoder ignores."""
    rng = draw(st.randoms(use_true_random=False))
    return wild_image(type_name, fields, rng, extra=draw(st.booleans()))


# --- containers: what the runtime writes, read back -----------------------------------------------


def avro_container(schema: Any, datums: list[dict[str, Any]]) -> bytes:
    """An Avro Object Container File, written with fastavro (as the runtime writes it)."""
    import io

    import fastavro

    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(dict(schema)), datums)
    return buf.getvalue()


def avro_roundtrip(schema: Any, datums: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write an Avro Object Container File with fastavro and read it back with fastavro."""
    import io

    import fastavro

    return list(fastavro.reader(io.BytesIO(avro_container(schema, datums))))


def apache_avro_read(data: bytes) -> list[dict[str, Any]]:
    """Read an Avro Object Container File with the Apache `avro` package."""
    import io

    import avro.datafile
    import avro.io

    with avro.datafile.DataFileReader(io.BytesIO(data), avro.io.DatumReader()) as reader:
        return list(reader)


def parquet_roundtrip(table: Any) -> Any:
    """Write a Parquet file with pyarrow and read it back (a pa.Table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return pq.read_table(pa.BufferReader(sink.getvalue()))
