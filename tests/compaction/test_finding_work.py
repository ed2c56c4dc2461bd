"""Finding work: each batch leaves one marker naming the partitions it wrote, before its data; a
run lists only the markers (and the partitions they name), consumes them once those partitions
are compacted, and stops within its budget leaving the rest for the next run."""

from __future__ import annotations

import importlib
import sys
from collections import Counter

import pytest
from lakes import SPREAD_RATE, rows_by_partition, write_lake

from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event
from dmd.ingest.pipeline import process_batch
from dmd.lake import layout
from dmd.lake.compact import Options, compact
from dmd.lake.state import read_touched
from dmd.lake.storage import LocalStorage, S3Storage, StorageError
from dmd.tools.sample import sample

STATE = layout.DEFAULT_STATE_PREFIX
MARKERS = layout.touched_prefix(STATE)
NOW = Options(min_age=0, marker_grace=0)


class Recording(LocalStorage):
    """Records the order of puts and every prefix listed; fails puts under `fail_prefix`."""

    def __init__(self, root, fail_prefix: str = "") -> None:
        super().__init__(root)
        self.puts: list[str] = []
        self.listed: list[str] = []
        self.fail_prefix = fail_prefix

    max_parallel_puts = 1

    def put(self, key, body, content_type):
        if self.fail_prefix and key.startswith(self.fail_prefix):
            raise StorageError(f"injected: {key}")
        self.puts.append(key)
        return super().put(key, body, content_type)

    def list(self, prefix):
        self.listed.append(prefix)
        return super().list(prefix)

    def list_info(self, prefix):
        self.listed.append(prefix)
        return super().list_info(prefix)


def batches(n: int, seed: int = 3):
    events, _ = sample(n, seed, batch_size=50, rate=SPREAD_RATE)
    return [decode_event(e) for e in events]


def test_each_batch_leaves_one_marker_before_its_data(tmp_path):
    storage = Recording(tmp_path)
    for batch in batches(300):
        storage.puts.clear()
        result = process_batch(batch, registry=REGISTRY, settings=Settings(format="avro"), storage=storage)
        markers = [k for k in storage.puts if k.startswith(MARKERS)]
        assert len(markers) == 1 and storage.puts[0] == markers[0]
        written = {(p.type_name, p.partition_date) for p in result.data}
        named = {(p.type_name, p.day) for p in read_touched(storage.get(markers[0]))}
        assert named == written
        assert {p.format for p in read_touched(storage.get(markers[0]))} == {"avro"}


def test_a_failed_marker_writes_no_data_and_reports_the_batch(tmp_path):
    storage = Recording(tmp_path, fail_prefix=MARKERS)
    batch = batches(100)[0]
    result = process_batch(batch, registry=REGISTRY, settings=Settings(), storage=storage)
    assert not result.data and result.failed
    assert not [k for k in storage.puts if k.startswith("archive/")]
    assert sorted(result.failed_sequence_numbers()) == sorted(
        s.sequence_number for f in result.failed for s in f.sources
    )
    assert result.failed_records + result.error_records == len(batch)


def test_no_marker_when_the_state_prefix_is_empty(tmp_path):
    storage = Recording(tmp_path)
    process_batch(batches(100)[0], registry=REGISTRY, settings=Settings(state_prefix=""), storage=storage)
    assert storage.puts and not [k for k in storage.puts if k.startswith(STATE)]


def test_a_run_compacts_only_the_touched_partitions_and_consumes_their_markers(tmp_path):
    storage = Recording(tmp_path)
    bs = batches(600, seed=8)
    half = len(bs) // 2
    for b in bs[:half]:  # written before markers existed: found only by --all
        process_batch(b, registry=REGISTRY, settings=Settings(state_prefix=""), storage=storage)
    for b in bs[half:]:
        process_batch(b, registry=REGISTRY, settings=Settings(), storage=storage)
    touched = set().union(*(read_touched(storage.get(k)) for k in storage.list(MARKERS)))
    before = rows_by_partition(storage)
    storage.listed.clear()

    report = compact(storage, NOW)

    assert not [p for p in storage.listed if p in ("", "archive/", "archive/avro/", "archive/parquet/")]
    assert report.partitions == len(touched)
    compacted = {m.partition for m in report.done}
    assert compacted and compacted <= touched
    assert not list(storage.list(MARKERS)), "every marker's partitions are done: all consumed"
    after = rows_by_partition(storage)
    for part, rows in before.items():
        assert after[part] == (Counter(set(rows)) if part in {_folder(p) for p in compacted} else rows)
    again = compact(storage, NOW)
    assert again.partitions == 0  # nothing touched since
    everything = compact(storage, Options(min_age=0, scan_all=True))
    assert everything.done  # the partitions written without markers


def _folder(p) -> str:
    return layout.partition_prefix("archive", p.format, p.type_name, p.day)


def test_young_markers_stay_and_a_budget_leaves_the_rest(tmp_path):
    storage = LocalStorage(tmp_path)
    write_lake(storage, "parquet", 400, seed=2, retries=0)
    markers = list(storage.list(MARKERS))
    report = compact(storage, Options(min_age=0))  # markers younger than the 15 min grace
    assert report.done and report.markers_consumed == 0 and list(storage.list(MARKERS)) == markers
    write_lake(storage, "avro", 400, seed=2, retries=0)
    stopped = compact(storage, Options(min_age=0, marker_grace=0, budget=0))
    assert stopped.deferred and not stopped.merges and list(storage.list(MARKERS))
    finished = compact(storage, Options(min_age=0, marker_grace=0))
    assert finished.done and not list(storage.list(MARKERS))


def test_lambda_handler_compacts_from_its_environment(s3, moto_server, monkeypatch):
    storage = S3Storage("dmd-test", endpoint_url=moto_server.url)
    write_lake(storage, "avro", 300, seed=6)
    before = rows_by_partition(storage)
    monkeypatch.setenv("DMD_BUCKET", "dmd-test")
    monkeypatch.setenv("DMD_S3_ENDPOINT", moto_server.url)
    monkeypatch.setenv("DMD_COMPACT_MIN_AGE_SECONDS", "0")
    sys.modules.pop("dmd.lake.compact_handler", None)
    handler = importlib.import_module("dmd.lake.compact_handler")
    report = handler.handler({"source": "aws.events"}, None)
    assert report["merges"] > 0 and not report["errors"] and not report["failed"]
    assert rows_by_partition(storage) == {p: Counter(set(r)) for p, r in before.items()}


@pytest.mark.parametrize(
    ("name", "value"),
    [("DMD_BUCKET", ""), ("DMD_COMPACT_TARGET_BYTES", "12"), ("DMD_STATE_PREFIX", "archive/x"), ("DMD_PREFIX", "../a")],
)
def test_lambda_handler_refuses_a_bad_setting_naming_it(monkeypatch, name, value):
    from dmd.lake.compact_handler import ConfigError, from_environment

    env = {"DMD_BUCKET": "dmd-test", name: value}
    with pytest.raises(ConfigError, match=name):
        from_environment(env)


def test_a_marker_is_consumed_while_its_partitions_keep_receiving_objects(tmp_path):
    """A partition written all day (today's demand) always holds objects younger than min-age; a
    marker is done once its own batch's objects were merge candidates and merged."""
    import os
    import time

    storage = LocalStorage(tmp_path)
    bs = batches(400, seed=11)
    for b in bs[:2]:
        process_batch(b, registry=REGISTRY, settings=Settings(), storage=storage)
    old_markers = set(storage.list(MARKERS))
    hour_ago = time.time() - 3600
    for key in storage.list(""):  # those batches ran an hour ago
        os.utime(tmp_path / key, (hour_ago, hour_ago))
    for b in bs[:2]:  # the same partitions written again now (a retry: the same changes)
        process_batch(b[len(b) // 2 :], registry=REGISTRY, settings=Settings(), storage=storage)
    young_markers = set(storage.list(MARKERS)) - old_markers
    before = rows_by_partition(storage)

    report = compact(storage, Options(min_age=600, marker_grace=600))

    assert report.done and not report.failed
    assert set(storage.list(MARKERS)) == young_markers, "the old markers consumed, the young ones kept"
    assert report.markers_consumed == len(old_markers)
    after = rows_by_partition(storage)
    assert sum(sum(c.values()) for c in after.values()) == sum(sum(c.values()) for c in before.values())
