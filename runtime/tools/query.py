"""Query a local lake with DuckDB, through the same view definitions Athena uses.

`open_lake` registers, per table (each record type's, and its older table versions': the
generated TABLES), a view over every data container the runtime wrote (dmd.lake.layout:
`{prefix}/{format}/{table}/partition_date=YYYY-MM-DD/`), then the generated `<type>_all` (types
with older table versions), `<type>_current` and `all_records` views (dmd.generated.views,
rendered from the same templates as the Athena DDL). Files pyarrow's datasets read lazily
(Parquet) are handed to DuckDB as a dataset; any other format (Avro) is read into Arrow with the
generated Arrow schema (dmd.lake.formats says which). A table with no files still gets an empty
view, so every query runs on an empty or partial lake.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dmd.lake import layout
from dmd.lake.formats import FORMATS, LakeFormat
from dmd.lake.layout import PARTITION_KEY

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dmd.support.records import RecordSpec

LOCAL_SCHEMA = "main"  # stands in for the Glue database of the Athena views
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render_sql(text: str, params: Mapping[str, str]) -> str:
    """Fill the `${name}` placeholders of generated SQL whose names are in `params`.

    Other `${...}` are left alone: Athena's own `${partition_date}` in a location template is one.
    """
    return _PLACEHOLDER.sub(lambda m: params.get(m.group(1), m.group(0)), text)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _arrow_schema(spec: RecordSpec) -> pa.Schema:
    import pyarrow as pa

    return spec.arrow_schema().append(pa.field(PARTITION_KEY, pa.string()))


def _files(lake: Path, prefix: str, fmt: LakeFormat, type_name: str) -> list[Path]:
    """The data containers of one type in one format, as the layout names them (temporary and
    hidden files, which Athena ignores too, left out)."""
    folder = lake / layout.table_prefix(prefix, fmt.name, type_name)
    keys = (p.relative_to(lake).as_posix() for p in folder.glob(f"{PARTITION_KEY}=*/*.{fmt.extension}"))
    return [lake / key for key in sorted(keys) if layout.parse_data_key(key, prefix)]


def _dataset(files: list[Path], fmt: LakeFormat, table_root: Path, spec: RecordSpec) -> Any:
    """The files as one lazily read pyarrow dataset, `partition_date` from their folder names.

    Not DuckDB's own reader: it expands glob characters in every path it is given, so a lake
    under `lake[12]` would read `lake1`'s files; pyarrow takes paths literally.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    partitioning = ds.partitioning(pa.schema([pa.field(PARTITION_KEY, pa.string())]), flavor="hive")
    return ds.dataset(
        [str(f) for f in files],
        schema=_arrow_schema(spec),
        format=fmt.dataset_format,
        partitioning=partitioning,
        partition_base_dir=str(table_root),
    )


def _read_arrow(files: list[Path], spec: RecordSpec) -> pa.Table:
    """Containers of one type as one Arrow table, `partition_date` taken from each file's folder."""
    import pyarrow as pa

    from dmd.lake.read import read_rows

    schema = _arrow_schema(spec)
    tables = [schema.empty_table()]
    for path in files:
        rows = read_rows(path.read_bytes())
        day = path.parent.name.partition("=")[2]
        for row in rows:
            row[PARTITION_KEY] = day
        tables.append(pa.Table.from_pylist(rows, schema=schema))
    return pa.concat_tables(tables)


def _type_source(con: duckdb.DuckDBPyConnection, lake: Path, prefix: str, type_name: str, spec: RecordSpec) -> str:
    """The SELECT that reads every container of one table (`type_name`), whatever the format."""
    columns = ", ".join(_ident(name) for name in _arrow_schema(spec).names)
    selects = []
    converted: list[Path] = []
    for fmt in FORMATS.values():
        files = _files(lake, prefix, fmt, type_name)
        if not files:
            continue
        if fmt.dataset_format:
            relation = f"_{fmt.name}_{type_name}"
            con.register(relation, _dataset(files, fmt, lake / layout.table_prefix(prefix, fmt.name, type_name), spec))
            selects.append(f"SELECT {columns} FROM {_ident(relation)}")
        else:
            converted += files
    if converted or not selects:  # no file at all: an empty table of the right shape
        relation = f"_arrow_{type_name}"
        con.register(relation, _read_arrow(converted, spec))
        selects.append(f"SELECT {columns} FROM {_ident(relation)}")
    return "\nUNION ALL\n".join(selects)


def open_lake(root: Path, prefix: str = "archive", generated: ModuleType | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with views `<table>`, `<type>_all`, `<type>_current` and `all_records`
    over the lake; `generated` is the generated package (dmd.generated unless a test's own)."""
    import duckdb

    package = generated or importlib.import_module("dmd.generated")
    views = importlib.import_module(package.__name__ + ".views")

    con = duckdb.connect()
    with contextlib.suppress(duckdb.Error):  # without the ICU extension timestamps show in local time
        con.execute("SET TimeZone = 'UTC'")
    for table, spec in package.TABLES.items():
        con.execute(f"CREATE VIEW {_ident(table)} AS\n{_type_source(con, Path(root), prefix, table, spec)}")
    params = {"database": LOCAL_SCHEMA}
    for view, (_type_name, body) in (views.ALL_VIEWS | views.CURRENT_VIEWS).items():  # the former read by the latter
        con.execute(f"CREATE VIEW {_ident(view)} AS\n{render_sql(body, params)}")
    con.execute(f"CREATE VIEW {_ident(views.ALL_RECORDS_VIEW)} AS\n{render_sql(views.ALL_RECORDS_BODY, params)}")
    return con
