"""Encode one group of records into one container: an Avro Object Container File (fastavro)
or a Parquet file (pyarrow). Each library is imported only by runs that use it. Callers go
through the format's row in `formats.FORMATS`."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from functools import cache
from types import MappingProxyType
from typing import Any

from dmd.support import avrowire
from dmd.support.records import RecordSpec

from .formats import FINGERPRINT_KEY


@cache
def _parsed_avro_schema(spec: RecordSpec) -> Any:
    import fastavro

    return fastavro.parse_schema(dict(spec.avro_schema))  # once per type per process


@cache
def _avro_schema_json(spec: RecordSpec) -> bytes:
    import orjson

    return orjson.dumps(spec.avro_schema)


@cache
def metadata(spec: RecordSpec) -> Mapping[str, str]:
    """What every container of `spec` records besides its schema: the schema's fingerprint, so
    any file can be traced to the generated version it was written with (generated/history)."""
    return MappingProxyType({FINGERPRINT_KEY: spec.fingerprint} if spec.fingerprint else {})


def encode_avro(spec: RecordSpec, records: Sequence[Any], codec: str) -> bytes:
    if spec.avro_write is not None and codec in avrowire.COMPRESSORS:
        # The generated writer and our container: no per-file schema dump, no per-value dispatch.
        return avrowire.container(_avro_schema_json(spec), codec, records, spec.avro_write, metadata(spec))
    return encode_avro_fastavro(spec, records, codec)


def encode_avro_fastavro(spec: RecordSpec, records: Sequence[Any], codec: str) -> bytes:
    import fastavro

    buf = io.BytesIO()
    to_avro = spec.to_avro
    # a copy: fastavro adds avro.schema and avro.codec to the dict it is given
    fastavro.writer(
        buf, _parsed_avro_schema(spec), [to_avro(r) for r in records], codec=codec, metadata=dict(metadata(spec))
    )
    return buf.getvalue()


# A small Parquet file is mostly fixed cost per column (~0.3 ms a file for our ~25 columns).
# Below this many rows, dictionary pages and column statistics only add to it: Athena gains
# little from min/max statistics or dictionary encoding on so few rows. Larger files keep both
# (statistics let Athena skip a file on a predicate; dictionaries shrink repeated values).
LEAN_ROWS = 1000


def write_parquet(table: Any, codec: str, key_values: Mapping[str, str] | None = None) -> bytes:
    """One Parquet file of `table`; `key_values` go into the file's key-value metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    lean = table.num_rows < LEAN_ROWS
    with pq.ParquetWriter(
        sink,
        table.schema,
        compression=codec,
        use_dictionary=not lean,
        write_statistics=not lean,
        store_schema=False,  # the ARROW:schema blob: only Arrow readers use it; the Parquet types say the same
    ) as writer:
        writer.write_table(table, row_group_size=max(table.num_rows, 1))  # one row group per container
        if key_values:  # store_schema=False drops the Arrow schema's metadata: written as the file's own
            writer.add_key_value_metadata(dict(key_values))
    return sink.getvalue().to_pybytes()


@cache
def arrow_memory() -> None:
    """Arrow allocates through the C library's malloc, unless ARROW_DEFAULT_MEMORY_POOL says
    otherwise (set once per process, before the first Parquet container).

    pyarrow's default pools (mimalloc, jemalloc) keep freed pages mapped for reuse: a
    10,000-record batch then peaks ~9 MB higher in RSS than with malloc, which also hands
    freed memory to Python's own allocations. Lambda bills memory, not allocator speed; the
    benchmark measures both (docs/benchmark.md).
    """
    import os
    import sys

    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    if "pyarrow" not in sys.modules:  # the usual case: Arrow C++ reads it when it first allocates
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"
        return
    import pyarrow as pa  # imported already (a test, a notebook): the rest of Arrow C++ keeps its pool

    pa.set_memory_pool(pa.system_memory_pool())


def encode_parquet(spec: RecordSpec, records: Sequence[Any], codec: str) -> bytes:
    arrow_memory()
    return write_parquet(spec.to_arrow(records), codec, metadata(spec))


def encode_parquet_groups(spec: RecordSpec, groups: Sequence[Sequence[Any]], codec: str) -> list[bytes]:
    """One Parquet file per group from ONE Arrow conversion of all their records: converting
    rows to Arrow has a fixed cost per call (~0.1 ms), and a batch spreads a type over dozens
    of partition dates. Each file is written from a zero-copy slice of the table and is byte
    for byte the file `encode_parquet` writes for its group alone (tested)."""
    arrow_memory()
    table = spec.to_arrow([r for group in groups for r in group])
    out = []
    offset = 0
    for group in groups:
        out.append(write_parquet(table.slice(offset, len(group)), codec, metadata(spec)))
        offset += len(group)
    return out


# By format name (formats.FORMATS): the encoder of one container, and of one container per
# group where a format gains from encoding a batch's groups together.
ENCODERS = {"avro": encode_avro, "parquet": encode_parquet}
GROUP_ENCODERS = {"parquet": encode_parquet_groups}


def encode(fmt: str, spec: RecordSpec, records: Sequence[Any], codec: str) -> bytes:
    return ENCODERS[fmt](spec, records, codec)


def encode_groups(fmt: str, spec: RecordSpec, groups: Sequence[Sequence[Any]], codec: str) -> list[bytes]:
    """One container per group of records of one type; raises if any group cannot be encoded."""
    if fmt in GROUP_ENCODERS:
        return GROUP_ENCODERS[fmt](spec, groups, codec)
    return [encode(fmt, spec, group, codec) for group in groups]
