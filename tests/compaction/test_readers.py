"""What readers see while a compaction runs: never a missing row; a row seen twice only while a
merge is between its merged put and its last source deletion; the `<type>_current` views the
same throughout."""

from __future__ import annotations

import threading
import time
from collections import Counter

import duckdb
from lakes import canonical, data_keys, write_lake

from dmd.generated import REGISTRY
from dmd.lake.compact import Options, compact
from dmd.lake.read import read_rows
from dmd.lake.storage import LocalStorage, StorageError
from dmd.tools.query import open_lake


class RemoteLike(LocalStorage):
    """A local lake with a network round trip's latency per request, as S3 has; with `reader`,
    the first delete waits until a reader has looked (the lake whole, the views) after the
    compaction began, so readers look mid-compaction however fast it is."""

    def __init__(self, root, reader: threading.Event | None = None) -> None:
        super().__init__(root)
        self.reader = reader

    def put_file(self, key, path, content_type):
        time.sleep(0.01)
        return super().put_file(key, path, content_type)

    def delete(self, key):
        time.sleep(0.01)
        if self.reader is not None:  # the first deletion only: readers then look mid-compaction
            self.reader.wait(timeout=30.0)
            self.reader = None
        return super().delete(key)


def snapshot(storage: LocalStorage) -> Counter[str] | None:
    """Every row of the lake as a reader listing it and then reading each object sees it; None
    if an object listed was deleted before it was read (a reader then lists again)."""
    rows: Counter[str] = Counter()
    for key in data_keys(storage):
        try:
            rows.update(canonical(r) for r in read_rows(storage.get(key)))
        except StorageError:
            return None
    return rows


def current(root) -> dict[str, list[str]] | None:
    try:
        con = open_lake(root)
        return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}_current").fetchall())) for t in sorted(REGISTRY)}
    except (duckdb.Error, OSError):  # a file listed by the view was deleted meanwhile
        return None


def test_readers_never_miss_a_row_and_current_views_hold_during_compaction(tmp_path):
    storage = LocalStorage(tmp_path)
    write_lake(storage, "parquet", 700, seed=17)
    before = snapshot(storage)
    assert before is not None
    views_before = current(tmp_path)
    done, looked = threading.Event(), threading.Event()
    result = {}

    def run() -> None:
        result["report"] = compact(RemoteLike(tmp_path, looked), Options(min_age=0, scan_all=True))
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    seen = views_checked = 0
    duplicated_snapshots = 0
    while not done.is_set():
        rows = snapshot(storage)
        if rows is not None:
            seen += 1
            assert set(rows) == set(before), "a row was missing (or appeared from nowhere) during compaction"
            duplicated_snapshots += sum(rows.values()) > len(rows)
        views = current(tmp_path)
        if views is not None:
            views_checked += 1
            assert views == views_before
        looked.set()
    thread.join()
    report = result["report"]
    assert report.ok and report.done
    assert seen >= 1 and seen + views_checked >= 2
    after = snapshot(storage)
    assert after == Counter(set(before))
    assert current(tmp_path) == views_before
    assert 0 < report.to_dict()["duplicate_window_max_seconds"] < report.seconds
