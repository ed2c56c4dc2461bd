"""Test doubles of the Storage protocol: an in-memory bucket (fast enough for thousands of
property-test examples) and a wrapper that fails chosen puts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from dmd.lake.storage import StorageError


class MemoryStorage:
    """A dict standing in for a bucket; thread-safe because the pipeline puts in parallel."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts: list[str] = []
        self.lock = threading.Lock()

    def put(self, key: str, body: bytes, content_type: str) -> str:
        with self.lock:
            self.objects[key] = bytes(body)
            self.puts.append(key)
        return f"mem://{key}"

    def get(self, key: str) -> bytes:
        try:
            return self.objects[key]
        except KeyError:
            raise StorageError(f"no such key {key}") from None

    def list(self, prefix: str) -> Iterator[str]:
        with self.lock:
            return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def delete(self, key: str) -> None:
        with self.lock:
            self.objects.pop(key, None)


class FailingStorage(MemoryStorage):
    """Fails `put` (and optionally `delete`) for the keys `fails(key)` selects."""

    def __init__(self, fails: Callable[[str], bool], fail_deletes: bool = False) -> None:
        super().__init__()
        self.fails = fails
        self.fail_deletes = fail_deletes

    def put(self, key: str, body: bytes, content_type: str) -> str:
        if self.fails(key):
            raise StorageError(f"injected failure writing {key}")
        return super().put(key, body, content_type)

    def delete(self, key: str) -> None:
        if self.fail_deletes and self.fails(key):
            raise StorageError(f"injected failure deleting {key}")
        super().delete(key)
