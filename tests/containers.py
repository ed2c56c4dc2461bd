"""Containers read and written by the formats' own libraries (fastavro, pyarrow), not by ours:
for tests that check what the lake holds and that add objects to it."""

from __future__ import annotations

import io


def rows_of(fmt: str, body: bytes) -> tuple[object, list[dict]]:
    """(writer schema, rows) of a container."""
    if fmt == "avro":
        import fastavro

        reader = fastavro.reader(io.BytesIO(body))
        return reader.writer_schema, list(reader)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(body))
    return table.schema, table.to_pylist()


def encoded(fmt: str, schema: object, rows: list[dict]) -> bytes:
    """A small container of `rows` in writer schema `schema`, as the stream writes them."""
    if fmt == "avro":
        import fastavro

        buf = io.BytesIO()
        fastavro.writer(buf, schema, rows, codec="deflate")
        return buf.getvalue()
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink, store_schema=False)  # small, as ours
    return sink.getvalue().to_pybytes()


def renumbered(rows: list[dict], tag: str) -> list[dict]:
    """New changes: the rows' values under sequence numbers and event ids no other row has."""
    return [
        {**row, "cdc": {**row["cdc"], "sequenceNumber": f"9{tag}{n:018d}", "eventId": f"{tag}-{n}"}}
        for n, row in enumerate(rows)
    ]
