"""Read a data container back, whatever its format, with the format's own library (fastavro,
pyarrow): for `dmd query`'s formats DuckDB cannot read itself, and for tools that check or merge
containers. The format is told by the container's magic bytes, not by its name."""

from __future__ import annotations

import io
from typing import Any

from dmd.support import avrowire

AVRO_MAGIC = avrowire.MAGIC
PARQUET_MAGIC = b"PAR1"


def format_of(body: bytes) -> str:
    if body[:4] == AVRO_MAGIC:
        return "avro"
    if body[:4] == PARQUET_MAGIC and body[-4:] == PARQUET_MAGIC:
        return "parquet"
    raise ValueError("neither an Avro container nor a Parquet file")


def read_rows(body: bytes) -> list[dict[str, Any]]:
    """Every row of a container as a dict (Avro: fastavro's values; Parquet: pyarrow's)."""
    if format_of(body) == "avro":
        import fastavro

        return list(fastavro.reader(io.BytesIO(body)))
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(body)).to_pylist()


def fingerprint_of(body: bytes) -> str | None:
    """The fingerprint of the schema a container was written with (formats.FINGERPRINT_KEY), or
    None for a container written before containers recorded it."""
    from .formats import FINGERPRINT_KEY

    if format_of(body) == "avro":
        import fastavro

        return fastavro.reader(io.BytesIO(body)).metadata.get(FINGERPRINT_KEY)
    import pyarrow as pa
    import pyarrow.parquet as pq

    return parquet_fingerprint(pq.ParquetFile(pa.BufferReader(body)))


def parquet_fingerprint(file: Any) -> str | None:
    """The recorded fingerprint of an open pyarrow ParquetFile (its key-value metadata)."""
    from .formats import FINGERPRINT_KEY

    value = (file.metadata.metadata or {}).get(FINGERPRINT_KEY.encode())
    return value.decode() if value is not None else None
