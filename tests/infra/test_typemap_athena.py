"""The Athena column type of each schema type, per lake format (generator/typemap.athena_type), and
its spelling in a view definition (presto_type)."""

from __future__ import annotations

import pytest

from dmd.generator.model import Field as F
from dmd.generator.model import Kind, Record, TypeRef
from dmd.generator.typemap import athena_type, presto_type
from dmd.lake.formats import AVRO, PARQUET

P, A = PARQUET, AVRO


@pytest.mark.parametrize(
    ("t", "parquet", "avro"),
    [
        (TypeRef(Kind.STRING), "string", "string"),
        (TypeRef(Kind.BOOLEAN), "boolean", "boolean"),
        (TypeRef(Kind.INT), "int", "int"),
        (TypeRef(Kind.LONG), "bigint", "bigint"),
        (TypeRef(Kind.DECIMAL, precision=12, scale=2), "decimal(12,2)", "decimal(12,2)"),
        (TypeRef(Kind.TIMESTAMP_MILLIS), "timestamp", "timestamp"),
        (TypeRef(Kind.TIMESTAMP_MICROS), "timestamp", "bigint"),  # Athena ignores Avro timestamp-micros
        (TypeRef(Kind.DATE), "date", "date"),
        (TypeRef(Kind.ENUM, name="E", symbols=("a",)), "string", "string"),
        (TypeRef(Kind.ARRAY, items=TypeRef(Kind.TIMESTAMP_MICROS)), "array<timestamp>", "array<bigint>"),
    ],
)
def test_scalar_and_array_types(t: TypeRef, parquet: str, avro: str):
    assert (athena_type(t, P), athena_type(t, A)) == (parquet, avro)


def test_struct_fields_are_quoted_on_request():
    inner = F("start", "w.start", "/x", TypeRef(Kind.TIMESTAMP_MICROS), True, "")
    t = TypeRef(Kind.RECORD, name="W", record=Record("W", "W", (inner,)))
    assert athena_type(t, P) == "struct<start:timestamp>"
    assert athena_type(t, A, lambda n: f"`{n}`") == "struct<`start`:bigint>"


@pytest.mark.parametrize(
    ("t", "parquet", "avro"),
    [
        (TypeRef(Kind.STRING), "varchar", "varchar"),
        (TypeRef(Kind.INT), "integer", "integer"),
        (TypeRef(Kind.LONG), "bigint", "bigint"),
        (TypeRef(Kind.DECIMAL, precision=12, scale=2), "decimal(12,2)", "decimal(12,2)"),
        (TypeRef(Kind.TIMESTAMP_MILLIS), "timestamp(3)", "timestamp(3)"),  # Athena reads Hive timestamps in ms
        (TypeRef(Kind.TIMESTAMP_MICROS), "timestamp(3)", "bigint"),
        (TypeRef(Kind.ENUM, name="E", symbols=("a",)), "varchar", "varchar"),
        (TypeRef(Kind.ARRAY, items=TypeRef(Kind.STRING)), "array(varchar)", "array(varchar)"),
    ],
)
def test_view_definition_types(t: TypeRef, parquet: str, avro: str):
    assert (presto_type(t, P), presto_type(t, A)) == (parquet, avro)


def test_view_definition_row_fields_are_quoted():
    """`date` and `start` are reserved words; a quoted field name is always read as a name."""
    fields = (
        F("start", "w.start", "/x", TypeRef(Kind.TIMESTAMP_MICROS), True, ""),
        F("tags", "w.tags", "/y", TypeRef(Kind.ARRAY, items=TypeRef(Kind.INT)), False, ""),
    )
    t = TypeRef(Kind.RECORD, name="W", record=Record("W", "W", fields))
    assert presto_type(t, P) == 'row("start" timestamp(3), "tags" array(integer))'
    assert presto_type(t, A) == 'row("start" bigint, "tags" array(integer))'
