"""What the Athena DDL, the Glue tables in Terraform and the local query must agree on.

One place for the table shape (columns per lake format) and the partition projection, so the
`athena` and `terraform` targets cannot drift apart; the formats (SerDe, types) and the key layout
are the runtime's own (dmd.lake.formats, dmd.lake.layout).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dmd.lake import layout
from dmd.lake.formats import LakeFormat
from dmd.lake.layout import PARTITION_KEY

from ..model import Field, Origin, RecordType
from ..typemap import athena_type, record_avro

PARTITION_TYPE = "string"  # YYYY-MM-DD as written in the key
# Column types Athena reads as another (its "compatible data types" for a changed column type),
# among the types we generate: what a schema change may do to a column (evolution.py) and what
# a `{type}_all` view reads from an older table version (athena.py).
ATHENA_READS_AS = frozenset({("int", "bigint")})


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
    """The table location: `root` is the data prefix's URL (s3://bucket/prefix)."""
    return layout.table_prefix(root, fmt.name, rt.table)


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
