"""Read the generated Athena DDL back with sqlglot into a plain table description."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

from dmd.tools.query import render_sql

ROOT = Path(__file__).resolve().parents[2]
ATHENA = ROOT / "generated" / "athena"
PARAMS = {
    "database": "dmd",
    "bucket": "lake-bucket",
    "prefix": "archive",
    "projection_start": "2024-01-01",
    "projection_end": "NOW+1YEARS",
}


def normalize_type(text: str) -> str:
    """`STRUCT<\\`start\\`: TIMESTAMP, min: DECIMAL(12, 2)>` -> `struct<start:timestamp,min:decimal(12,2)>`."""
    return text.replace("`", "").replace(" ", "").lower()


@dataclass(frozen=True)
class TableDef:
    database: str
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, normalized type)
    comments: tuple[str, ...]
    partition: tuple[tuple[str, str], ...]
    serde: str
    serde_properties: dict[str, str]
    input_format: str
    output_format: str
    location: str
    properties: dict[str, str]


def parse_table(path: Path, params: dict[str, str] = PARAMS) -> TableDef:
    statement = sqlglot.parse_one(render_sql(path.read_text(), params), read="hive")
    assert isinstance(statement, exp.Create) and statement.kind == "TABLE"
    schema = statement.this
    table = schema.this
    cols, comments = [], []
    for c in schema.expressions:
        cols.append((c.name, normalize_type(c.args["kind"].sql("hive"))))
        comment = next((k for k in c.constraints if isinstance(k.kind, exp.CommentColumnConstraint)), None)
        comments.append(comment.kind.this.this if comment else "")
    props = statement.args["properties"].expressions
    partition = next(p for p in props if isinstance(p, exp.PartitionedByProperty))
    serde = next(p for p in props if isinstance(p, exp.RowFormatSerdeProperty))
    file_format = next(p for p in props if isinstance(p, exp.FileFormatProperty)).this
    serde_props = serde.args.get("serde_properties")
    return TableDef(
        database=table.db,
        name=table.name,
        columns=tuple(cols),
        comments=tuple(comments),
        partition=tuple((c.name, normalize_type(c.args["kind"].sql("hive"))) for c in partition.this.expressions),
        serde=serde.this.this,
        serde_properties={p.name: p.args["value"].this for p in serde_props.expressions} if serde_props else {},
        input_format=file_format.args["input_format"].this,
        output_format=file_format.args["output_format"].this,
        location=next(p for p in props if isinstance(p, exp.LocationProperty)).this.this,
        properties={p.name: p.args["value"].this for p in props if type(p) is exp.Property},
    )


def table_files() -> list[Path]:
    return [p for p in sorted(ATHENA.glob("*/*.sql")) if p.parent.name != "views"]


def view_sql(path: Path, params: dict[str, str] = PARAMS) -> str:
    return re.sub(r"^--.*\n", "", render_sql(path.read_text(), params), flags=re.M)
