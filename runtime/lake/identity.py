"""Identity indexes: how a merge finds a retry's twin in an object it leaves alone without
reading that object.

A partial-batch retry can archive a change again after its first copy was merged into an
object of at least `LEFT_ALONE` of the target size, which no later merge takes as a source. To
drop such a retry, a merge needs the sequence numbers of the partition's big objects. Each big
object has an index in the compactor's state prefix (`layout.identity_key`): an 8-byte hash
(BLAKE2b) of each of its rows' `cdc.sequenceNumber`, ~1/16 of an Avro row's bytes. A merge
compares the hashes of the sequence numbers it kept with each index (Arrow's `is_in`); only an
object with a matching hash (rare: after a retry) is read, its identity columns only, and only
rows whose (sequence number, event id) equal one of that object's are dropped.

An index is a cache, never the truth: a hash only nominates an object to read, so a stale,
missing or colliding index can at worst miss a twin (left for the `_current` views, as before
indexes existed), never drop a row. It is trusted only for an object of the size it records; a
missing or stale one is rebuilt from the object (read once) and put. The compactor writes a
merged object's index after the merge's journal entry is `verified`, when the object is final.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from typing import Any

MAGIC = b"DMDIDS1\n"
CONTENT_TYPE = "application/octet-stream"
HASH_BYTES = 8
_HEADER = struct.Struct("<QQ")  # the indexed object's size in bytes, rows


def seq_hash(seq: str) -> bytes:
    """The 8-byte hash of a sequence number (stable across processes, unlike `hash`)."""
    return hashlib.blake2b(seq.encode("utf-8", "surrogatepass"), digest_size=HASH_BYTES).digest()


def hashes_of(seqs: Iterable[str]) -> bytes:
    return b"".join(map(seq_hash, seqs))


def encode(object_size: int, hashes: bytes) -> bytes:
    """An index of an object of `object_size` bytes whose rows' hashes are `hashes`."""
    return MAGIC + _HEADER.pack(object_size, len(hashes) // HASH_BYTES) + hashes


def decode(body: bytes, object_size: int) -> bytes | None:
    """The hashes of an index, or None if it is not one of an object of `object_size` bytes
    (stale: the object was replaced) or is damaged."""
    head = len(MAGIC) + _HEADER.size
    if len(body) < head or not body.startswith(MAGIC):
        return None
    size, rows = _HEADER.unpack_from(body, len(MAGIC))
    if size != object_size or len(body) != head + rows * HASH_BYTES:
        return None
    return body[head:]


def _uint64(hashes: bytes) -> Any:
    import pyarrow as pa

    return pa.Array.from_buffers(pa.uint64(), len(hashes) // HASH_BYTES, [None, pa.py_buffer(hashes)])


def common(index: bytes, hashes: bytes) -> frozenset[bytes]:
    """The hashes both in `index` and in `hashes` (an object's rows that may be twins of a
    merge's)."""
    import pyarrow.compute as pc

    if not index or not hashes:
        return frozenset()
    values = _uint64(index)
    found = values.filter(pc.is_in(values, value_set=_uint64(hashes)))
    return frozenset(v.to_bytes(HASH_BYTES, "little") for v in found.to_pylist())
