"""Two compactors at once never merge an object twice (leases: an fcntl lock locally, a
conditional put on S3), and compaction on S3 through a proxy injecting 5xx, resets, stalls and
outages ends, after reruns, with every record exactly once."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from lakes import data_keys, rows_by_partition, write_lake

from dmd.generated import REGISTRY
from dmd.lake import layout
from dmd.lake.compact import Options, compact
from dmd.lake.state import Partition, acquire
from dmd.lake.storage import LocalStorage, S3Policy, S3Storage

NOW = Options(min_age=0, scan_all=True)
STATE = layout.DEFAULT_STATE_PREFIX


def once(before: dict[str, Counter[str]]) -> dict[str, Counter[str]]:
    return {part: Counter(set(rows)) for part, rows in before.items()}


def merged_sources(reports: list[dict]) -> list[str]:
    return [k for r in reports for k in r["sources"]]


def test_two_local_compactors_racing_never_merge_an_object_twice(tmp_path):
    lake = tmp_path / "lake"
    storage = LocalStorage(lake)
    write_lake(storage, "parquet", 1200, seed=21)
    before = rows_by_partition(storage)
    cmd = [sys.executable, "-c", "from dmd.tools.cli import main; main()", "compact", "--lake", str(lake)]
    cmd += ["--all", "--min-age", "0", "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [json.loads(p.communicate()[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    merges = [m for out in outs for m in out["merge_list"]]
    sources = merged_sources(merges)
    assert len(sources) == len(set(sources)), "an object was merged twice"
    assert all(out["merges"] for out in outs) or any(out["busy"] for out in outs)
    assert rows_by_partition(storage) == once(before)


@pytest.fixture
def s3_lake(s3, moto_server):
    storage = S3Storage("dmd-test", endpoint_url=moto_server.url)
    write_lake(storage, "avro", 300, seed=4, retries=3)
    return storage


def test_s3_leases_exclude_each_other_and_expire(s3, moto_server):
    a = S3Storage("dmd-test", endpoint_url=moto_server.url)
    p = Partition("avro", "x", __import__("datetime").date(2024, 1, 2))
    first = acquire(a, STATE, p, "owner-a", seconds=1.0)
    assert first is not None
    assert acquire(a, STATE, p, "owner-b", seconds=1.0) is None
    time.sleep(1.1)
    second = acquire(a, STATE, p, "owner-b", seconds=60)  # the expired lease is taken over
    assert second is not None
    assert acquire(a, STATE, p, "owner-c", seconds=60) is None
    second.release()
    assert acquire(a, STATE, p, "owner-c", seconds=60) is not None


def test_local_lease_is_released_when_its_holder_dies(tmp_path):
    storage = LocalStorage(tmp_path)
    p = Partition("avro", "x", __import__("datetime").date(2024, 1, 2))
    key = layout.lock_key(STATE, p.format, p.type_name, p.day)
    code = (
        "import sys, time; from pathlib import Path; from dmd.lake.storage import LocalStorage\n"
        f"held = LocalStorage(Path({str(tmp_path)!r})).lock({key!r}); assert held\n"
        "print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert acquire(storage, STATE, p, "me", 60) is None
    holder.kill()
    holder.wait()
    lease = acquire(storage, STATE, p, "me", 60)
    assert lease is not None
    lease.release()


def test_two_s3_compactors_racing_never_merge_an_object_twice(s3_lake, moto_server):
    before = rows_by_partition(s3_lake)
    reports = []

    def run() -> None:
        reports.append(compact(S3Storage("dmd-test", endpoint_url=moto_server.url), NOW))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sources = [k for r in reports for m in r.done for k in m.sources]
    assert len(sources) == len(set(sources)), "an object was merged twice"
    assert all(r.ok for r in reports), [r.text() for r in reports]
    assert rows_by_partition(s3_lake) == once(before)
    assert not list(s3_lake.list(layout.journal_prefix(STATE)))
    assert not list(s3_lake.list(f"{STATE}/{layout.LEASES}"))  # released


def test_s3_compaction_through_faults_and_outages_ends_with_every_record_once(s3_lake, fault_proxy):
    before = rows_by_partition(s3_lake)
    objects = len(data_keys(s3_lake))
    rng = random.Random(7)
    kinds = ["slowdown", "error500", "reset"] * 3 + ["stall"]
    fault_proxy.plan = lambda method, path: rng.choice(kinds) if rng.random() < 0.05 else None
    policy = S3Policy(max_attempts=2, connect_timeout=1, read_timeout=1)
    # one record type: a few dozen partitions, each request through the proxy (~20 ms)
    one_type = frozenset(sorted(REGISTRY)[:1])
    options = Options(min_age=0, scan_all=True, lease_seconds=8, types=one_type)
    runs = 0
    while True:
        runs += 1
        storage = S3Storage("dmd-test", endpoint_url=fault_proxy.url, policy=policy)
        timer = threading.Timer(rng.uniform(0.5, 3), lambda: setattr(fault_proxy, "down", True))
        if runs <= 3:  # an outage at a random moment of the first runs
            timer.start()
        report = compact(storage, options)
        timer.cancel()
        fault_proxy.down = False
        if runs > 3 and report.ok and not report.busy and not report.merges and not report.recovered:
            break
        assert runs < 40, report.text()
        if report.busy:  # a lease whose release failed: it expires
            time.sleep(options.lease_seconds)
    assert sum(fault_proxy.injected.values()) > 10
    expected = {p: rows if p.split("/")[2] not in one_type else Counter(set(rows)) for p, rows in before.items()}
    assert rows_by_partition(s3_lake) == expected
    assert len(data_keys(s3_lake)) < objects
    assert not list(s3_lake.list(layout.journal_prefix(STATE)))
