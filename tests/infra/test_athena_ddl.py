"""The generated Athena DDL parses, and reads exactly what the runtime writes: its columns agree
with the generated .avsc (Avro tables) and with the Arrow schema the runtime writes (Parquet)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlglot
from infra_ddl import ATHENA, PARAMS, ROOT, parse_table, table_files, view_sql

from dmd.generated import REGISTRY
from dmd.generator.targets.athena import PLACEHOLDERS
from dmd.tools.query import render_sql

TYPES = sorted(REGISTRY)
FORMATS = ("parquet", "avro")


def hive_from_avro(t: Any) -> str:
    """What Athena's Avro reader (Hive rules) makes of an Avro type: only timestamp-millis, date and
    decimal logical types map to Hive types; others (timestamp-micros) are read as the base type."""
    if isinstance(t, list):
        (inner,) = [x for x in t if x != "null"]
        return hive_from_avro(inner)
    if isinstance(t, str):
        return {"string": "string", "boolean": "boolean", "int": "int", "long": "bigint", "bytes": "binary"}[t]
    logical = t.get("logicalType")
    if logical == "timestamp-millis":
        return "timestamp"
    if logical == "date":
        return "date"
    if logical == "decimal":
        return f"decimal({t['precision']},{t['scale']})"
    match t["type"]:
        case "enum":
            return "string"
        case "array":
            return f"array<{hive_from_avro(t['items'])}>"
        case "record":
            return "struct<" + ",".join(f"{f['name'].lower()}:{hive_from_avro(f['type'])}" for f in t["fields"]) + ">"
    return hive_from_avro(t["type"])  # any other logical type: its base type


def hive_from_arrow(t: pa.DataType) -> str:
    """The Athena type that reads a Parquet column the runtime writes from this Arrow type."""
    if pa.types.is_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int32(t):
        return "int"
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_timestamp(t):
        assert t.tz == "UTC", t  # instants, written with isAdjustedToUTC
        return "timestamp"
    if pa.types.is_date32(t):
        return "date"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_list(t):
        return f"array<{hive_from_arrow(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name.lower()}:{hive_from_arrow(f.type)}" for f in t) + ">"
    raise AssertionError(f"no Athena type for {t}")


def avsc(type_name: str) -> dict[str, Any]:
    return json.loads((ROOT / "generated" / "avro" / f"{type_name}.avsc").read_text())


def test_one_table_per_type_and_format():
    assert sorted(str(p.relative_to(ATHENA)) for p in table_files()) == sorted(
        f"{fmt}/{t}.sql" for fmt in FORMATS for t in TYPES
    )


@pytest.mark.parametrize("type_name", TYPES)
def test_avro_table_reads_the_avsc(type_name: str):
    table = parse_table(ATHENA / "avro" / f"{type_name}.sql")
    schema = avsc(type_name)
    assert [(n.lower(), t) for n, t in table.columns] == [
        (f["name"].lower(), hive_from_avro(f["type"])) for f in schema["fields"]
    ]
    assert json.loads(table.serde_properties["avro.schema.literal"]) == schema
    assert table.serde == "org.apache.hadoop.hive.serde2.avro.AvroSerDe"
    assert table.input_format == "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat"


@pytest.mark.parametrize("type_name", TYPES)
def test_parquet_table_reads_the_arrow_schema(type_name: str):
    table = parse_table(ATHENA / "parquet" / f"{type_name}.sql")
    arrow = REGISTRY[type_name].arrow_schema()
    assert [(n.lower(), t) for n, t in table.columns] == [(f.name.lower(), hive_from_arrow(f.type)) for f in arrow]
    assert table.serde == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    assert table.serde_properties == {}


@pytest.mark.parametrize("type_name", TYPES)
def test_both_formats_have_the_arrow_column_names_and_doc_comments(type_name: str):
    fields = {f["name"]: f.get("doc", "") for f in avsc(type_name)["fields"]}
    for fmt in FORMATS:
        table = parse_table(ATHENA / fmt / f"{type_name}.sql")
        assert [n for n, _ in table.columns] == REGISTRY[type_name].arrow_schema().names
        assert list(table.comments) == list(fields.values())


def test_avro_timestamp_micros_is_bigint_and_millis_date_decimal_are_typed():
    """The documented choice: Athena maps only timestamp-millis/date/decimal Avro logical types."""
    sale = dict(parse_table(ATHENA / "avro" / "sale.sql").columns)
    assert sale["saleStartDateTime"] == "timestamp"
    assert sale["priceRange"] == "struct<min:decimal(12,2),max:decimal(12,2),currency:string>"
    assert "changetime:bigint" in sale["cdc"]
    event = dict(parse_table(ATHENA / "avro" / "event.sql").columns)
    assert "localdate:date" in event["eventDate"]
    assert "changetime:timestamp" in dict(parse_table(ATHENA / "parquet" / "sale.sql").columns)["cdc"]


@pytest.mark.parametrize("path", table_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_table_location_and_partition_projection(path: Path):
    fmt, type_name = path.parent.name, path.stem
    table = parse_table(path)
    assert (table.database, table.name) == (PARAMS["database"], type_name)
    assert table.partition == (("partition_date", "string"),)
    location = f"s3://{PARAMS['bucket']}/{PARAMS['prefix']}/{fmt}/{type_name}/"
    assert table.location == location
    assert table.properties == {
        "classification": fmt,
        "projection.enabled": "true",
        "projection.partition_date.type": "date",
        "projection.partition_date.format": "yyyy-MM-dd",
        "projection.partition_date.range": f"{PARAMS['projection_start']},{PARAMS['projection_end']}",
        "projection.partition_date.interval": "1",
        "projection.partition_date.interval.unit": "DAYS",
        "storage.location.template": location + "partition_date=${partition_date}",
    }


@pytest.mark.parametrize("path", table_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_identifier_is_quoted(path: Path):
    """`date` and `start` are Athena DDL reserved words; every column and struct field is backticked."""
    text = path.read_text()
    body = text[text.index("(\n") : text.index("\n)\n")]
    for line in body.splitlines()[1:]:
        assert re.match(r"  `\w+` ", line), line
        types = line.split(" COMMENT ")[0]
        assert not re.search(r"[<,](?!`)\w+:", types), line  # struct field names quoted too
    assert "`date` struct<" in text


@pytest.mark.parametrize("path", table_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_table_ddl_parses_as_athena_too(path: Path):
    """sqlglot's Athena dialect sends DDL through its Hive parser, as Athena does."""
    statement = sqlglot.parse_one(render_sql(path.read_text(), PARAMS), read="athena")
    assert statement.kind == "TABLE" and statement.this.this.name == path.stem


def test_placeholders_are_the_documented_ones():
    for path in ATHENA.rglob("*.sql"):
        found = set(re.findall(r"\$\{(\w+)\}", path.read_text()))
        assert found <= {*PLACEHOLDERS, "partition_date"}, path
    assert set(PLACEHOLDERS) == set(PARAMS)


@pytest.mark.parametrize("path", sorted((ATHENA / "views").glob("*.sql")), ids=lambda p: p.stem)
def test_views_parse_as_athena_sql(path: Path):
    statement = sqlglot.parse_one(view_sql(path), read="athena")
    assert statement.kind == "VIEW"
    assert statement.this.name == path.stem
    assert statement.this.db == PARAMS["database"]


def test_every_generated_sql_file_has_the_do_not_edit_header():
    for path in ATHENA.rglob("*.sql"):
        assert path.read_text().startswith("-- Code generated by `dmd generate` from schemas/"), path
