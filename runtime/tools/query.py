"""Query a local lake with DuckDB, through the same view definitions Athena uses.

`open_lake` registers, per record type, a view over every file the runtime wrote under
`{prefix}/{parquet,avro}/{type}/partition_date=YYYY-MM-DD/`, then the generated `<type>_current`
and `all_records` views (dmd.generated.views, rendered from the same templates as the Athena
DDL). Parquet is read directly with hive partitioning; Avro is read with fastavro into Arrow with
the generated Arrow schema (DuckDB's Avro extension would need a download). A type with no files
still gets an empty view, so every query runs on an empty or partial lake.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from dmd.generated import REGISTRY
from dmd.generated.views import ALL_RECORDS_BODY, ALL_RECORDS_VIEW, CURRENT_VIEWS, PARTITION_KEY

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


def _read_avro(files: list[Path], type_name: str) -> pa.Table:
    """Avro containers of one type as one Arrow table, `partition_date` taken from each file's folder."""
    import fastavro
    import pyarrow as pa

    schema = _arrow_schema(type_name)
    tables = [schema.empty_table()]
    for path in files:
        with path.open("rb") as f:
            rows = list(fastavro.reader(f))
        day = path.parent.name.partition("=")[2]
        for row in rows:
            row[PARTITION_KEY] = day
        tables.append(pa.Table.from_pylist(rows, schema=schema))
    return pa.concat_tables(tables)


def _type_source(con: duckdb.DuckDBPyConnection, lake: Path, type_name: str) -> str:
    """The SELECT that reads every archived version of one type, whatever the format."""
    columns = ", ".join(_ident(name) for name in _arrow_schema(type_name).names)
    selects = []
    parquet_dir = lake / "parquet" / type_name
    if any(parquet_dir.glob(f"{PARTITION_KEY}=*/*.parquet")):
        glob = _sql_string(str(parquet_dir / f"{PARTITION_KEY}=*" / "*.parquet"))
        selects.append(
            f"SELECT {columns} FROM read_parquet({glob}, hive_partitioning = true, "
            f"hive_types = {{{_sql_string(PARTITION_KEY)}: 'VARCHAR'}}, union_by_name = true)"
        )
    avro_files = sorted((lake / "avro" / type_name).glob(f"{PARTITION_KEY}=*/*.avro"))
    if avro_files or not selects:  # no file at all: an empty table of the right shape
        relation = f"_avro_{type_name}"
        con.register(relation, _read_avro(avro_files, type_name))
        selects.append(f"SELECT {columns} FROM {_ident(relation)}")
    return "\nUNION ALL\n".join(selects)


def open_lake(root: Path, prefix: str = "archive") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with views `<type>`, `<type>_current` and `all_records` over the lake."""
    import duckdb

    con = duckdb.connect()
    with contextlib.suppress(duckdb.Error):  # without the ICU extension timestamps show in local time
        con.execute("SET TimeZone = 'UTC'")
    lake = Path(root) / prefix
    for type_name in REGISTRY:
        con.execute(f"CREATE VIEW {_ident(type_name)} AS\n{_type_source(con, lake, type_name)}")
    params = {"database": LOCAL_SCHEMA}
    for view, (_type_name, body) in CURRENT_VIEWS.items():
        con.execute(f"CREATE VIEW {_ident(view)} AS\n{render_sql(body, params)}")
    con.execute(f"CREATE VIEW {_ident(ALL_RECORDS_VIEW)} AS\n{render_sql(ALL_RECORDS_BODY, params)}")
    return con
