"""Local storages that watch a run: one that stops it like `kill -9` at its n-th write or delete,
for the crash tests of every part that writes (compaction, backfill): a property over every stop
point; one that records what it reads, for tests of what a run need not read."""

from __future__ import annotations

from pathlib import Path

from dmd.lake.storage import LocalStorage


class Crash(BaseException):
    """Stops a run like a kill: no handler of the code under test catches a BaseException."""


class CrashingStorage(LocalStorage):
    """Raises Crash at the n-th write or delete (n counted from 1; 0: never, to count them)."""

    def __init__(self, root: Path, at: int) -> None:
        super().__init__(root)
        self.at, self.calls = at, 0

    def _step(self) -> None:
        self.calls += 1
        if self.calls == self.at:
            raise Crash(self.calls)

    def put(self, key, body, content_type):
        self._step()
        return super().put(key, body, content_type)

    def put_file(self, key, path, content_type):
        self._step()
        return super().put_file(key, path, content_type)

    def put_if_absent(self, key, body, content_type):
        self._step()
        return super().put_if_absent(key, body, content_type)

    def delete(self, key):
        self._step()
        return super().delete(key)


class ReadingStorage(LocalStorage):
    """Records the key of every read (`get`, `get_file`), in order."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.read: list[str] = []

    def get(self, key):
        self.read.append(key)
        return super().get(key)

    def get_file(self, key, path):
        self.read.append(key)
        return super().get_file(key, path)
