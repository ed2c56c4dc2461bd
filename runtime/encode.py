"""Encode one group of records into one container: an Avro Object Container File (fastavro)
or a Parquet file (pyarrow). Each library is imported only by runs that use it."""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import cache
from typing import Any

from .records import RecordSpec

EXTENSIONS = {"avro": "avro", "parquet": "parquet"}
CONTENT_TYPES = {"avro": "avro/binary", "parquet": "application/vnd.apache.parquet"}


@cache
def _parsed_avro_schema(spec: RecordSpec) -> Any:
    import fastavro

    return fastavro.parse_schema(dict(spec.avro_schema))  # once per type per process


def encode_avro(spec: RecordSpec, records: Sequence[Any], codec: str) -> bytes:
    import fastavro

    buf = io.BytesIO()
    to_avro = spec.to_avro
    fastavro.writer(buf, _parsed_avro_schema(spec), [to_avro(r) for r in records], codec=codec)
    return buf.getvalue()


def encode_parquet(spec: RecordSpec, records: Sequence[Any], codec: str) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    # One row group per container; statistics kept for Athena's predicate pushdown.
    pq.write_table(spec.to_arrow(records), sink, compression=codec, row_group_size=max(len(records), 1))
    return sink.getvalue().to_pybytes()


ENCODERS = {"avro": encode_avro, "parquet": encode_parquet}


def encode(fmt: str, spec: RecordSpec, records: Sequence[Any], codec: str) -> bytes:
    return ENCODERS[fmt](spec, records, codec)
