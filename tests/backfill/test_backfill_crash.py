"""A backfill stopped anywhere (at any write, or by kill -9) and run again archives every item of
the export exactly once: nothing lost, nothing twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from crashing import Crash, CrashingStorage

from dmd.generated import REGISTRY
from dmd.ingest.backfill import Plan, backfill_file, check_plan, open_export
from dmd.ingest.config import Settings
from dmd.lake import layout
from dmd.lake.storage import LocalStorage
from dmd.tools.tableexport import FULL, write_export

SETTINGS = Settings()
PLAN = Plan.of(SETTINGS, 8 * 1024, 100)  # small parts, frequent appends: many writes to stop at


def run(export_folder: Path, storage: LocalStorage) -> None:
    export = open_export(str(export_folder))
    summary = export.summary()
    check_plan(storage, SETTINGS.state_prefix, summary.context.export_id, PLAN)
    for df in export.files():
        backfill_file(export, summary, df, storage=storage, settings=SETTINGS, registry=REGISTRY, plan=PLAN)


def archived(lake: Path) -> Counter[str]:
    """Sequence numbers (one per export item) of every row in the lake, with their counts."""
    seqs: Counter[str] = Counter()
    for path in (lake / "archive").rglob("*.parquet"):
        seqs.update(pq.read_table(path).column("cdc").combine_chunks().field("sequenceNumber").to_pylist())
    return seqs


def error_items(lake: Path) -> int:
    return len(list((lake / "errors").glob("*.json"))) if (lake / "errors").exists() else 0


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("export")
    stats = write_export(LocalStorage(root), "x", records=400, seed=21, kind=FULL, files=3, bad_fraction=0.02)
    clean = tmp_path_factory.mktemp("clean")
    run(root / stats.folder, LocalStorage(clean))
    return root / stats.folder, stats, archived(clean), error_items(clean)


def test_a_run_stopped_at_any_write_then_run_again_archives_each_item_once(export, tmp_path):
    folder, stats, expected, errors = export
    assert sum(expected.values()) == sum(stats.by_type.values()) and set(expected.values()) == {1}
    probe = CrashingStorage(tmp_path / "probe", at=0)
    run(folder, probe)
    writes = probe.calls
    steps = range(1, writes + 1) if writes <= 40 else sorted(random.Random(1).sample(range(1, writes + 1), 40))
    for at in steps:
        lake = tmp_path / f"lake-{at}"
        with pytest.raises(Crash):
            run(folder, CrashingStorage(lake, at))
        run(folder, LocalStorage(lake))
        assert archived(lake) == expected, f"stopped at write {at} of {writes}"
        assert error_items(lake) == errors, f"stopped at write {at} of {writes}"


def test_kill_9_mid_run_then_rerun_archives_each_item_once(tmp_path):
    root = tmp_path / "export"
    stats = write_export(LocalStorage(root), "x", records=3000, seed=22, kind=FULL, files=8)
    folder, lake = root / stats.folder, tmp_path / "lake"
    command = [
        str(Path(sys.executable).parent / "dmd"),
        "backfill",
        str(folder),
        "--lake",
        str(lake),
        "--workers",
        "1",
        "--target-size",
        "8KiB",
        "--buffer-rows",
        "100",
    ]
    done = lake / layout.backfill_prefix(SETTINGS.state_prefix, stats.export_id) / "done"
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if done.exists() and len(list(done.iterdir())) >= 2:  # some files done, others under way
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the backfill ended before it could be killed: {proc.stderr.read()!r}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(list(done.iterdir())) < stats.files
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "archived by an earlier run" in rerun.stdout
    seqs = archived(lake)
    assert sum(seqs.values()) == sum(stats.by_type.values()) and set(seqs.values()) == {1}
