"""Athena target: per record type and lake format a CREATE EXTERNAL TABLE over exactly the files
the runtime writes, a `<type>_current` view and an `all_records` view; plus the same view bodies as
a Python module (`dmd.generated.views`), so the local DuckDB query runs the very SQL Athena runs.

The statements hold placeholders filled at deploy time (`envsubst`, or `render_sql` in
dmd.tools.query): ${database}, ${bucket}, ${prefix}, ${projection_start} and ${projection_end}. Athena's own
`${partition_date}` in `storage.location.template` is not one of them and stays as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from dmd.lake.formats import FORMATS, LakeFormat

from ..model import Field, Model, Origin, RecordType
from ..templating import header, render
from ..typemap import athena_type, presto_name, presto_type
from .catalog import (
    ATHENA_READS_AS,
    PARTITION_KEY,
    PARTITION_TYPE,
    avro_literal,
    by_origin,
    columns,
    item_key,
    location,
)
from .catalog import projection as projection_properties

TABLE_TEMPLATE = "athena/table.sql.j2"
VIEW_TEMPLATE = "athena/view.sql.j2"
CURRENT_BODY = "athena/current-body.sql.j2"
ALL_RECORDS_BODY = "athena/all-records-body.sql.j2"
VIEWS_MODULE = "athena/views.py.j2"

PLACEHOLDERS = ("database", "bucket", "prefix", "projection_start", "projection_end")
DATABASE = "${database}"
LOCATION_ROOT = "s3://${bucket}/${prefix}"
PROJECTION_START = "${projection_start}"
PROJECTION_END = "${projection_end}"
ALL_RECORDS = "all_records"
SNAPSHOT = "SNAPSHOT"  # cdc.operation of a row from a full table export (dmd backfill)
# cdc fields every record type carries, exposed by `all_records` under their own names.
ALL_RECORDS_CDC = (Origin.CDC_OPERATION, Origin.CDC_SEQUENCE_NUMBER, Origin.CDC_CHANGE_TIME, Origin.CDC_EVENT_ID)


def sql_string(text: str) -> str:
    """A Hive/Athena DDL string literal: backslash escapes, as Hive unescapes them."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(name: str) -> str:
    """A quoted identifier in a SELECT or view (Athena/Trino and DuckDB both use double quotes)."""
    return '"' + name.replace('"', '""') + '"'


def path_expr(alias: str, path: str) -> str:
    return ".".join([alias, *(ident(p) for p in path.split("."))])


def current_view_name(rt: RecordType) -> str:
    return f"{rt.type_name}_current"


def all_view_name(rt: RecordType) -> str:
    return f"{rt.type_name}_all"


def source(model: Model, rt: RecordType) -> str:
    """What the views read a type from: its table, or, once it has older table versions, the
    `{type}_all` view over all of them."""
    name = all_view_name(rt) if len(model.tables(rt)) > 1 else rt.table
    return f"{ident(DATABASE)}.{ident(name)}"


def all_body(model: Model, rt: RecordType) -> str:
    """Every table version of a type in the current one's columns: a column an older table holds
    with a type Athena reads as the current one (the same, or int for bigint) is read from it;
    any other is NULL for its rows (docs/schema-evolution.md)."""
    selects = []
    for table in model.tables(rt):
        have = {f.name: f for f in table.root.fields}
        cols = []
        for f in rt.root.fields:
            old = have.get(f.name)
            readable = old is not None and all(
                (athena_type(old.type, fmt), athena_type(f.type, fmt)) in ATHENA_READS_AS
                or athena_type(old.type, fmt) == athena_type(f.type, fmt)
                for fmt in FORMATS.values()
            )
            cols.append(f"v.{ident(f.name)}" if readable else f"NULL AS {ident(f.name)}")
        cols.append(f"v.{ident(PARTITION_KEY)}")
        selects.append({"columns": cols, "table": f"{ident(DATABASE)}.{ident(table.table)}"})
    return render(ALL_RECORDS_BODY, selects=selects).rstrip("\n")


def current_body(rt: RecordType, model: Model) -> str:
    """Latest version of each item: by change time, then a stream row before a snapshot row (a
    table export's, stamped with the export time: a change the stream carries at that very time is
    no older than the snapshot), then sequence number (a decimal string, so by length first);
    stream duplicates share all three and collapse to one row; deleted items drop out."""
    change_time = by_origin(rt, Origin.CDC_CHANGE_TIME).path
    sequence = by_origin(rt, Origin.CDC_SEQUENCE_NUMBER).path
    operation = path_expr("v", by_origin(rt, Origin.CDC_OPERATION).path)
    return render(
        CURRENT_BODY,
        columns=[ident(f.name) for f in rt.root.fields] + [ident(PARTITION_KEY)],
        table=source(model, rt),
        key=path_expr("v", item_key(rt).path),
        order=[
            f"{path_expr('v', change_time)} DESC",
            f"CASE WHEN {operation} = '{SNAPSHOT}' THEN 0 ELSE 1 END DESC",
            f"length({path_expr('v', sequence)}) DESC",
            f"{path_expr('v', sequence)} DESC",
        ],
        deleted=path_expr("ranked", by_origin(rt, Origin.IS_DELETED).path),
    ).rstrip("\n")


def all_records_body(model: Model) -> str:
    selects = []
    for rt in model.types:
        cols = [f"'{rt.type_name}' AS {ident('type')}", f"v.{ident(PARTITION_KEY)}", path_expr("v", item_key(rt).path)]
        for origin in (Origin.TEMPLATE, Origin.IS_DELETED, *ALL_RECORDS_CDC):
            f = by_origin(rt, origin)
            cols.append(f"{path_expr('v', f.path)} AS {ident(f.name)}")
        selects.append({"columns": cols, "table": source(model, rt)})
    return render(ALL_RECORDS_BODY, selects=selects).rstrip("\n")


@dataclass(frozen=True)
class ViewColumn:
    name: str
    type: str  # as the Glue tables spell it (Hive)
    presto: str  # as Athena's engine spells it, in a view definition
    comment: str


@dataclass(frozen=True)
class View:
    name: str
    body: str
    doc: str
    types: tuple[RecordType, ...]  # the record types it reads
    template: str  # the template of its body
    # what the body returns from each lake format's tables (the types differ: catalog.columns)
    columns: Mapping[str, tuple[ViewColumn, ...]]


def field_column(f: Field, fmt: LakeFormat) -> ViewColumn:
    return ViewColumn(f.name, athena_type(f.type, fmt), presto_type(f.type, fmt), f.doc)


def partition_column() -> ViewColumn:
    return ViewColumn(PARTITION_KEY, PARTITION_TYPE, presto_name(PARTITION_TYPE), "The partition (YYYY-MM-DD).")


def type_columns(rt: RecordType, fmt: LakeFormat) -> tuple[ViewColumn, ...]:
    """A type's current table's columns and the partition: what its `_all` and `_current` views
    return (an older table's column is read as the current one's type, or is NULL)."""
    return (*(field_column(f, fmt) for f in rt.root.fields), partition_column())


def union_column(same: tuple[ViewColumn, ...]) -> ViewColumn:
    """The column a UNION ALL makes of `same` (one per SELECT): all of one type, or one Athena
    reads as the other (catalog.ATHENA_READS_AS)."""
    types = {c.type for c in same}
    wider = [new for old, new in ATHENA_READS_AS if types == {old, new}]
    if len(types) > 1 and not wider:
        raise ValueError(f"{ALL_RECORDS}: column {same[0].name} has types {sorted(types)} across record types")
    return next(c for c in same if len(types) == 1 or c.type in wider)


def all_records_columns(model: Model, fmt: LakeFormat) -> tuple[ViewColumn, ...]:
    """The columns of `all_records`: a UNION ALL takes its names from the first SELECT."""
    per_type = []
    for rt in model.types:
        fields = [by_origin(rt, origin) for origin in (Origin.TEMPLATE, Origin.IS_DELETED, *ALL_RECORDS_CDC)]
        per_type.append([field_column(item_key(rt), fmt), *(field_column(f, fmt) for f in fields)])
    out = [ViewColumn("type", "string", presto_name("string"), "The record type."), partition_column()]
    for same in zip(*per_type, strict=True):
        out.append(replace(union_column(same), name=same[0].name, comment=same[0].comment))
    return tuple(out)


def views(model: Model) -> list[View]:
    """Every view, each after those it reads: `{type}_all` (types with older table versions),
    `{type}_current`, `all_records`."""
    out = []
    for rt in model.types:
        if len(model.tables(rt)) > 1:
            out.append(
                View(
                    all_view_name(rt),
                    all_body(model, rt),
                    f"Every archived version of every {rt.type_name} item, from each of its table versions, in "
                    "the current table's columns (NULL where an older table's column cannot be read as it).",
                    (rt,),
                    ALL_RECORDS_BODY,
                    {name: type_columns(rt, fmt) for name, fmt in FORMATS.items()},
                )
            )
    for rt in model.types:
        out.append(
            View(
                current_view_name(rt),
                current_body(rt, model),
                f"The current version of each {rt.type_name} item: latest by change time (a snapshot row of a "
                "table export: the export time; a stream row wins a tie), then sequence number; "
                "deleted items excluded.",
                (rt,),
                CURRENT_BODY,
                {name: type_columns(rt, fmt) for name, fmt in FORMATS.items()},
            )
        )
    out.append(
        View(
            ALL_RECORDS,
            all_records_body(model),
            "Every archived version of every record type: its type, partition, key, reference, delete flag and "
            "CDC fields.",
            tuple(model.types),
            ALL_RECORDS_BODY,
            {name: all_records_columns(model, fmt) for name, fmt in FORMATS.items()},
        )
    )
    return out


def table_ddl(rt: RecordType, fmt: LakeFormat) -> str:
    table_location = location(LOCATION_ROOT, fmt, rt)
    properties = {"classification": fmt.classification}
    properties |= projection_properties(table_location, PROJECTION_START, PROJECTION_END)
    serde_properties = {"avro.schema.literal": avro_literal(rt)} if fmt.schema_literal else {}
    return render(
        TABLE_TEMPLATE,
        header=header("--", [rt], [TABLE_TEMPLATE]),
        rt=rt,
        fmt=fmt.name,
        table=f"`{DATABASE}`.`{rt.table}`",
        columns=[(f"`{c.name}`", c.ddl_type, sql_string(c.comment)) for c in columns(rt, fmt)],
        partition=(f"`{PARTITION_KEY}`", PARTITION_TYPE),
        storage=fmt,
        serde_properties=[(sql_string(k), sql_string(v)) for k, v in serde_properties.items()],
        location=sql_string(table_location),
        properties=[(sql_string(k), sql_string(v)) for k, v in properties.items()],
        comment=sql_string(rt.doc),
    )


def view_ddl(view: View) -> str:
    return render(
        VIEW_TEMPLATE,
        header=header("--", list(view.types), [VIEW_TEMPLATE, view.template]),
        doc=view.doc,
        view=f"{ident(DATABASE)}.{ident(view.name)}",
        body=view.body,
    )


def render_athena(model: Model) -> dict[str, str]:
    out: dict[str, str] = {}
    for rt in model.types:
        for table in model.tables(rt):
            for fmt in FORMATS.values():
                out[f"athena/{fmt.name}/{table.table}.sql"] = table_ddl(table, fmt)
    for view in views(model):
        out[f"athena/views/{view.name}.sql"] = view_ddl(view)
    alls = {all_view_name(rt): (rt.type_name, all_body(model, rt)) for rt in model.types if len(model.tables(rt)) > 1}
    bodies = [current_body(rt, model) for rt in model.types] + [all_records_body(model)]
    bodies += [body for _, body in alls.values()]
    for body in bodies:  # embedded verbatim in a ''''-quoted Python string
        if "'''" in body or "\\" in body or body.endswith("'"):
            raise ValueError(f"view body cannot be embedded in Python: {body[:60]!r}")
    out["python/views.py"] = render(
        VIEWS_MODULE,
        header=header("#", model.types, [VIEWS_MODULE, CURRENT_BODY, ALL_RECORDS_BODY]),
        database=DATABASE,
        current={current_view_name(rt): (rt.type_name, current_body(rt, model)) for rt in model.types},
        alls=alls,
        all_records=(ALL_RECORDS, all_records_body(model)),
        partition_key=PARTITION_KEY,
    )
    return out
