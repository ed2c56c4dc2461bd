"""Query a local lake with DuckDB, through the same view definitions Athena uses.

`open_lake` registers, per table (each record type's, and its older table versions': the
generated TABLES), a view over every data container the runtime wrote (dmd.lake.layout:
`{prefix}/{format}/{table}/partition_date=YYYY-MM-DD/`), then the generated `<type>_all` (types
with older table versions), `<type>_current` and `all_records` views (dmd.generated.views,
rendered from the same templates as the Athena DDL). Files pyarrow's datasets read lazily
(Parquet) are handed to DuckDB as a dataset; any other format (Avro) is read into Arrow with the
generated Arrow schema (dmd.lake.formats says which): big containers (compacted ones) by
DataFusion's Avro reader, small ones by fastavro. DuckDB's own Avro extension would be downloaded
at run time, not installed from PyPI; polars' Avro reader fails on these containers. A table with
no files still gets an empty view, so every query runs on an empty or partial lake.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import tempfile
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
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


# An Avro container at least this big is read by DataFusion (Apache DataFusion's Avro reader, in
# Rust: ~1 µs a row but ~1 ms a file), a smaller one by fastavro (~13 µs a row, ~0.1 ms a file):
# compacted objects the first way, the small objects of a lake not compacted yet the second.
NATIVE_AVRO_BYTES = 8 << 10
CONVERT_ROWS = 8192  # rows of small containers converted to Arrow together (one call, bounded memory)


def _read_arrow(files: list[Path], spec: RecordSpec, native_from: int = NATIVE_AVRO_BYTES) -> pa.Table:
    """Containers of one type as one Arrow table in file order, `partition_date` taken from each
    file's folder. Avro containers of at least `native_from` bytes are read by DataFusion, on
    threads (it releases the GIL) while fastavro reads the small ones."""
    import pyarrow as pa

    from dmd.lake.read import AVRO_MAGIC, read_rows

    schema = _arrow_schema(spec)
    pieces: list[Any] = [schema.empty_table()]  # tables and futures of tables, in file order
    rows: list[dict[str, Any]] = []  # of small containers, converted `CONVERT_ROWS` at a time

    def convert() -> None:
        if rows:
            pieces.append(pa.Table.from_pylist(rows, schema=schema))
            rows.clear()

    with _NativeAvro(schema) as native:
        for path in files:
            day = path.parent.name.partition("=")[2]
            if path.stat().st_size >= native_from and _magic(path) == AVRO_MAGIC:
                convert()
                pieces.append(native.submit(path, day))
                continue
            for row in read_rows(path.read_bytes()):
                row[PARTITION_KEY] = day
                rows.append(row)
            if len(rows) >= CONVERT_ROWS:
                convert()
        convert()
        return pa.concat_tables([p if isinstance(p, pa.Table) else p.result() for p in pieces])


def _magic(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(4)


class _NativeAvro:
    """Avro containers read into Arrow by DataFusion, cast to the generated Arrow schema (`schema`).
    DataFusion takes a path as a URL that may hold glob patterns (`lake[12]` would match `lake1`):
    a path with a glob character is read through a symbolic link with a plain name instead."""

    THREADS = 4

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.ctx: Any = None
        self.pool: ThreadPoolExecutor | None = None
        self.folder: tempfile.TemporaryDirectory[str] | None = None
        self.links = 0

    def __enter__(self) -> _NativeAvro:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        if self.folder is not None:
            self.folder.cleanup()

    def submit(self, path: Path, day: str) -> Future[pa.Table]:
        if self.ctx is None:
            from datafusion import SessionContext

            self.ctx = SessionContext()
            self.pool = ThreadPoolExecutor(self.THREADS, thread_name_prefix="dmd-avro")
        assert self.pool is not None
        name = str(path.resolve())
        if any(c in name for c in _GLOB):
            if self.folder is None:
                self.folder = tempfile.TemporaryDirectory(prefix="dmd-query-")
            link = Path(self.folder.name) / f"{self.links}.avro"
            self.links += 1
            link.symlink_to(name)
            name = str(link)
            if any(c in name for c in _GLOB):
                raise RuntimeError(f"cannot read {path}: the temporary folder {self.folder.name} has a glob character")
        return self.pool.submit(self._read, name, day)

    def _read(self, name: str, day: str) -> pa.Table:
        import pyarrow as pa

        table = self.ctx.read_avro(name).to_arrow_table()
        columns = dict(zip(table.column_names, table.columns, strict=True))
        columns[PARTITION_KEY] = pa.array([day] * table.num_rows, pa.string())
        # a field the container lacks (written before it was added) is null, as in fastavro's rows
        nulls = {f.name: pa.nulls(table.num_rows, f.type) for f in self.schema if f.name not in columns}
        return pa.table({**columns, **nulls}).select(self.schema.names).cast(self.schema)


_GLOB = "*?[]{}"


def _type_source(
    con: duckdb.DuckDBPyConnection, lake: Path, prefix: str, type_name: str, spec: RecordSpec, native_avro_bytes: int
) -> str:
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
        con.register(relation, _read_arrow(converted, spec, native_avro_bytes))
        selects.append(f"SELECT {columns} FROM {_ident(relation)}")
    return "\nUNION ALL\n".join(selects)


def open_lake(
    root: Path,
    prefix: str = "archive",
    generated: ModuleType | None = None,
    native_avro_bytes: int = NATIVE_AVRO_BYTES,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with views `<table>`, `<type>_all`, `<type>_current` and `all_records`
    over the lake; `generated` is the generated package (dmd.generated unless a test's own). Avro
    containers of at least `native_avro_bytes` are read by DataFusion, smaller ones by fastavro."""
    import duckdb

    package = generated or importlib.import_module("dmd.generated")
    views = importlib.import_module(package.__name__ + ".views")

    con = duckdb.connect()
    with contextlib.suppress(duckdb.Error):  # without the ICU extension timestamps show in local time
        con.execute("SET TimeZone = 'UTC'")
    for table, spec in package.TABLES.items():
        source = _type_source(con, Path(root), prefix, table, spec, native_avro_bytes)
        con.execute(f"CREATE VIEW {_ident(table)} AS\n{source}")
    params = {"database": LOCAL_SCHEMA}
    for view, (_type_name, body) in (views.ALL_VIEWS | views.CURRENT_VIEWS).items():  # the former read by the latter
        con.execute(f"CREATE VIEW {_ident(view)} AS\n{render_sql(body, params)}")
    con.execute(f"CREATE VIEW {_ident(views.ALL_RECORDS_VIEW)} AS\n{render_sql(views.ALL_RECORDS_BODY, params)}")
    return con
