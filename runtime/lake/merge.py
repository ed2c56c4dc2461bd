"""Merge data containers of one partition into one, streaming: each source is fetched, checked
for duplicates and appended to a local file; nothing holds more than one source (plus a few
for comparisons) and one output block or row group in memory.

Avro: the output has the sources' writer schema; a source block's data is never re-encoded:
its datum bytes are appended to the output block as they are (recompressed into larger blocks),
and a block big enough, in the target codec and without duplicates, is copied as it is. Only a
block holding a duplicate has its kept rows re-encoded. Parquet: written with settings for
large files (dictionaries and statistics on, row groups of up to `ROW_GROUP_ROWS` rows or
`ROW_GROUP_BYTES` of Arrow data), unlike the lean settings of the small files.

Duplicates: a row is dropped only if an earlier kept row of the same merge has the same
sequence number and is equal in every column (a partial-batch retry archives the same change
again, as an identical row); two different changes sharing a sequence number are both kept.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .formats import FINGERPRINT_KEY
from .read import parquet_fingerprint
from .storage import Storage

AVRO_BLOCK_BYTES = 1 << 20  # uncompressed datum bytes per output block
AVRO_COPY_BYTES = 256 << 10  # a source block at least this big is copied as it is
ROW_GROUP_ROWS = 1_000_000
ROW_GROUP_BYTES = 64 << 20  # Arrow bytes buffered per row group (the merge's main memory cost)
PREFETCH = 8  # sources fetched ahead (S3 GETs wait on the network) ...
PREFETCH_BYTES = 32 << 20  # ... as long as they hold at most this much together
CACHED_BYTES = 32 << 20  # recent sources' bodies kept to compare a later row with an earlier one
PARQUET_BATCH_ROWS = 65_536  # a source is read this many rows at a time


class MergeError(RuntimeError):
    """A merge that cannot be completed (a source unreadable, the output not as written)."""


@dataclass
class Merged:
    """What one merge wrote: its rows in order are the sources' kept rows in order."""

    rows: int = 0
    dropped: int = 0  # duplicates
    digest: str = ""  # sha256 over the kept rows' sequence numbers, in order
    consumed: list[str] = field(default_factory=list)  # the sources merged (only these may be deleted)
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (source, why it was left alone)
    bytes_in: int = 0


def sequence_digest(seqs: Iterator[str]) -> tuple[int, str]:
    h = hashlib.sha256()
    n = 0
    for s in seqs:
        h.update(s.encode("utf-8", "surrogatepass") + b"\n")
        n += 1
    return n, h.hexdigest()


class Dedupe:
    """Sequence numbers seen so far (by hash, ~100 bytes a row) and where their rows are; the
    earlier row is read again (`row_at`) only when a sequence number comes back."""

    def __init__(self, row_at: Callable[[int, int], Any]) -> None:
        self.row_at = row_at
        self.seen: dict[int, Any] = {}  # hash(seq) -> position or [positions]
        self.dropped = 0
        self.digest = hashlib.sha256()
        self.kept = 0

    def keep(self, seq: str, source: int, row: int, current: Callable[[], Any]) -> bool:
        h = hash(seq)
        position = (source << 32) | row
        prev = self.seen.get(h)
        if prev is None:
            self.seen[h] = position
        else:
            positions = prev if isinstance(prev, list) else [prev]
            value = current()
            if any(self.row_at(p >> 32, p & 0xFFFFFFFF) == value for p in positions):
                self.dropped += 1
                return False
            self.seen[h] = [*positions, position]
        self.digest.update(seq.encode("utf-8", "surrogatepass") + b"\n")
        self.kept += 1
        return True


def fetch_all(
    storage: Storage, keys: Sequence[str], sizes: Sequence[int], parallel: bool
) -> Iterator[tuple[int, str, bytes]]:
    """(index, key, body) of each source in order; when the store is remote, up to `PREFETCH`
    fetched ahead while they hold at most `PREFETCH_BYTES` together."""
    if not parallel:
        for i, key in enumerate(keys):
            yield i, key, storage.get(key)
        return
    with ThreadPoolExecutor(max_workers=PREFETCH, thread_name_prefix="dmd-get") as pool:
        pending: dict[int, Any] = {}
        ahead = 0  # bytes in flight
        nxt = 0
        for i, key in enumerate(keys):
            while nxt < len(keys) and len(pending) < PREFETCH and (not pending or ahead + sizes[nxt] <= PREFETCH_BYTES):
                pending[nxt] = pool.submit(storage.get, keys[nxt])
                ahead += sizes[nxt]
                nxt += 1
            body = pending.pop(i).result()
            ahead -= sizes[i]
            yield i, key, body


class _Sources:
    """Recent sources' bodies (at most `CACHED_BYTES`; older ones fetched again) and the rows of
    the last one decoded for a comparison."""

    def __init__(self, storage: Storage, keys: Sequence[str], decode: Callable[[bytes], list[Any]]) -> None:
        self.storage, self.keys, self.decode = storage, keys, decode
        self.bodies: OrderedDict[int, bytes] = OrderedDict()
        self.held = 0
        self.decoded: tuple[int, list[Any]] | None = None

    def put(self, index: int, body: bytes) -> None:
        self.bodies[index] = body
        self.held += len(body)
        while self.held > CACHED_BYTES and len(self.bodies) > 1:
            _, old = self.bodies.popitem(last=False)
            self.held -= len(old)

    def row(self, index: int, row: int) -> Any:
        if self.decoded is None or self.decoded[0] != index:
            body = self.bodies.get(index)
            if body is None:
                body = self.storage.get(self.keys[index])
            self.decoded = (index, self.decode(body))
        return self.decoded[1][row]


# --- Avro ------------------------------------------------------------------------------------------


def _read_long(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7


@dataclass
class _AvroBlock:
    raw: bytes  # as compressed in the source
    datums: bytes  # decompressed
    seqs: list[str]  # its rows' sequence numbers


@cache
def _projection(schema: bytes) -> Any:
    """A reader schema of only `cdc.sequenceNumber` for writer schema `schema` (fastavro then
    skips the other fields instead of building values: a third less CPU), or None."""
    import fastavro

    ws = json.loads(schema)
    cdc = next((f for f in ws.get("fields", ()) if f.get("name") == "cdc"), None)
    if cdc is None or not isinstance(cdc["type"], dict) or cdc["type"].get("type") != "record":
        return None
    inner = dict(cdc["type"], fields=[f for f in cdc["type"]["fields"] if f["name"] == "sequenceNumber"])
    if not inner["fields"]:
        return None
    projected = {k: v for k, v in ws.items() if k in ("type", "name", "namespace")}
    return fastavro.parse_schema(projected | {"fields": [{"name": "cdc", "type": inner}]})


def _avro_header(body: bytes) -> tuple[bytes, str, str | None, Iterator[_AvroBlock]]:
    """(writer schema as written, codec, schema fingerprint, its blocks one at a time)."""
    import fastavro

    meta = fastavro.block_reader(io.BytesIO(body)).metadata
    schema = meta["avro.schema"].encode()
    projection = _projection(schema)
    reader = fastavro.block_reader(io.BytesIO(body), reader_schema=projection)

    def blocks() -> Iterator[_AvroBlock]:
        view = memoryview(body)
        for block in reader:
            _, pos = _read_long(view, block.offset)  # count
            size, pos = _read_long(view, pos)
            yield _AvroBlock(body[pos : pos + size], block.bytes_.getvalue(), [_seq(r) for r in block])

    return schema, meta.get("avro.codec", "null"), meta.get(FINGERPRINT_KEY), blocks()


def _avro_rows(body: bytes) -> list[dict[str, Any]]:
    import fastavro

    return list(fastavro.reader(io.BytesIO(body)))


def _compress(codec: str, data: bytes) -> bytes:
    from dmd.support import avrowire

    if codec in avrowire.COMPRESSORS:
        return avrowire.COMPRESSORS[codec](data)
    if codec == "zstandard":
        import cramjam

        return bytes(cramjam.zstd.compress(data))
    raise MergeError(f"unknown Avro codec {codec!r}")


def _seq(row: dict[str, Any]) -> str:
    cdc = row.get("cdc")
    return (cdc.get("sequenceNumber") if isinstance(cdc, dict) else None) or ""


class _AvroWriter:
    def __init__(self, out: io.BufferedWriter, schema: bytes, codec: str, sync: bytes, fingerprint: str | None) -> None:
        from dmd.support import avrowire

        self.out, self.schema, self.codec, self.sync, self.fingerprint = out, schema, codec, sync, fingerprint
        out.write(avrowire.header(schema, codec, sync, _fingerprint_metadata(fingerprint)))
        self.buffer = bytearray()
        self.count = 0

    def _block(self, count: int, data: bytes) -> None:
        from dmd.support.avrowire import write_long

        head = bytearray()
        write_long(head, count)
        write_long(head, len(data))
        self.out.write(head)
        self.out.write(data)
        self.out.write(self.sync)

    def flush(self) -> None:
        if self.count:
            self._block(self.count, _compress(self.codec, bytes(self.buffer)))
            self.buffer.clear()
            self.count = 0

    def append(self, count: int, datums: bytes) -> None:
        self.buffer += datums
        self.count += count
        if len(self.buffer) >= AVRO_BLOCK_BYTES:
            self.flush()

    def copy(self, count: int, compressed: bytes) -> None:
        self.flush()
        self._block(count, compressed)


def merge_avro(
    storage: Storage,
    keys: Sequence[str],
    sizes: Sequence[int],
    out_path: Path,
    codec: str | None,
    sync: bytes,
    parallel: bool,
) -> Merged:
    import fastavro

    merged = Merged()
    sources = _Sources(storage, keys, _avro_rows)
    dedupe = Dedupe(sources.row)
    writer: _AvroWriter | None = None
    parsed: Any = None
    with out_path.open("wb") as out:
        for index, key, body in fetch_all(storage, keys, sizes, parallel):
            try:
                schema, src_codec, fingerprint, blocks = _avro_header(body)
            except Exception as e:  # not a container we can read: leave it where it is
                merged.excluded.append((key, f"unreadable Avro container: {e}"))
                continue
            if writer is None:
                writer = _AvroWriter(out, schema, codec or src_codec, sync, fingerprint)
                parsed = fastavro.parse_schema(json.loads(schema))
            elif schema != writer.schema or fingerprint != writer.fingerprint:  # blocks copied only between equals
                merged.excluded.append((key, "another writer schema"))
                continue
            sources.put(index, body)
            merged.consumed.append(key)
            merged.bytes_in += len(body)
            row = 0
            for block in blocks:
                first = row
                kept = [
                    i
                    for i, seq in enumerate(block.seqs)
                    if dedupe.keep(seq, index, first + i, lambda r=first + i, s=index: sources.row(s, r))
                ]
                row += len(block.seqs)
                if len(kept) == len(block.seqs):
                    if src_codec == writer.codec and len(block.datums) >= AVRO_COPY_BYTES:
                        writer.copy(len(kept), block.raw)
                    else:
                        writer.append(len(kept), block.datums)
                elif kept:  # a block holding a duplicate: its kept rows re-encoded
                    buf = io.BytesIO()
                    for i in kept:
                        fastavro.schemaless_writer(buf, parsed, sources.row(index, first + i))
                    writer.append(len(kept), buf.getvalue())
        if writer is not None:
            writer.flush()
    merged.rows, merged.dropped, merged.digest = dedupe.kept, dedupe.dropped, dedupe.digest.hexdigest()
    return merged


def verify_avro(path: Path) -> tuple[int, str]:
    import fastavro

    with path.open("rb") as f:
        projection = _projection(fastavro.reader(f).metadata["avro.schema"].encode())
    with path.open("rb") as f:
        return sequence_digest(_seq(r) for r in fastavro.reader(f, reader_schema=projection))


# --- Parquet ---------------------------------------------------------------------------------------


def _parquet_rows(body: bytes) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.ParquetFile(pa.BufferReader(body)).read().to_pylist()


def _parquet_seqs(table: Any) -> list[str]:
    import pyarrow.compute as pc

    if "cdc" not in table.schema.names:
        return [""] * table.num_rows
    try:
        return [s or "" for s in pc.struct_field(table.column("cdc"), "sequenceNumber").to_pylist()]
    except (KeyError, ValueError, TypeError):
        return [""] * table.num_rows


def _fingerprint_metadata(fingerprint: str | None) -> dict[str, str]:
    """The merged object records its sources' schema fingerprint (all sources share it)."""
    return {FINGERPRINT_KEY: fingerprint} if fingerprint else {}


def _row(batch: Any, i: int) -> dict[str, Any]:
    return batch.slice(i, 1).to_pylist()[0]


AvroWriter = _AvroWriter  # an Avro container written block by block; also dmd.lake.bigfile's


def parquet_writer(path: Path, schema: Any, codec: str | None) -> Any:
    """A Parquet writer with the settings for large files (also dmd.lake.bigfile's)."""
    import pyarrow.parquet as pq

    return pq.ParquetWriter(
        str(path),
        schema,
        compression=codec or "snappy",
        use_dictionary=True,
        write_statistics=True,
        store_schema=False,
    )


def merge_parquet(
    storage: Storage, keys: Sequence[str], sizes: Sequence[int], out_path: Path, codec: str | None, parallel: bool
) -> Merged:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .encode import arrow_memory

    arrow_memory()
    merged = Merged()
    sources = _Sources(storage, keys, _parquet_rows)
    dedupe = Dedupe(sources.row)
    writer: Any = None
    schema: Any = None
    fingerprint: str | None = None
    buffered: list[Any] = []
    buffered_rows = buffered_bytes = 0

    def flush() -> None:
        nonlocal buffered_rows, buffered_bytes
        if buffered:
            table = pa.Table.from_batches(buffered, schema=schema)
            writer.write_table(table, row_group_size=max(table.num_rows, 1))
            buffered.clear()
            buffered_rows = buffered_bytes = 0

    try:
        for index, key, body in fetch_all(storage, keys, sizes, parallel):
            try:
                source = pq.ParquetFile(pa.BufferReader(body))  # a third of read_table's cost
                source_schema = source.schema_arrow.remove_metadata()
                source_fingerprint = parquet_fingerprint(source)
            except Exception as e:
                merged.excluded.append((key, f"unreadable Parquet file: {e}"))
                continue
            if writer is None:
                schema, fingerprint = source_schema, source_fingerprint
                writer = parquet_writer(out_path, schema, codec)
            elif not source_schema.equals(schema, check_metadata=False) or source_fingerprint != fingerprint:
                merged.excluded.append((key, "another schema"))
                continue
            sources.put(index, body)
            merged.consumed.append(key)
            merged.bytes_in += len(body)
            row = 0
            for batch in source.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
                batch = pa.RecordBatch.from_arrays(batch.columns, schema=schema)
                first = row
                mask = [
                    dedupe.keep(s, index, first + i, lambda i=i, b=batch: _row(b, i))
                    for i, s in enumerate(_parquet_seqs(batch))
                ]
                row += batch.num_rows
                if not all(mask):
                    batch = batch.filter(pa.array(mask, pa.bool_()))
                if batch.num_rows:
                    buffered.append(batch)
                    buffered_rows += batch.num_rows
                    buffered_bytes += batch.nbytes
                    if buffered_rows >= ROW_GROUP_ROWS or buffered_bytes >= ROW_GROUP_BYTES:
                        flush()
        if writer is not None:
            flush()
            if fingerprint:
                writer.add_key_value_metadata(_fingerprint_metadata(fingerprint))
    finally:
        if writer is not None:
            writer.close()
    merged.rows, merged.dropped, merged.digest = dedupe.kept, dedupe.dropped, dedupe.digest.hexdigest()
    return merged


def verify_parquet(path: Path) -> tuple[int, str]:
    import pyarrow.parquet as pq

    f = pq.ParquetFile(str(path))
    columns = ["cdc"] if "cdc" in f.schema_arrow.names else f.schema_arrow.names[:1]

    def seqs() -> Iterator[str]:
        for batch in f.iter_batches(columns=columns, batch_size=PARQUET_BATCH_ROWS):
            yield from _parquet_seqs(batch)

    return sequence_digest(seqs())


def merge(
    fmt: str,
    storage: Storage,
    keys: Sequence[str],
    sizes: Sequence[int],
    out_path: Path,
    codec: str | None,
    sync: bytes,
    parallel: bool,
) -> Merged:
    """Merge `keys` (listed with `sizes`) into the file `out_path`."""
    if fmt == "avro":
        return merge_avro(storage, keys, sizes, out_path, codec, sync, parallel)
    return merge_parquet(storage, keys, sizes, out_path, codec, parallel)


def verify(fmt: str, path: Path) -> tuple[int, str]:
    """(rows, digest of their sequence numbers) of a merged object, read back."""
    return verify_avro(path) if fmt == "avro" else verify_parquet(path)
