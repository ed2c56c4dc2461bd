"""What the Athena DDL, the Glue tables in Terraform and the local query must agree on.

One place for the table shape (columns per lake format), the SerDe of each format, the partition
key and its projection, so the `athena` and `terraform` targets cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..model import Field, Origin, RecordType
from ..typemap import LakeFormat, athena_type, record_avro

PARTITION_KEY = "partition_date"  # the runtime writes .../partition_date=YYYY-MM-DD/...
# Athena stores every name in lower case; the schemas use camelCase, which reads the same.
PARTITION_TYPE = "string"


@dataclass(frozen=True)
class Storage:
    serde: str
    input_format: str
    output_format: str
    classification: str


STORAGE: dict[LakeFormat, Storage] = {
    LakeFormat.PARQUET: Storage(
        "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        "parquet",
    ),
    LakeFormat.AVRO: Storage(
        "org.apache.hadoop.hive.serde2.avro.AvroSerDe",
        "org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat",
        "org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat",
        "avro",
    ),
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Glue spelling: struct field names bare
    ddl_type: str  # DDL spelling: struct field names in backticks (`start`, `date` are reserved)
    comment: str


def backtick(name: str) -> str:
    return f"`{name}`"


def columns(rt: RecordType, fmt: LakeFormat) -> tuple[Column, ...]:
    return tuple(
        Column(f.name, athena_type(f.type, fmt), athena_type(f.type, fmt, backtick), f.doc) for f in rt.root.fields
    )


def avro_literal(rt: RecordType) -> str:
    """The generated .avsc as one line of JSON: the `avro.schema.literal` of the Avro table."""
    return json.dumps(record_avro(rt), ensure_ascii=False, separators=(",", ":"))


def location(root: str, fmt: LakeFormat, rt: RecordType) -> str:
    """The table location under `root` (s3://bucket/prefix), as the runtime lays files out."""
    return f"{root}/{fmt.value}/{rt.type_name}/"


def projection(table_location: str, start: str, end: str) -> dict[str, str]:
    """Partition projection: Athena computes the partitions, so no crawler and no MSCK REPAIR.

    `end` is relative to NOW: a sale or an event is partitioned by when it starts, which may be
    ahead, so a range ending at NOW would hide upcoming ones.
    """
    key = PARTITION_KEY
    return {
        "projection.enabled": "true",
        f"projection.{key}.type": "date",
        f"projection.{key}.format": "yyyy-MM-dd",
        f"projection.{key}.range": f"{start},{end}",
        f"projection.{key}.interval": "1",
        f"projection.{key}.interval.unit": "DAYS",
        "storage.location.template": f"{table_location}{key}=${{{key}}}",
    }


def by_origin(rt: RecordType, origin: Origin) -> Field:
    return next(f for f in rt.walk() if f.origin is origin)


def item_key(rt: RecordType) -> Field:
    """The field that names an item within its type (the `{id}` of the reference template)."""
    f = rt.field("id")
    assert f is not None, f"{rt.source}: no `id` field"  # the loader requires it for the reference
    return f
