"""The Athena column type of each schema type, per lake format (generator/typemap.athena_type)."""

from __future__ import annotations

import pytest

from dmd.generator.model import Field as F
from dmd.generator.model import Kind, Record, TypeRef
from dmd.generator.typemap import athena_type
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
