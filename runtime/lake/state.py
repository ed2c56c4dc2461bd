"""The compactor's state under its own prefix (dmd.lake.layout names every key): touched-partition
markers the writer leaves, journal entries of open merges, and partition leases.

Leases. Locally a partition's lease is an fcntl lock on a file: the kernel releases it when its
holder exits, killed or not. On S3 it is a numbered object created with a conditional write
(`If-None-Match: *`): of two compactors putting the same generation exactly one succeeds. A
lease expires (`expires`, wall-clock seconds) so a killed holder blocks its partition only until
then; taking over an expired lease is creating the next generation, which again only one can.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from . import layout
from .storage import Storage, StorageError

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Partition:
    format: str
    type_name: str
    day: date

    def to_json(self) -> list[str]:
        return [self.format, self.type_name, self.day.isoformat()]

    @classmethod
    def from_json(cls, value: Any) -> Partition:
        fmt, type_name, day = value
        return cls(str(fmt), str(type_name), date.fromisoformat(day))

    def __str__(self) -> str:
        return f"{self.format}/{self.type_name}/{self.day.isoformat()}"


def touched_body(partitions: set[Partition]) -> bytes:
    return json.dumps({"partitions": sorted(p.to_json() for p in partitions)}, separators=(",", ":")).encode()


def read_touched(body: bytes) -> set[Partition]:
    return {Partition.from_json(p) for p in json.loads(body)["partitions"]}


# --- journal ---------------------------------------------------------------------------------------

PLANNED = "planned"  # sources -> target decided; the target may be partly or wholly written, never verified
VERIFIED = "verified"  # the target was read back complete: only the sources' deletion may be left


@dataclass(frozen=True)
class JournalEntry:
    state: str
    target: str
    sources: tuple[str, ...]
    rows: int = 0
    digest: str = ""
    dropped: int = 0

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "state": self.state,
                "target": self.target,
                "sources": list(self.sources),
                "rows": self.rows,
                "digest": self.digest,
                "dropped": self.dropped,
            },
            indent=1,
        ).encode()

    @classmethod
    def from_json(cls, body: bytes) -> JournalEntry:
        d = json.loads(body)
        return cls(d["state"], d["target"], tuple(d["sources"]), d["rows"], d["digest"], d.get("dropped", 0))


# --- leases ----------------------------------------------------------------------------------------


def owner_id() -> str:
    import socket
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """Held until `release()`; `valid()` says whether it still is by its holder's clock."""

    def __init__(self, release: Any, expires: float | None) -> None:
        self._release = release
        self.expires = expires

    def valid(self, margin: float = 0) -> bool:
        return self.expires is None or time.time() + margin < self.expires

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None


def acquire(storage: Storage, state_prefix: str, p: Partition, owner: str, seconds: float) -> Lease | None:
    """The partition's lease, or None if another compactor holds it."""
    lock = getattr(storage, "lock", None)
    if lock is not None:  # a local lake
        f = lock(layout.lock_key(state_prefix, p.format, p.type_name, p.day))
        return None if f is None else Lease(f.release, None)
    return _acquire_s3(storage, state_prefix, p, owner, seconds)


def _acquire_s3(storage: Any, state_prefix: str, p: Partition, owner: str, seconds: float) -> Lease | None:
    folder = layout.lease_prefix(state_prefix, p.format, p.type_name, p.day)
    held = sorted((g, k) for k in storage.list(folder) if (g := layout.lease_generation(k)) is not None)
    generation = 1
    if held:
        latest, key = held[-1]
        try:
            doc = json.loads(storage.get(key))
        except (StorageError, ValueError):
            return None  # released or replaced while we looked: busy for this run
        if doc.get("expires", 0) > time.time():
            return None
        generation = latest + 1
    key = layout.lease_key(state_prefix, p.format, p.type_name, p.day, generation)
    expires = time.time() + seconds
    body = json.dumps({"owner": owner, "expires": expires}).encode()
    if not storage.put_if_absent(key, body, JSON):
        # a retried put whose first attempt succeeded answers 412 too: is it ours?
        try:
            if json.loads(storage.get(key)).get("owner") != owner:
                return None
        except (StorageError, ValueError):
            return None
    for _, old in held:  # expired generations: ours supersedes them
        storage.delete(old)
    return Lease(lambda: storage.delete(key), expires)
