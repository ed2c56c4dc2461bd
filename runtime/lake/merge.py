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
A row whose change (`cdc.sequenceNumber` and `cdc.eventId`) is already in an object the merge
leaves alone (`settled`, from `identities`) is dropped too: dmd.lake.compact finds those.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from dmd.support import avrowire

from .formats import FINGERPRINT_KEY
from .identity import hashes_of
from .read import parquet_fingerprint
from .storage import Storage

AVRO_BLOCK_BYTES = 1 << 20  # uncompressed datum bytes per output block
AVRO_COPY_BYTES = 256 << 10  # a source block at least this big is copied as it is
AVRO_DECODE_BYTES = 4 << 20  # decompressed source blocks whose rows are decoded in one pass
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
    hashes: bytes = b""  # identity.seq_hash of each kept row's sequence number, in order


Identity = tuple[str, str]  # a change: (cdc.sequenceNumber, cdc.eventId)


def identity(row: dict[str, Any]) -> Identity:
    cdc = row.get("cdc")
    if not isinstance(cdc, dict):
        return ("", "")
    return (cdc.get("sequenceNumber") or "", cdc.get("eventId") or "")


def digest_update(h: Any, seqs: Sequence[str]) -> None:
    """Add sequence numbers to a digest: each followed by a newline, in order."""
    if seqs:
        h.update(("\n".join(seqs) + "\n").encode("utf-8", "surrogatepass"))


def sequence_digest(chunks: Iterable[Sequence[str]]) -> tuple[int, str]:
    """(rows, sha256 of their sequence numbers in order), from the sequence numbers in chunks."""
    h = hashlib.sha256()
    n = 0
    for seqs in chunks:
        digest_update(h, seqs)
        n += len(seqs)
    return n, h.hexdigest()


class Dedupe:
    """Sequence numbers seen so far (by hash, ~100 bytes a row) and where their rows are; the
    earlier row is read again (`row_at`) only when a sequence number comes back."""

    def __init__(self, row_at: Callable[[int, int], Any], settled: frozenset[Identity] = frozenset()) -> None:
        self.row_at = row_at
        self.settled = settled  # changes already in objects left alone: rows of theirs are dropped
        self.settled_seqs = {seq for seq, _ in settled}
        self.seen: dict[int, Any] = {}  # hash(seq) -> position or [positions]
        self.dropped = 0
        self.digest = hashlib.sha256()
        self.hashes = bytearray()  # of the kept rows: the merged object's identity index
        self.kept = 0

    def keep_all(self, seqs: Sequence[str], source: int, first: int, row: Callable[[int], Any]) -> list[int] | None:
        """Which of rows `first`, `first + 1`, ... of source `source` (sequence numbers `seqs`) to
        keep: None for all of them, else their indices in `seqs`. `row(n)` reads row `n` of the
        source, for a comparison."""
        seen = self.seen
        base = (source << 32) | first
        dropped: list[int] = []
        for i, seq in enumerate(seqs):
            if seq in self.settled_seqs and identity(row(first + i)) in self.settled:
                dropped.append(i)
                continue
            h = hash(seq)
            prev = seen.get(h)
            if prev is None:
                seen[h] = base + i
                continue
            positions = prev if isinstance(prev, list) else [prev]
            value = row(first + i)
            if any(self.row_at(p >> 32, p & 0xFFFFFFFF) == value for p in positions):
                dropped.append(i)
            else:
                seen[h] = [*positions, base + i]
        kept = None
        if dropped:
            gone = set(dropped)
            kept = [i for i in range(len(seqs)) if i not in gone]
            seqs = [seqs[i] for i in kept]
            self.dropped += len(dropped)
        digest_update(self.digest, seqs)
        self.hashes += hashes_of(seqs)
        self.kept += len(seqs)
        return kept


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


# --- Avro ---------------------------------------------------------------------------------------


@dataclass
class _AvroBlock:
    source: int
    first: int  # its first row's position in the source
    count: int
    raw: bytes  # as compressed in the source
    datums: bytes = b""  # decompressed
    seqs: list[str] = field(default_factory=list)  # its rows' sequence numbers


@cache
def _projection(schema: bytes, fields: tuple[str, ...] = ("sequenceNumber",)) -> Any:
    """A reader schema of only `cdc.sequenceNumber` (or the other `cdc` fields `fields`) for
    writer schema `schema` (fastavro then skips the other fields instead of building values:
    a third less CPU), or None."""
    import fastavro

    ws = json.loads(schema)
    cdc = next((f for f in ws.get("fields", ()) if f.get("name") == "cdc"), None)
    if cdc is None or not isinstance(cdc["type"], dict) or cdc["type"].get("type") != "record":
        return None
    inner = dict(cdc["type"], fields=[f for f in cdc["type"]["fields"] if f["name"] in fields])
    if not inner["fields"]:
        return None
    projected = {k: v for k, v in ws.items() if k in ("type", "name", "namespace")}
    return fastavro.parse_schema(projected | {"fields": [{"name": "cdc", "type": inner}]})


def _avro_seqs(schema: bytes, blocks: Sequence[_AvroBlock]) -> None:
    """Fill each block's `seqs`: one fastavro pass over the blocks of many sources (a container
    of their decompressed data, block boundaries kept), reading only `cdc.sequenceNumber`."""
    import fastavro

    sync = bytes(avrowire.SYNC_SIZE)
    buf = bytearray(avrowire.header(schema, "null", sync))
    for block in blocks:
        avrowire.write_long(buf, block.count)
        avrowire.write_long(buf, len(block.datums))
        buf += block.datums
        buf += sync
    try:
        seqs = [_seq(r) for r in fastavro.reader(io.BytesIO(buf), reader_schema=_projection(schema))]
    except Exception as e:  # damaged data in a source: nothing is merged, nothing deleted
        raise MergeError(f"cannot decode the sources' rows: {e}") from e
    at = 0
    for block in blocks:
        block.seqs = seqs[at : at + block.count]
        at += block.count
    if at != len(seqs):
        raise MergeError(f"the sources' blocks hold {len(seqs)} rows, their headers say {at}")


def _avro_rows(body: bytes) -> list[dict[str, Any]]:
    import fastavro

    return list(fastavro.reader(io.BytesIO(body)))


def _compress(codec: str, data: bytes) -> bytes:
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
    settled: frozenset[Identity] = frozenset(),
) -> Merged:
    import fastavro

    merged = Merged()
    sources = _Sources(storage, keys, _avro_rows)
    dedupe = Dedupe(sources.row, settled)
    writer: _AvroWriter | None = None
    codecs: dict[int, str] = {}  # of the sources with blocks pending
    pending: list[_AvroBlock] = []  # blocks whose rows are decoded together
    pending_bytes = 0

    def write_pending() -> None:
        nonlocal pending_bytes
        assert writer is not None
        _avro_seqs(writer.schema, pending)
        for block in pending:
            kept = dedupe.keep_all(block.seqs, block.source, block.first, lambda i, b=block: sources.row(b.source, i))
            if kept is None:
                if codecs[block.source] == writer.codec and len(block.datums) >= AVRO_COPY_BYTES:
                    writer.copy(block.count, block.raw)
                else:
                    writer.append(block.count, block.datums)
            elif kept:  # a block holding a duplicate: its kept rows re-encoded
                buf = io.BytesIO()
                for i in kept:
                    fastavro.schemaless_writer(buf, parsed_schema(writer.schema), sources.row(block.source, i))
                writer.append(len(kept), buf.getvalue())
        pending.clear()
        pending_bytes = 0

    with out_path.open("wb") as out:
        for index, key, body in fetch_all(storage, keys, sizes, parallel):
            try:
                container = avrowire.read_container(body)
            except Exception as e:  # not a container we can read: leave it where it is
                merged.excluded.append((key, f"unreadable Avro container: {e}"))
                continue
            if writer is None:
                writer = _AvroWriter(out, container.schema, codec or container.codec, sync, _fingerprint(container))
            elif container.schema != writer.schema or _fingerprint(container) != writer.fingerprint:
                # blocks are copied only between containers of one schema and fingerprint
                merged.excluded.append((key, "another writer schema"))
                continue
            sources.put(index, body)
            merged.consumed.append(key)
            merged.bytes_in += len(body)
            codecs[index] = container.codec
            row = 0
            for count, start, end in container.blocks:
                raw = body[start:end]
                try:
                    datums = avrowire.decompress(container.codec, raw)
                except Exception as e:
                    raise MergeError(f"{key}: cannot decompress a block: {e}") from e
                pending.append(_AvroBlock(index, row, count, raw, datums))
                pending_bytes += len(datums)
                row += count
                if pending_bytes >= AVRO_DECODE_BYTES:
                    write_pending()
        if pending:
            write_pending()
        if writer is not None:
            writer.flush()
    merged.rows, merged.dropped, merged.digest = dedupe.kept, dedupe.dropped, dedupe.digest.hexdigest()
    merged.hashes = bytes(dedupe.hashes)
    return merged


@cache
def parsed_schema(schema: bytes) -> Any:
    import fastavro

    return fastavro.parse_schema(json.loads(schema))


def verify_avro(path: Path) -> tuple[int, str]:
    import fastavro

    with path.open("rb") as f:
        projection = _projection(fastavro.reader(f).metadata["avro.schema"].encode())
    with path.open("rb") as f:
        return sequence_digest([_seq(r) for r in block] for block in fastavro.block_reader(f, reader_schema=projection))


def avro_identities(path: Path) -> Iterator[list[Identity]]:
    """The changes in an Avro container, a block at a time, decoding only their identity."""
    import fastavro

    with path.open("rb") as f:
        projection = _projection(fastavro.reader(f).metadata["avro.schema"].encode(), ("sequenceNumber", "eventId"))
    with path.open("rb") as f:
        for block in fastavro.block_reader(f, reader_schema=projection):
            yield [identity(r) for r in block]


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
        seqs = pc.struct_field(table.column("cdc"), "sequenceNumber").to_pylist()
    except (KeyError, ValueError, TypeError):
        return [""] * table.num_rows
    return [s or "" for s in seqs] if None in seqs else seqs


def _fingerprint(container: avrowire.Container) -> str | None:
    """The schema fingerprint an Avro source recorded (None: written before containers did)."""
    value = container.metadata.get(FINGERPRINT_KEY.encode())
    return value.decode() if value is not None else None


def _fingerprint_metadata(fingerprint: str | None) -> dict[str, str]:
    """The merged object records its sources' schema fingerprint (all sources share it)."""
    return {FINGERPRINT_KEY: fingerprint} if fingerprint else {}


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


def _row(batch: Any, i: int) -> dict[str, Any]:
    return batch.slice(i, 1).to_pylist()[0]


def _parquet_tables(source: Any) -> Iterator[Any]:
    """A source as Arrow tables: whole if small (one read, the cheapest for a file of a few
    rows), else in batches of `PARQUET_BATCH_ROWS`."""
    import pyarrow as pa

    if source.metadata.num_rows <= PARQUET_BATCH_ROWS:
        yield source.read(use_threads=False)
    else:
        for batch in source.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
            yield pa.Table.from_batches([batch])


def merge_parquet(
    storage: Storage,
    keys: Sequence[str],
    sizes: Sequence[int],
    out_path: Path,
    codec: str | None,
    sync: bytes,
    parallel: bool,
    settled: frozenset[Identity] = frozenset(),
) -> Merged:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .encode import arrow_memory

    arrow_memory()
    merged = Merged()
    sources = _Sources(storage, keys, _parquet_rows)
    dedupe = Dedupe(sources.row, settled)
    writer: Any = None
    schema: Any = None
    fingerprint: str | None = None
    pending: list[tuple[int, int, Any]] = []  # (source, its first row, table): deduplicated together
    pending_rows = 0
    buffered: list[Any] = []  # the next row group
    buffered_rows = buffered_bytes = 0

    def flush() -> None:
        nonlocal buffered_rows, buffered_bytes
        if buffered:
            table = pa.concat_tables(buffered)  # chunks of up to PARQUET_BATCH_ROWS rows each
            writer.write_table(table, row_group_size=max(table.num_rows, 1))
            buffered.clear()
            buffered_rows = buffered_bytes = 0

    def dedupe_pending() -> None:
        """The pending tables' kept rows into the row group, as one chunk: their sequence numbers
        read in one go (per-source tables of a few rows each cost the writer and every call)."""
        nonlocal pending_rows, buffered_rows, buffered_bytes
        table = pa.concat_tables([t for _, _, t in pending]).combine_chunks()
        seqs = _parquet_seqs(table)
        keep: list[int] | None = None  # None: every row
        at = 0
        for source, first, t in pending:
            n = t.num_rows
            kept = dedupe.keep_all(seqs[at : at + n], source, first, lambda r, t=t, f=first: _row(t, r - f))
            if kept is not None and keep is None:
                keep = list(range(at))
            if keep is not None:
                keep += range(at, at + n) if kept is None else [at + i for i in kept]
            at += n
        pending.clear()
        pending_rows = 0
        if keep is not None:
            table = table.take(pa.array(keep, pa.int64()))
        if table.num_rows:
            buffered.append(table)
            buffered_rows += table.num_rows
            buffered_bytes += table.get_total_buffer_size()  # one chunk: nbytes would walk every offset
            if buffered_rows >= ROW_GROUP_ROWS or buffered_bytes >= ROW_GROUP_BYTES:
                flush()

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
            for table in _parquet_tables(source):
                pending.append((index, row, table))
                row += table.num_rows
                pending_rows += table.num_rows
                if pending_rows >= PARQUET_BATCH_ROWS:
                    dedupe_pending()
        if pending:
            dedupe_pending()
        if writer is not None:
            flush()
            if fingerprint:
                writer.add_key_value_metadata(_fingerprint_metadata(fingerprint))
    finally:
        if writer is not None:
            writer.close()
    merged.rows, merged.dropped, merged.digest = dedupe.kept, dedupe.dropped, dedupe.digest.hexdigest()
    merged.hashes = bytes(dedupe.hashes)
    return merged


def verify_parquet(path: Path) -> tuple[int, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = pq.ParquetFile(str(path))
    schema = f.schema_arrow
    cdc = schema.field("cdc").type if "cdc" in schema.names else None
    if isinstance(cdc, pa.StructType) and cdc.get_field_index("sequenceNumber") >= 0:
        columns = ["cdc.sequenceNumber"]  # only that leaf column is read
    else:
        columns = schema.names[:1]
    return sequence_digest(_parquet_seqs(b) for b in f.iter_batches(columns=columns, batch_size=PARQUET_BATCH_ROWS))


def parquet_identities(path: Path) -> Iterator[list[Identity]]:
    """The changes in a Parquet file, a batch at a time, reading only their identity columns."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    f = pq.ParquetFile(str(path))
    cdc = f.schema_arrow.field("cdc").type if "cdc" in f.schema_arrow.names else None
    if not isinstance(cdc, pa.StructType) or cdc.get_field_index("sequenceNumber") < 0:
        return
    names = [n for n in ("sequenceNumber", "eventId") if cdc.get_field_index(n) >= 0]
    for batch in f.iter_batches(columns=[f"cdc.{n}" for n in names], batch_size=PARQUET_BATCH_ROWS):
        column = batch.column("cdc")
        values = [pc.struct_field(column, n).to_pylist() for n in names]
        eids = values[1] if len(values) > 1 else [""] * batch.num_rows
        yield [(s or "", e or "") for s, e in zip(values[0], eids, strict=True)]


@dataclass(frozen=True)
class Merger:
    """How one format's containers are merged and a merged one read back; a format's row in
    `dmd.lake.formats` names its Merger here (`LakeFormat.merger`)."""

    # (storage, keys, sizes, out_path, codec, sync, parallel, settled) -> Merged
    merge: Callable[..., Merged]
    verify: Callable[[Path], tuple[int, str]]  # (rows, digest of their sequence numbers in order)
    identities: Callable[[Path], Iterator[list[Identity]]]  # the changes in a container, in chunks


AVRO_MERGER = Merger(merge_avro, verify_avro, avro_identities)
PARQUET_MERGER = Merger(merge_parquet, verify_parquet, parquet_identities)


def _merger(fmt: str) -> Merger:
    from .formats import FORMATS

    return FORMATS[fmt].merger()


def merge(
    fmt: str,
    storage: Storage,
    keys: Sequence[str],
    sizes: Sequence[int],
    out_path: Path,
    codec: str | None,
    sync: bytes,
    parallel: bool,
    settled: frozenset[Identity] = frozenset(),
) -> Merged:
    """Merge `keys` (listed with `sizes`) into the file `out_path`, dropping rows of the
    changes in `settled`."""
    return _merger(fmt).merge(storage, keys, sizes, out_path, codec, sync, parallel, settled)


def verify(fmt: str, path: Path) -> tuple[int, str]:
    """(rows, digest of their sequence numbers in order) of a merged object, read back."""
    return _merger(fmt).verify(path)


def identities(fmt: str, path: Path) -> Iterator[list[Identity]]:
    """The changes (sequence number, event id) in a container of format `fmt`, in chunks."""
    return _merger(fmt).identities(path)
