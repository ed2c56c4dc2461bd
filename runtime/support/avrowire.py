"""Avro binary encoding for the generated per-type writers, and the Object Container File
around their output.

fastavro walks a parsed schema for every value (~1-2 µs each here); the generated writers know
each field's type and append its bytes directly, about five times faster. The container is the
standard one (magic, metadata map with `avro.schema` and `avro.codec`, sync marker, blocks), so
any Avro reader, Athena included, reads it; tests compare the datum bytes with fastavro's.
The same container read back as its layout (header, metadata, blocks; `read_container`) lets the
compactor copy and check blocks without decoding them.
"""

from __future__ import annotations

import binascii
import os
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, Inexact, Rounded
from functools import cache
from typing import Any

MAGIC = b"Obj\x01"
SYNC_SIZE = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MS = timedelta(milliseconds=1)
_US = timedelta(microseconds=1)
# Shifting a decimal(p<=38, s) by its scale is exact in this context; anything else traps.
_EXACT = Context(prec=80, traps=[Inexact, Rounded])


def write_long(out: bytearray, n: int) -> None:
    """Avro int/long: zigzag, then base-128 varint."""
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def write_bytes(out: bytearray, b: bytes) -> None:
    n = len(b)
    if n < 64:  # zigzag(n) fits one varint byte
        out.append(n << 1)
    else:
        write_long(out, n)
    out += b


def write_string(out: bytearray, s: str) -> None:
    b = s.encode()
    n = len(b)
    if n < 64:
        out.append(n << 1)
    else:
        write_long(out, n)
    out += b


def write_decimal(out: bytearray, v: Decimal, scale: int) -> None:
    """Avro decimal on bytes: the unscaled value, big-endian two's complement, shortest form."""
    n = int(v.scaleb(scale, context=_EXACT))
    write_bytes(out, n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True))


def write_millis(out: bytearray, t: datetime) -> None:
    """timestamp-millis: a long (zigzag varint), inlined: four or so per record."""
    n = (t - _EPOCH) // _MS
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def write_micros(out: bytearray, t: datetime) -> None:
    n = (t - _EPOCH) // _US
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def millis(t: datetime) -> int:
    return (t - _EPOCH) // _MS


def micros(t: datetime) -> int:
    return (t - _EPOCH) // _US


def days(d: date) -> int:
    return d.toordinal() - _EPOCH_ORDINAL


# --- the container -------------------------------------------------------------------------------


def _compress_null(data: bytes) -> bytes:
    return data


@cache
def _deflater() -> tuple[Callable[..., bytes], int]:
    """(compress, level): ISA-L (python-isal) at its default level when installed, else zlib's.

    Both write standard raw deflate streams (what the Avro `deflate` codec is, and what every
    reader inflates). On our containers ISA-L's level 2 gives output within 0.5% of zlib's
    level 6 for an eighth of the CPU; deflate was ~40% of encoding an Avro batch. (A smaller
    zlib window for small blocks was tried before: slower and larger on real blocks.)
    """
    try:
        from isal import isal_zlib
    except ImportError:  # no wheel for this platform: zlib, as fastavro uses
        return zlib.compress, -1
    return isal_zlib.compress, isal_zlib.ISAL_DEFAULT_COMPRESSION


def _compress_deflate(data: bytes) -> bytes:
    compress, level = _deflater()
    return compress(data, level, -15)


def _compress_snappy(data: bytes) -> bytes:
    import cramjam

    return bytes(cramjam.snappy.compress_raw(data)) + (binascii.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "null": _compress_null,
    "deflate": _compress_deflate,
    "snappy": _compress_snappy,
}


def header(schema_json: bytes, codec: str, sync: bytes, metadata: Mapping[str, str] | None = None) -> bytes:
    """The container's header: `avro.schema`, `avro.codec`, then `metadata` (names without the
    reserved `avro.` prefix, values as UTF-8 bytes, as fastavro's `metadata=` writes them)."""
    entries = [(b"avro.schema", schema_json), (b"avro.codec", codec.encode())]
    entries += [(k.encode(), v.encode()) for k, v in (metadata or {}).items()]
    out = bytearray(MAGIC)
    write_long(out, len(entries))
    for key, value in entries:
        write_bytes(out, key)
        write_bytes(out, value)
    write_long(out, 0)
    out += sync
    return bytes(out)


def container(
    schema_json: bytes,
    codec: str,
    records: Iterable[Any],
    write: Callable[[Any, bytearray], None],
    metadata: Mapping[str, str] | None = None,
) -> bytes:
    """One Object Container File holding `records` in one block."""
    sync = os.urandom(SYNC_SIZE)
    block = bytearray()
    count = 0
    for r in records:
        write(r, block)
        count += 1
    out = bytearray(header(schema_json, codec, sync, metadata))
    if count:
        data = COMPRESSORS[codec](bytes(block))
        write_long(out, count)
        write_long(out, len(data))
        out += data
        out += sync
    return bytes(out)


# --- reading a container: its layout, without decoding its data ---------------------------------


def read_long(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """An Avro int/long at `pos`: (its value, the position after it)."""
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7


@dataclass
class Container:
    schema: bytes  # as written
    codec: str
    metadata: dict[bytes, bytes]  # the header's whole metadata map
    blocks: list[tuple[int, int, int]]  # (count, start, end) of each block's data in the body


def read_container(body: bytes) -> Container:
    """The header and block layout of an Object Container File, checked (magic, metadata, each
    block's sync marker); its data is neither decompressed nor decoded. (fastavro would parse the
    writer schema too: most of the cost of compacting files of a few rows, dmd.lake.merge.)"""
    if body[:4] != MAGIC:
        raise ValueError("not an Avro Object Container File")
    view = memoryview(body)
    meta: dict[bytes, bytes] = {}
    pos = 4
    while True:
        n, pos = read_long(view, pos)
        if n == 0:
            break
        if n < 0:  # a map block with its byte size
            n = -n
            _, pos = read_long(view, pos)
        for _ in range(n):
            k, pos = read_long(view, pos)
            key = body[pos : pos + k]
            v, pos = read_long(view, pos + k)
            meta[key] = body[pos : pos + v]
            pos += v
    sync = body[pos : pos + SYNC_SIZE]
    pos += SYNC_SIZE
    if b"avro.schema" not in meta or len(sync) != SYNC_SIZE:
        raise ValueError("no writer schema in the header")
    blocks = []
    while pos < len(body):
        count, pos = read_long(view, pos)
        size, pos = read_long(view, pos)
        end = pos + size
        if count < 0 or size < 0 or body[end : end + SYNC_SIZE] != sync:
            raise ValueError(f"block at byte {pos} is damaged (its sync marker does not match)")
        blocks.append((count, pos, end))
        pos = end + SYNC_SIZE
    return Container(meta[b"avro.schema"], meta.get(b"avro.codec", b"null").decode(), meta, blocks)


def decompress(codec: str, data: bytes) -> bytes:
    """A block's data as the Avro specification's codecs compress it."""
    if codec == "null":
        return data
    if codec == "deflate":
        try:
            from isal import isal_zlib as zlib  # ISA-L: a third of zlib's CPU
        except ImportError:
            import zlib
        return zlib.decompress(data, -15)
    import cramjam

    if codec == "snappy":  # then a CRC-32 of the uncompressed data, big-endian
        out = bytes(cramjam.snappy.decompress_raw(data[:-4]))
        if binascii.crc32(out).to_bytes(4, "big") != data[-4:]:
            raise ValueError("snappy block fails its CRC check")
        return out
    if codec == "zstandard":
        return bytes(cramjam.zstd.decompress(data))
    raise ValueError(f"unknown Avro codec {codec!r}")
