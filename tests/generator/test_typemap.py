"""The type table: every Kind's Python hint, Avro fragment, Arrow type, Athena type and wire tag."""

from __future__ import annotations

import fastavro
import pyarrow as pa
import pytest

from dmd.generator.model import Field, Kind, Record, TypeRef
from dmd.generator.typemap import (
    INT_RANGES,
    SCALARS,
    arrow_field,
    avro_field,
    field_mapping,
    mapping,
    python_hint,
    scalar_kind,
)


def arrow(expr: str) -> pa.DataType:
    """Evaluate an Arrow expression the way generated code does (with `pa` in scope)."""
    return eval(expr, {"pa": pa})


def field(name: str, t: TypeRef, *, optional: bool = False, wire_set: bool = False, doc: str = "") -> Field:
    return Field(name=name, path=name, pointer=f"/fields/{name}", type=t, optional=optional, doc=doc, wire_set=wire_set)


ENUM = TypeRef(Kind.ENUM, name="Status", symbols=("requested", "fulfilled"))
MONEY = TypeRef(Kind.DECIMAL, precision=12, scale=2)

# kind/type -> (python hint, Avro fragment, Arrow type, Athena type, wire tag)
CASES: dict[str, tuple[TypeRef, str, object, pa.DataType, str, str]] = {
    "string": (TypeRef(Kind.STRING), "str", "string", pa.string(), "string", "S"),
    "boolean": (TypeRef(Kind.BOOLEAN), "bool", "boolean", pa.bool_(), "boolean", "BOOL"),
    "int": (TypeRef(Kind.INT), "int", "int", pa.int32(), "int", "N"),
    "long": (TypeRef(Kind.LONG), "int", "long", pa.int64(), "bigint", "N"),
    "decimal": (
        MONEY,
        "Decimal",
        {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        pa.decimal128(12, 2),
        "decimal(12,2)",
        "N",
    ),
    "timestamp-millis": (
        TypeRef(Kind.TIMESTAMP_MILLIS),
        "datetime",
        {"type": "long", "logicalType": "timestamp-millis"},
        pa.timestamp("ms", tz="UTC"),
        "timestamp",
        "S",
    ),
    "timestamp-micros": (
        TypeRef(Kind.TIMESTAMP_MICROS),
        "datetime",
        {"type": "long", "logicalType": "timestamp-micros"},
        pa.timestamp("us", tz="UTC"),
        "timestamp",
        "S",
    ),
    "date": (TypeRef(Kind.DATE), "date", {"type": "int", "logicalType": "date"}, pa.date32(), "date", "S"),
    "enum": (
        ENUM,
        'Literal["requested", "fulfilled"]',
        {"type": "enum", "name": "Status", "symbols": ["requested", "fulfilled"]},
        pa.string(),
        "string",
        "S",
    ),
    "array-of-int": (
        TypeRef(Kind.ARRAY, items=TypeRef(Kind.INT)),
        "list[int]",
        {"type": "array", "items": "int"},
        pa.list_(pa.int32()),
        "array<int>",
        "L",
    ),
    "array-of-decimal": (
        TypeRef(Kind.ARRAY, items=MONEY),
        "list[Decimal]",
        {"type": "array", "items": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}},
        pa.list_(pa.decimal128(12, 2)),
        "array<decimal(12,2)>",
        "L",
    ),
}


def test_every_kind_has_a_case():
    covered = {case[0].kind for case in CASES.values()} | {Kind.RECORD}
    assert covered == set(Kind)


@pytest.mark.parametrize("name", sorted(CASES))
def test_mapping(name):
    t, hint, avro, arrow_type, athena, wire = CASES[name]
    m = mapping(t)
    assert m.python == hint
    assert m.avro == avro
    assert arrow(m.arrow) == arrow_type
    assert m.athena == athena
    assert m.wire == wire


@pytest.mark.parametrize("name", sorted(CASES))
def test_avro_fragment_is_valid_avro(name):
    t = CASES[name][0]
    schema = {"type": "record", "name": "R", "fields": [avro_field(field("x", t))]}
    fastavro.parse_schema(schema)


def test_scalar_kind_inverts_the_scalar_table():
    for kind, m in SCALARS.items():
        assert scalar_kind(m.avro) is kind
    assert scalar_kind({"type": "string"}) is Kind.STRING
    assert scalar_kind({"type": "long"}) is Kind.LONG
    assert scalar_kind("float") is None
    assert scalar_kind({"type": "long", "logicalType": "local-timestamp-millis"}) is None


def test_string_array_is_a_list_on_the_wire_unless_declared_a_string_set():
    strings = TypeRef(Kind.ARRAY, items=TypeRef(Kind.STRING))
    assert mapping(strings).wire == "L"
    assert mapping(strings, wire_set=True).wire == "SS"
    assert field_mapping(field("ids", strings, wire_set=True)).wire == "SS"
    assert field_mapping(field("ids", strings)).wire == "L"
    ss = mapping(strings, wire_set=True)  # the set changes only the wire, not the stored type
    assert (ss.python, ss.avro, arrow(ss.arrow), ss.athena) == (
        "list[str]",
        {"type": "array", "items": "string"},
        pa.list_(pa.string()),
        "array<string>",
    )


def test_record_maps_to_struct():
    rec = Record(
        name="PriceRange",
        class_name="SalePriceRange",
        fields=(
            field("min", MONEY, optional=True),
            field("currency", TypeRef(Kind.STRING), optional=True),
            field("count", TypeRef(Kind.INT)),
        ),
    )
    m = mapping(TypeRef(Kind.RECORD, name="PriceRange", record=rec))
    assert m.python == "SalePriceRange"
    assert m.wire == "M"
    assert m.athena == "struct<min:decimal(12,2),currency:string,count:int>"
    assert arrow(m.arrow) == pa.struct(
        [
            pa.field("min", pa.decimal128(12, 2), nullable=True),
            pa.field("currency", pa.string(), nullable=True),
            pa.field("count", pa.int32(), nullable=False),
        ]
    )
    assert m.avro == {
        "type": "record",
        "name": "PriceRange",
        "fields": [
            {
                "name": "min",
                "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}],
                "default": None,
            },
            {"name": "currency", "type": ["null", "string"], "default": None},
            {"name": "count", "type": "int"},
        ],
    }


def test_optional_field_is_a_null_union_with_default_null():
    f = field("email", TypeRef(Kind.STRING), optional=True, doc="Fan's e-mail.")
    assert avro_field(f) == {"name": "email", "type": ["null", "string"], "default": None, "doc": "Fan's e-mail."}
    assert python_hint(f) == "str | None"
    assert arrow(arrow_field(f)) == pa.field("email", pa.string(), nullable=True)


def test_required_field_has_no_default_and_is_not_nullable():
    f = field("quantity", TypeRef(Kind.INT))
    assert avro_field(f) == {"name": "quantity", "type": "int"}
    assert python_hint(f) == "int"
    assert arrow(arrow_field(f)) == pa.field("quantity", pa.int32(), nullable=False)


def test_optional_enum_keeps_its_symbols_inside_the_union():
    f = field("status", ENUM, optional=True)
    assert avro_field(f)["type"] == ["null", {"type": "enum", "name": "Status", "symbols": ["requested", "fulfilled"]}]
    assert python_hint(f) == 'Literal["requested", "fulfilled"] | None'


def test_integer_ranges_are_avro_int_and_long():
    assert INT_RANGES[Kind.INT] == (-(2**31), 2**31 - 1)
    assert INT_RANGES[Kind.LONG] == (-(2**63), 2**63 - 1)
