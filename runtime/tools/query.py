"""Query a local lake with DuckDB, through the same view definitions Athena uses.

`open_lake` registers, per record type, a view over every data container the runtime wrote
(dmd.lake.layout: `{prefix}/{format}/{type}/partition_date=YYYY-MM-DD/`), then the generated `<type>_current`
and `all_records` views (dmd.generated.views, rendered from the same templates as the Athena
DDL). Files pyarrow's datasets read lazily (Parquet) are handed to DuckDB as a dataset; any other
format (Avro) is read into Arrow with the generated Arrow schema (dmd.lake.formats says which):
big containers (compacted ones) by DataFusion's Avro reader, small ones by fastavro. DuckDB's own
Avro extension would be downloaded at run time, not installed from PyPI; polars' Avro reader
fails on these containers. A type with no files still gets an empty view, so every query runs on
an empty or partial lake.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dmd.generated import REGISTRY
from dmd.generated.views import ALL_RECORDS_BODY, ALL_RECORDS_VIEW, CURRENT_VIEWS
from dmd.lake import layout
from dmd.lake.formats import FORMATS, LakeFormat
from dmd.lake.layout import PARTITION_KEY

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

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


def _arrow_schema(type_name: str) -> pa.Schema:
    import pyarrow as pa

    return REGISTRY[type_name].arrow_schema().append(pa.field(PARTITION_KEY, pa.string()))


def _files(lake: Path, prefix: str, fmt: LakeFormat, type_name: str) -> list[Path]:
    """The data containers of one type in one format, as the layout names them (temporary and
    hidden files, which Athena ignores too, left out)."""
    folder = lake / layout.table_prefix(prefix, fmt.name, type_name)
    keys = (p.relative_to(lake).as_posix() for p in folder.glob(f"{PARTITION_KEY}=*/*.{fmt.extension}"))
    return [lake / key for key in sorted(keys) if layout.parse_data_key(key, prefix)]


def _dataset(files: list[Path], fmt: LakeFormat, table_root: Path, type_name: str) -> Any:
    """The files as one lazily read pyarrow dataset, `partition_date` from their folder names.

    Not DuckDB's own reader: it expands glob characters in every path it is given, so a lake
    under `lake[12]` would read `lake1`'s files; pyarrow takes paths literally.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    partitioning = ds.partitioning(pa.schema([pa.field(PARTITION_KEY, pa.string())]), flavor="hive")
    return ds.dataset(
        [str(f) for f in files],
        schema=_arrow_schema(type_name),
        format=fmt.dataset_format,
        partitioning=partitioning,
        partition_base_dir=str(table_root),
    )


# An Avro container at least this big is read by DataFusion (Apache DataFusion's Avro reader, in
# Rust: ~1 µs a row but ~1 ms a file), a smaller one by fastavro (~13 µs a row, ~0.1 ms a file):
# compacted objects the first way, the small objects of a lake not compacted yet the second.
NATIVE_AVRO_BYTES = 32 << 10


def _read_arrow(files: list[Path], type_name: str, native_from: int = NATIVE_AVRO_BYTES) -> pa.Table:
    """Containers of one type as one Arrow table in file order, `partition_date` taken from each
    file's folder. Avro containers of at least `native_from` bytes are read by DataFusion."""
    import pyarrow as pa

    from dmd.lake.read import AVRO_MAGIC, read_rows

    schema = _arrow_schema(type_name)
    tables = [schema.empty_table()]
    rows: list[dict[str, Any]] = []  # of small containers, converted together
    with _NativeAvro() as native:
        for path in files:
            day = path.parent.name.partition("=")[2]
            table = native.read(path) if path.stat().st_size >= native_from and _magic(path) == AVRO_MAGIC else None
            if table is not None:
                if rows:
                    tables.append(pa.Table.from_pylist(rows, schema=schema))
                    rows = []
                day_column = pa.array([day] * table.num_rows, pa.string())
                columns = {**dict(zip(table.column_names, table.columns, strict=True)), PARTITION_KEY: day_column}
                # a field the container lacks (written before it was added) is null, as fastavro's rows have it
                nulls = {f.name: pa.nulls(table.num_rows, f.type) for f in schema if f.name not in columns}
                tables.append(pa.table({**columns, **nulls}).select(schema.names).cast(schema))
                continue
            for row in read_rows(path.read_bytes()):
                row[PARTITION_KEY] = day
                rows.append(row)
        if rows:
            tables.append(pa.Table.from_pylist(rows, schema=schema))
    return pa.concat_tables(tables)


def _magic(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(4)


class _NativeAvro:
    """Avro containers read into Arrow by DataFusion. It takes a path as a URL that may hold glob
    patterns (`lake[12]` would match `lake1`): each file is read through a symbolic link with a
    plain name in a temporary folder instead."""

    def __enter__(self) -> _NativeAvro:
        self.ctx: Any = None
        self.folder: tempfile.TemporaryDirectory[str] | None = None
        self.links = 0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.folder is not None:
            self.folder.cleanup()

    def read(self, path: Path) -> pa.Table | None:
        """The container as DataFusion reads it; None if the temporary folder's own path holds a
        glob character (then fastavro reads it)."""
        if self.ctx is None:
            from datafusion import SessionContext

            self.ctx = SessionContext()
            self.folder = tempfile.TemporaryDirectory(prefix="dmd-query-")
        assert self.folder is not None
        if any(c in self.folder.name for c in "*?[]{}"):
            return None
        link = Path(self.folder.name) / f"{self.links}.avro"
        self.links += 1
        link.symlink_to(path.resolve())
        return self.ctx.read_avro(str(link)).to_arrow_table()


def _type_source(
    con: duckdb.DuckDBPyConnection, lake: Path, prefix: str, type_name: str, native_avro_bytes: int
) -> str:
    """The SELECT that reads every archived version of one type, whatever the format."""
    columns = ", ".join(_ident(name) for name in _arrow_schema(type_name).names)
    selects = []
    converted: list[Path] = []
    for fmt in FORMATS.values():
        files = _files(lake, prefix, fmt, type_name)
        if not files:
            continue
        if fmt.dataset_format:
            relation = f"_{fmt.name}_{type_name}"
            con.register(
                relation, _dataset(files, fmt, lake / layout.table_prefix(prefix, fmt.name, type_name), type_name)
            )
            selects.append(f"SELECT {columns} FROM {_ident(relation)}")
        else:
            converted += files
    if converted or not selects:  # no file at all: an empty table of the right shape
        relation = f"_arrow_{type_name}"
        con.register(relation, _read_arrow(converted, type_name, native_avro_bytes))
        selects.append(f"SELECT {columns} FROM {_ident(relation)}")
    return "\nUNION ALL\n".join(selects)


def open_lake(
    root: Path, prefix: str = "archive", native_avro_bytes: int = NATIVE_AVRO_BYTES
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with views `<type>`, `<type>_current` and `all_records` over the lake
    (Avro containers of at least `native_avro_bytes` read by DataFusion, smaller ones by fastavro)."""
    import duckdb

    con = duckdb.connect()
    with contextlib.suppress(duckdb.Error):  # without the ICU extension timestamps show in local time
        con.execute("SET TimeZone = 'UTC'")
    for type_name in REGISTRY:
        source = _type_source(con, Path(root), prefix, type_name, native_avro_bytes)
        con.execute(f"CREATE VIEW {_ident(type_name)} AS\n{source}")
    params = {"database": LOCAL_SCHEMA}
    for view, (_type_name, body) in CURRENT_VIEWS.items():
        con.execute(f"CREATE VIEW {_ident(view)} AS\n{render_sql(body, params)}")
    con.execute(f"CREATE VIEW {_ident(ALL_RECORDS_VIEW)} AS\n{render_sql(ALL_RECORDS_BODY, params)}")
    return con
