"""The one table that maps each schema type to its Python, Avro, Arrow/Parquet and Athena/Glue type.

Every renderer asks this module; no template or renderer spells a target type itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dmd.lake.formats import LakeFormat

from .model import Field, Kind, RecordType, TypeRef


@dataclass(frozen=True)
class Mapping:
    python: str  # type hint in generated code
    avro: Any  # Avro schema fragment
    arrow: str  # pyarrow type expression in generated code
    athena: str  # Athena / Glue column type
    wire: str  # the DynamoDB AttributeValue tag the decoder expects


SCALARS: dict[Kind, Mapping] = {
    Kind.STRING: Mapping("str", "string", "pa.string()", "string", "S"),
    Kind.BOOLEAN: Mapping("bool", "boolean", "pa.bool_()", "boolean", "BOOL"),
    Kind.INT: Mapping("int", "int", "pa.int32()", "int", "N"),
    Kind.LONG: Mapping("int", "long", "pa.int64()", "bigint", "N"),
    Kind.TIMESTAMP_MILLIS: Mapping(
        "datetime",
        {"type": "long", "logicalType": "timestamp-millis"},
        'pa.timestamp("ms", tz="UTC")',
        "timestamp",
        "S",
    ),
    Kind.TIMESTAMP_MICROS: Mapping(
        "datetime",
        {"type": "long", "logicalType": "timestamp-micros"},
        'pa.timestamp("us", tz="UTC")',
        "timestamp",
        "S",
    ),
    Kind.DATE: Mapping("date", {"type": "int", "logicalType": "date"}, "pa.date32()", "date", "S"),
}

# Value ranges of Avro's integer types; a DynamoDB number outside them is a decode error.
INT_RANGES: dict[Kind, tuple[int, int]] = {
    Kind.INT: (-(2**31), 2**31 - 1),
    Kind.LONG: (-(2**63), 2**63 - 1),
}

# Avro `decimal` on bytes; Arrow decimal128 and Athena decimal hold at most 38 digits.
MAX_DECIMAL_PRECISION = 38


def scalar_kind(avro: Any) -> Kind | None:
    """The Kind whose Avro form is `avro` (a primitive name or a logical-type object)."""
    for kind, mapping in SCALARS.items():
        if avro == mapping.avro or (isinstance(avro, dict) and avro == {"type": mapping.avro}):
            return kind
    return None


def mapping(t: TypeRef, *, wire_set: bool = False) -> Mapping:
    if t.kind in SCALARS:
        return SCALARS[t.kind]
    if t.kind is Kind.DECIMAL:
        p, s = t.precision, t.scale
        avro = {"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s}
        return Mapping("Decimal", avro, f"pa.decimal128({p}, {s})", f"decimal({p},{s})", "N")
    if t.kind is Kind.ENUM:
        literal = ", ".join(f'"{s}"' for s in t.symbols)
        avro = {"type": "enum", "name": t.name, "symbols": list(t.symbols)}
        return Mapping(f"Literal[{literal}]", avro, "pa.string()", "string", "S")
    if t.kind is Kind.ARRAY:
        assert t.items is not None
        item = mapping(t.items)
        return Mapping(
            f"list[{item.python}]",
            {"type": "array", "items": item.avro},
            f"pa.list_({item.arrow})",
            f"array<{item.athena}>",
            "SS" if wire_set else "L",
        )
    if t.kind is Kind.RECORD:
        assert t.record is not None
        fields = t.record.fields
        arrow = ", ".join(arrow_field(f) for f in fields)
        athena = ",".join(f"{f.name}:{field_mapping(f).athena}" for f in fields)
        avro = {"type": "record", "name": t.name, "fields": [avro_field(f) for f in fields]}
        return Mapping(t.record.class_name, avro, f"pa.struct([{arrow}])", f"struct<{athena}>", "M")
    raise ValueError(f"no mapping for {t.kind}")


def field_mapping(f: Field) -> Mapping:
    return mapping(f.type, wire_set=f.wire_set)


def python_hint(f: Field) -> str:
    hint = field_mapping(f).python
    return f"{hint} | None" if f.optional else hint


def avro_field(f: Field) -> dict[str, Any]:
    """The plain Avro field (no pipeline annotations): optional fields are `["null", T]`, default null."""
    avro = field_mapping(f).avro
    out: dict[str, Any] = {"name": f.name, "type": ["null", avro] if f.optional else avro}
    if f.optional:
        out["default"] = None
    if f.aliases:
        out["aliases"] = list(f.aliases)
    if f.doc:
        out["doc"] = f.doc
    return out


def arrow_field(f: Field) -> str:
    nullable = "True" if f.optional else "False"
    return f'pa.field("{f.name}", {field_mapping(f).arrow}, nullable={nullable})'


def athena_type(t: TypeRef, fmt: LakeFormat, quote: Callable[[str], str] = str) -> str:
    """The Athena/Glue column type that reads `t` from files of format `fmt`.

    `quote` spells struct field names (backticks in DDL, bare in the Glue catalog).
    """
    if t.kind in fmt.athena_overrides:  # what this format's reader makes of the kind
        return fmt.athena_overrides[t.kind]
    if t.kind is Kind.ARRAY:
        assert t.items is not None
        return f"array<{athena_type(t.items, fmt, quote)}>"
    if t.kind is Kind.RECORD:
        assert t.record is not None
        inner = ",".join(f"{quote(f.name)}:{athena_type(f.type, fmt, quote)}" for f in t.record.fields)
        return f"struct<{inner}>"
    return mapping(t).athena


def record_avro(rt: RecordType) -> dict[str, Any]:
    """The plain Avro schema of a record type: what any Avro reader sees, without `dmd` annotations."""
    out: dict[str, Any] = {"type": "record", "name": rt.root.name, "namespace": rt.namespace}
    if rt.doc:
        out["doc"] = rt.doc
    out["fields"] = [avro_field(f) for f in rt.root.fields]
    return out


# How Athena's engine (Trino) names the Hive types we generate, where the names differ; Athena
# reads Hive's `timestamp` at millisecond precision.
PRESTO_NAMES = {"string": "varchar", "int": "integer", "timestamp": "timestamp(3)"}


def presto_name(hive: str) -> str:
    """A primitive Hive type (athena_type's leaves) as Athena's engine names it."""
    return PRESTO_NAMES.get(hive, hive)


def presto_type(t: TypeRef, fmt: LakeFormat) -> str:
    """The type athena_type(t, fmt) as Athena's engine spells it: what a view definition holds
    (`row("name" type, ...)` for `struct<name:type,...>`, `array(type)` for `array<type>`)."""
    if t.kind in fmt.athena_overrides:
        return presto_name(fmt.athena_overrides[t.kind])
    if t.kind is Kind.ARRAY:
        assert t.items is not None
        return f"array({presto_type(t.items, fmt)})"
    if t.kind is Kind.RECORD:
        assert t.record is not None
        inner = ", ".join('"' + f.name.replace('"', '""') + '" ' + presto_type(f.type, fmt) for f in t.record.fields)
        return f"row({inner})"
    return presto_name(mapping(t).athena)
