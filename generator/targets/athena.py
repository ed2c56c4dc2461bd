"""Athena target: per record type and lake format a CREATE EXTERNAL TABLE over exactly the files
the runtime writes, a `<type>_current` view and an `all_records` view; plus the same view bodies as
a Python module (`dmd.generated.views`), so the local DuckDB query runs the very SQL Athena runs.

The statements hold placeholders filled at deploy time (`envsubst`, or `render_sql` in
dmd.tools.query): ${database}, ${bucket}, ${prefix}, ${projection_start} and ${projection_end}. Athena's own
`${partition_date}` in `storage.location.template` is not one of them and stays as it is.
"""

from __future__ import annotations

from dmd.lake.formats import FORMATS, LakeFormat

from ..model import Model, Origin, RecordType
from ..templating import header, render
from ..typemap import athena_type
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


def view_ddl(name: str, body: str, types: list[RecordType], templates: list[str], doc: str) -> str:
    return render(
        VIEW_TEMPLATE,
        header=header("--", types, [VIEW_TEMPLATE, *templates]),
        doc=doc,
        view=f"{ident(DATABASE)}.{ident(name)}",
        body=body,
    )


def render_athena(model: Model) -> dict[str, str]:
    out: dict[str, str] = {}
    for rt in model.types:
        for table in model.tables(rt):
            for fmt in FORMATS.values():
                out[f"athena/{fmt.name}/{table.table}.sql"] = table_ddl(table, fmt)
        if len(model.tables(rt)) > 1:
            out[f"athena/views/{all_view_name(rt)}.sql"] = view_ddl(
                all_view_name(rt),
                all_body(model, rt),
                [rt],
                [ALL_RECORDS_BODY],
                f"Every archived version of every {rt.type_name} item, from each of its table versions, in the "
                "current table's columns (NULL where an older table's column cannot be read as it).",
            )
        out[f"athena/views/{current_view_name(rt)}.sql"] = view_ddl(
            current_view_name(rt),
            current_body(rt, model),
            [rt],
            [CURRENT_BODY],
            f"The current version of each {rt.type_name} item: latest by change time (a snapshot row of a table "
            "export: the export time; a stream row wins a tie), then sequence number; "
            "deleted items excluded.",
        )
    out[f"athena/views/{ALL_RECORDS}.sql"] = view_ddl(
        ALL_RECORDS,
        all_records_body(model),
        list(model.types),
        [ALL_RECORDS_BODY],
        "Every archived version of every record type: its type, partition, key, reference, delete flag and CDC fields.",
    )
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
