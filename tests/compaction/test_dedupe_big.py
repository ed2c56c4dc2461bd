"""A retry archived after its twin was merged into an object big enough to be left alone: the
next compaction drops it (counted) and leaves the big object as it is, byte for byte."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from containers import encoded, renumbered, rows_of
from crashing import Crash, CrashingStorage, ReadingStorage
from lakes import data_keys, rows_by_partition, write_lake

from dmd.lake import identity, layout
from dmd.lake.compact import LEFT_ALONE, Options, compact
from dmd.lake.compact_metrics import run_metrics
from dmd.lake.storage import LocalStorage, S3Policy, S3Storage
from dmd.tools.sample import DEFAULT_RATE


def _key(folder: str, stamp: str, fmt: str) -> str:
    """A data object's key in partition `folder`, arrived at `stamp`."""
    return f"{folder}{stamp}-00000001-0000-0000-0000-000000000000.{fmt}"


def _put(storage, folder: str, stamp: str, fmt: str, schema, rows: list[dict]) -> str:
    """A small object of `rows` in partition `folder`, arrived at `stamp`; its key."""
    key = _key(folder, stamp, fmt)
    storage.put(key, encoded(fmt, schema, rows), "application/octet-stream")
    return key


def _compacted(storage, fmt: str) -> tuple[str, bytes, int]:
    """A lake compacted once: its biggest object, and a target that leaves it alone (it has no
    identity index: a merge indexes only what it writes that big)."""
    write_lake(storage, fmt, 3000, seed=5, retries=0)
    first = compact(storage, Options(min_age=0, scan_all=True))
    key = max(first.done, key=lambda m: m.rows).target
    body = storage.get(key)
    return key, body, int(len(body) / LEFT_ALONE)


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_retry_of_a_row_in_a_big_object_is_dropped_and_the_big_object_untouched(fmt, tmp_path):
    storage = LocalStorage(tmp_path)
    big_key, big_body, target = _compacted(storage, fmt)
    schema, big_rows = rows_of(fmt, big_body)
    assert len(big_rows) >= 3
    partition = layout.folder(big_key)
    # later: two small objects in its partition; one holds a retry of one of its rows
    new = renumbered(big_rows[:3], "0")
    small = [
        _put(storage, partition, "2999-01-01-00-00-00", fmt, schema, [new[0], big_rows[1], new[1]]),
        _put(storage, partition, "2999-01-01-00-00-01", fmt, schema, [new[2]]),
    ]
    before = rows_by_partition(storage)
    assert any(c == 2 for c in before[partition].values())

    report = compact(storage, Options(min_age=0, scan_all=True, target_size=target))

    merge = next(m for m in report.done if m.target.startswith(partition))
    assert sorted(merge.sources) == small
    assert merge.dropped == 1 and merge.rows == 3
    assert report.to_dict()["duplicates_dropped"] == 1
    assert storage.get(big_key) == big_body, "the big object is neither rewritten nor deleted"
    after = rows_by_partition(storage)
    assert after[partition] == Counter(set(before[partition]))  # each change once, values kept
    assert rows_of(fmt, storage.get(merge.target))[1] == new  # the other rows in order, identical values
    assert set(data_keys(storage)) & set(small) == set()
    assert set(data_keys(storage)) >= {big_key, merge.target}


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_a_row_sharing_only_the_sequence_number_with_a_big_object_is_kept(fmt, tmp_path):
    """Two changes with one sequence number (two streams) but different event ids are both kept."""
    storage = LocalStorage(tmp_path)
    big_key, big_body, target = _compacted(storage, fmt)
    schema, big_rows = rows_of(fmt, big_body)
    other = {**big_rows[0], "cdc": {**big_rows[0]["cdc"], "eventId": "another-stream"}}
    (new,) = renumbered(big_rows[1:2], "0")
    partition = layout.folder(big_key)
    _put(storage, partition, "2999-01-01-00-00-00", fmt, schema, [other])
    _put(storage, partition, "2999-01-01-00-00-01", fmt, schema, [new])

    report = compact(storage, Options(min_age=0, scan_all=True, target_size=target))

    merge = next(m for m in report.done if m.target.startswith(partition))
    assert merge.dropped == 0 and merge.rows == 2
    assert rows_of(fmt, storage.get(merge.target))[1] == [other, new]
    assert storage.get(big_key) == big_body


# --- identity indexes ---------------------------------------------------------------------------------


class Grown:
    """A partition holding one object left alone (`key`) that its merge indexed: a compacted
    partition (a day of a sample's notifications) merged again with the same day of another
    sample, which arrived later, under a target the two then fill to ≥ 75%. `grow=False` stops
    before that merge (`grow()` does it)."""

    def __init__(self, storage, fmt: str, grow: bool = True) -> None:
        self.storage, self.fmt = storage, fmt
        write_lake(storage, fmt, 2000, seed=5, retries=0, rate=DEFAULT_RATE)
        first = compact(storage, Options(min_age=0, scan_all=True))
        self.compacted = max(first.done, key=lambda m: m.rows).target
        self.folder = layout.folder(self.compacted)
        self.schema = rows_of(fmt, storage.get(self.compacted))[0]
        later = LocalStorage(Path(tempfile.mkdtemp(prefix="dmd-later-")))
        write_lake(later, fmt, 2000, seed=6, retries=0, rate=DEFAULT_RATE)
        compact(later, Options(min_age=0, scan_all=True))
        (same_day,) = later.list(self.folder)
        arrived = later.get(same_day)
        shutil.rmtree(later.root)
        self.storage.put(_key(self.folder, "2999-01-01-00-00-00", fmt), arrived, "application/octet-stream")
        # the two in one merge; the compacted one below 75% of it: a source again
        self.target = len(storage.get(self.compacted)) + len(arrived)
        if grow:
            self.grow()

    def grow(self) -> None:
        merge = self.merge_of(self.compact())
        assert self.compacted in merge.sources and merge.bytes_out >= self.target * LEFT_ALONE  # the setup holds
        self.found(merge.target)

    def found(self, key: str) -> None:
        self.key = key
        self.body = self.storage.get(key)
        self.rows = rows_of(self.fmt, self.body)[1]
        data = layout.parse_data_key(key, "archive")
        self.index_key = layout.identity_key(layout.DEFAULT_STATE_PREFIX, data)

    def add(self, stamp: str, rows: list[dict]) -> str:
        return _put(self.storage, self.folder, stamp, self.fmt, self.schema, rows)

    def compact(self):
        return compact(self.storage, Options(min_age=0, scan_all=True, target_size=self.target))

    def merge_of(self, report):
        return next(m for m in report.done if m.target.startswith(self.folder))


def _independent_hashes(fmt: str, body: bytes) -> bytes:
    """The index an object should have, from its rows as fastavro or pyarrow read them."""
    return b"".join(identity.seq_hash(r["cdc"]["sequenceNumber"]) for r in rows_of(fmt, body)[1])


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_a_merged_object_left_alone_gets_the_index_of_its_rows(fmt, tmp_path):
    lake = Grown(LocalStorage(tmp_path), fmt)
    index = identity.decode(lake.storage.get(lake.index_key), len(lake.body))
    assert index == _independent_hashes(fmt, lake.body)
    assert len(index) == identity.HASH_BYTES * len(lake.rows)
    # only objects left alone are indexed: the smaller merged objects of the other partitions not
    indexes = list(lake.storage.list(f"{layout.DEFAULT_STATE_PREFIX}/{layout.IDENTITIES}"))
    assert indexes == [lake.index_key]


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_a_retry_is_found_through_the_index_and_only_then_is_the_big_object_read(fmt, tmp_path):
    lake = Grown(ReadingStorage(tmp_path), fmt)
    new = renumbered(lake.rows[:3], "2")
    lake.add("2999-02-01-00-00-00", [new[0], new[1]])
    lake.add("2999-02-01-00-00-01", [new[2]])
    lake.storage.read.clear()
    merge = lake.merge_of(lake.compact())
    assert merge.dropped == 0 and merge.rows == 3
    assert lake.key not in lake.storage.read, "no twin: the big object is not read, its index is"
    assert lake.index_key in lake.storage.read

    twin = lake.rows[-1]  # a retry of a change the big object holds
    more = renumbered(lake.rows[:2], "3")
    lake.add("2999-03-01-00-00-00", [more[0], twin])
    lake.add("2999-03-01-00-00-01", [more[1]])
    lake.storage.read.clear()
    report = lake.compact()
    merge = lake.merge_of(report)
    assert (merge.dropped, merge.rows) == (1, 5)  # the 3 rows merged before and the 2 new ones
    assert rows_of(fmt, lake.storage.get(merge.target))[1] == [*new, more[0], more[1]]
    assert lake.storage.read.count(lake.key) == 1
    assert lake.storage.get(lake.key) == lake.body
    assert report.to_dict()["duplicates_dropped"] == 1


@pytest.mark.parametrize("damage", ["garbage", "another size", "truncated"])
def test_a_stale_or_damaged_index_is_rebuilt_from_its_object(damage, tmp_path):
    fmt = "avro"
    lake = Grown(LocalStorage(tmp_path), fmt)
    good = lake.storage.get(lake.index_key)
    bad = {
        "garbage": b"not an index",
        "another size": identity.encode(len(lake.body) + 1, identity.decode(good, len(lake.body))),
        "truncated": good[:-3],
    }[damage]
    lake.storage.put(lake.index_key, bad, "application/octet-stream")
    twin = lake.rows[0]
    new = renumbered(lake.rows[:1], "4")
    lake.add("2999-04-01-00-00-00", [twin])
    lake.add("2999-04-01-00-00-01", new)
    merge = lake.merge_of(lake.compact())
    assert (merge.dropped, merge.rows) == (1, 1)
    assert lake.storage.get(lake.index_key) == good


def test_an_index_naming_changes_its_object_lacks_drops_nothing(tmp_path):
    """An index only nominates an object to read: a hash it holds wrongly (a collision, a bug)
    costs a read, never a row."""
    fmt = "parquet"
    lake = Grown(LocalStorage(tmp_path), fmt)
    new = renumbered(lake.rows[:2], "5")
    claimed = _independent_hashes(fmt, lake.body) + identity.hashes_of(r["cdc"]["sequenceNumber"] for r in new)
    lake.storage.put(lake.index_key, identity.encode(len(lake.body), claimed), "application/octet-stream")
    lake.add("2999-05-01-00-00-00", new[:1])
    lake.add("2999-05-01-00-00-01", new[1:])
    merge = lake.merge_of(lake.compact())
    assert (merge.dropped, merge.rows) == (0, 2)
    assert rows_of(fmt, lake.storage.get(merge.target))[1] == new


def test_indexes_of_objects_gone_are_deleted_and_the_others_kept(tmp_path):
    lake = Grown(LocalStorage(tmp_path), "avro")
    gone = lake.index_key.replace("/2999-", "/2998-")
    lake.storage.put(gone, identity.encode(10, b""), "application/octet-stream")
    new = renumbered(lake.rows[:2], "6")
    lake.add("2999-06-01-00-00-00", new[:1])
    lake.add("2999-06-01-00-00-01", new[1:])
    lake.compact()
    indexes = list(lake.storage.list(f"{layout.DEFAULT_STATE_PREFIX}/{layout.IDENTITIES}"))
    assert indexes == [lake.index_key]


@pytest.mark.parametrize(("fmt", "indexed"), [("avro", False), ("parquet", False), ("avro", True)])
def test_a_big_object_nothing_can_read_is_reported_and_the_merge_loses_nothing(fmt, indexed, tmp_path):
    """Unreadable when it is to be indexed, or when an index (wrongly) nominates it."""
    lake = Grown(LocalStorage(tmp_path), fmt)
    junk = f"{lake.folder}2998-01-01-00-00-00-00000001-0000-0000-0000-000000000000.{fmt}"
    lake.storage.put(junk, b"\x00" * len(lake.body), "application/octet-stream")
    new = renumbered(lake.rows[:2], "7")
    if indexed:
        claimed = identity.hashes_of(r["cdc"]["sequenceNumber"] for r in new)
        index_key = layout.identity_key(layout.DEFAULT_STATE_PREFIX, layout.parse_data_key(junk, "archive"))
        lake.storage.put(index_key, identity.encode(len(lake.body), claimed), "application/octet-stream")
    lake.add("2999-07-01-00-00-00", new[:1])
    lake.add("2999-07-01-00-00-01", new[1:])
    report = lake.compact()
    merge = lake.merge_of(report)
    assert (merge.dropped, merge.rows) == (0, 2)
    assert [u["key"] for u in report.to_dict()["unchecked"]] == [junk]
    assert junk in report.text()
    assert run_metrics(report, "single", time.time())["ObjectsUnchecked"].value == 1
    assert lake.storage.get(junk) == b"\x00" * len(lake.body)


def test_a_crash_at_any_step_of_an_indexing_merge_then_retries_leave_each_change_once(tmp_path):
    """The merge that writes a big object and its index, stopped at each of its writes (the
    index put among them) and run again; then retries of its rows arrive: each change once."""
    fmt = "avro"
    base = tmp_path / "base"
    setup = Grown(LocalStorage(base), fmt, grow=False)
    probe = tmp_path / "probe"
    shutil.copytree(base, probe)
    counting = CrashingStorage(probe, at=0)
    setup.storage = counting
    setup.grow()
    steps = counting.calls
    assert steps >= 6  # journal, merged object, journal verified, index, sources, journal deleted
    for at in range(1, steps + 1):
        root = tmp_path / f"crash-{at}"
        shutil.copytree(base, root)
        setup.storage = CrashingStorage(root, at)
        with pytest.raises(Crash):
            setup.compact()
        setup.storage = LocalStorage(root)
        assert not setup.compact().failed
        big = [k for k in data_keys(setup.storage) if k.startswith(setup.folder)]
        assert len(big) == 1, f"crash at {at}: the partition is one object again"
        setup.found(big[0])
        setup.add("2999-09-01-00-00-00", [setup.rows[0], *renumbered(setup.rows[:1], "9")])
        setup.add("2999-09-01-00-00-01", [setup.rows[-1]])
        before = rows_by_partition(setup.storage)[setup.folder]
        report = setup.compact()
        assert not report.failed, (at, report.text())
        assert setup.merge_of(report).dropped == 2, f"crash at {at}"
        assert rows_by_partition(setup.storage)[setup.folder] == Counter(set(before)), f"crash at {at}"
        shutil.rmtree(root)


def _until_clean(storage, options) -> None:
    """Compact through injected faults until a run finds nothing left to do."""
    for _ in range(40):
        report = compact(storage, options)
        if report.ok and not report.busy and not report.merges and not report.recovered:
            return
        if report.busy:  # a lease whose release failed: it expires
            time.sleep(options.lease_seconds)
    raise AssertionError(report.text())


def test_on_s3_the_index_is_written_read_and_finds_a_retry(s3, moto_server):
    fmt = "avro"  # the faults test below: parquet
    lake = Grown(S3Storage("dmd-test", endpoint_url=moto_server.url), fmt)
    stored = s3.get_object(Bucket="dmd-test", Key=lake.index_key)["Body"].read()
    assert identity.decode(stored, len(lake.body)) == _independent_hashes(fmt, lake.body)
    etag = s3.head_object(Bucket="dmd-test", Key=lake.key)["ETag"]
    new = renumbered(lake.rows[:1], "a")
    lake.add("2999-10-01-00-00-00", [lake.rows[3], *new])
    lake.add("2999-10-01-00-00-01", [lake.rows[-2]])
    merge = lake.merge_of(lake.compact())
    assert (merge.dropped, merge.rows) == (2, 1)
    assert rows_of(fmt, lake.storage.get(merge.target))[1] == new
    assert s3.head_object(Bucket="dmd-test", Key=lake.key)["ETag"] == etag


def test_on_s3_through_faults_the_indexing_merge_and_the_retry_end_with_each_change_once(s3, moto_server, fault_proxy):
    """5xx, resets and stalls on every kind of request, the index's among them, while the big
    object is merged (and indexed) and while a retry of its rows is merged later."""
    direct = S3Storage("dmd-test", endpoint_url=moto_server.url)
    lake = Grown(direct, "parquet", grow=False)
    rng = random.Random(11)
    kinds = ["slowdown", "error500", "reset"] * 3 + ["stall"]
    fault_proxy.plan = lambda method, path: rng.choice(kinds) if rng.random() < 0.08 else None
    faulty = S3Storage("dmd-test", endpoint_url=fault_proxy.url, policy=S3Policy(max_attempts=2, read_timeout=1))
    one_type = frozenset([lake.folder.split("/")[2]])
    options = Options(min_age=0, scan_all=True, target_size=lake.target, lease_seconds=8, types=one_type)
    _until_clean(faulty, options)
    (big,) = [k for k in data_keys(direct) if k.startswith(lake.folder)]
    lake.storage = direct
    lake.found(big)
    lake.add("2999-11-01-00-00-00", [lake.rows[0], *renumbered(lake.rows[:2], "b")])
    lake.add("2999-11-01-00-00-01", [lake.rows[-1]])
    before = rows_by_partition(direct)
    _until_clean(faulty, options)
    assert sum(fault_proxy.injected.values()) > 5
    assert rows_by_partition(direct) == {p: Counter(set(rows)) for p, rows in before.items()}
    assert not list(direct.list(layout.journal_prefix(layout.DEFAULT_STATE_PREFIX)))


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_a_retry_in_a_later_merge_of_the_same_run_is_dropped(fmt, tmp_path):
    """One run, two merges in a partition: the first writes an object left alone (indexed), the
    second holds a retry of one of that object's rows."""
    lake = Grown(LocalStorage(tmp_path), fmt, grow=False)
    twin = rows_of(fmt, lake.storage.get(lake.compacted))[1][5]
    new = renumbered([twin], "c")
    lake.add("2999-12-01-00-00-00", [twin, *new])
    lake.add("2999-12-01-00-00-01", renumbered([twin], "d"))
    report = lake.compact()
    first, second = [m for m in report.done if m.target.startswith(lake.folder)]
    assert lake.compacted in first.sources and first.dropped == 0
    assert (second.dropped, second.rows) == (1, 2)
    assert rows_of(fmt, lake.storage.get(second.target))[1] == [*new, *renumbered([twin], "d")]


def test_kill_9_while_big_objects_are_merged_and_indexed_then_retries_leave_each_change_once(tmp_path):
    """Real processes: `dmd compact` killed (SIGKILL) at random moments while it merges the big
    partitions of two samples' days into objects it indexes, run to the end, then retries of
    rows of every big object arrive: each change once, every index that of its object."""
    fmt, lake = "avro", tmp_path / "lake"
    storage = LocalStorage(lake)
    write_lake(storage, fmt, 2000, seed=5, retries=0, rate=DEFAULT_RATE)
    compact(storage, Options(min_age=0, scan_all=True))
    later = LocalStorage(tmp_path / "later")
    write_lake(later, fmt, 2000, seed=6, retries=0, rate=DEFAULT_RATE)
    compact(later, Options(min_age=0, scan_all=True))
    pairs = []  # (bytes of the partition's compacted object and the later one)
    for key in data_keys(later):
        mine = [k for k in data_keys(storage) if k.startswith(layout.folder(key))]
        if len(mine) == 1:
            body = later.get(key)
            storage.put(f"{layout.folder(key)}2999-{key.rpartition('/')[2][5:]}", body, "application/octet-stream")
            pairs.append(len(storage.get(mine[0])) + len(body))
    target = max(pairs)  # the biggest partitions' two objects fill ≥ 75% of it once merged
    cmd = [sys.executable, "-c", "from dmd.tools.cli import main; main()", "compact", "--lake", str(lake), "--all"]
    cmd += ["--min-age", "0", "--target-size", str(target)]
    journal = lake / layout.journal_prefix(layout.DEFAULT_STATE_PREFIX)
    rng, killed = random.Random(int(os.environ.get("DMD_KILL_SEED", "5"))), 0
    for _ in range(8):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline and not any(journal.rglob("*.json")):
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        _, err = proc.communicate()
        assert proc.returncode in (0, -signal.SIGKILL), err
    assert subprocess.run(cmd, capture_output=True, text=True, check=False).returncode == 0
    assert killed >= 2
    indexes = list(storage.list(f"{layout.DEFAULT_STATE_PREFIX}/{layout.IDENTITIES}"))
    big = [k for k in data_keys(storage) if len(storage.get(k)) >= target * LEFT_ALONE]
    assert big and len(indexes) <= len(big)  # a run killed before an index put: built when needed
    for key in big:  # a retry of the first and the last row of each big object
        schema, rows = rows_of(fmt, storage.get(key))
        _put(storage, layout.folder(key), "2999-12-31-00-00-00", fmt, schema, rows[:1])
        _put(storage, layout.folder(key), "2999-12-31-00-00-01", fmt, schema, rows[-1:])
    before = rows_by_partition(storage)
    assert subprocess.run(cmd, capture_output=True, text=True, check=False).returncode == 0
    assert rows_by_partition(storage) == {p: Counter(set(rows)) for p, rows in before.items()}
    for key in big:
        index = storage.get(layout.identity_key(layout.DEFAULT_STATE_PREFIX, layout.parse_data_key(key, "archive")))
        assert identity.decode(index, len(storage.get(key))) == _independent_hashes(fmt, storage.get(key))


def test_an_index_put_with_its_object_while_a_run_lists_the_partition_is_kept(tmp_path):
    """A backfill puts an object, then its index, between the run's listing of the partition
    and its listing of the indexes: the index is not taken for one of a deleted object."""
    lake = Grown(LocalStorage(tmp_path), "avro")
    arriving = _key(lake.folder, "2999-12-02-00-00-00", "avro")
    arriving_index = layout.identity_key(layout.DEFAULT_STATE_PREFIX, layout.parse_data_key(arriving, "archive"))
    gone = lake.index_key.replace("/2999-", "/2998-")
    lake.storage.put(gone, identity.encode(10, b""), "application/octet-stream")
    data = layout.parse_data_key(lake.key, "archive")
    identities = layout.identity_prefix(layout.DEFAULT_STATE_PREFIX, "avro", data.type_name, data.day)

    class Backfilling(LocalStorage):
        def list(self, prefix):
            if prefix == identities and not self.exists(arriving):
                self.put(arriving, lake.body, "application/octet-stream")  # a copy: as big
                self.put(arriving_index, self.get(lake.index_key), "application/octet-stream")
            return super().list(prefix)

        def exists(self, key):
            return (self.root / key).exists()

    new = renumbered(lake.rows[:2], "e")
    lake.add("2999-12-03-00-00-00", new[:1])
    lake.add("2999-12-03-00-00-01", new[1:])
    report = compact(Backfilling(tmp_path), Options(min_age=0, scan_all=True, target_size=lake.target))
    assert lake.merge_of(report).rows == 2
    indexes = set(lake.storage.list(f"{layout.DEFAULT_STATE_PREFIX}/{layout.IDENTITIES}"))
    assert indexes == {lake.index_key, arriving_index}  # the orphan deleted, the new one kept
