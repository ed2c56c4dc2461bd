"""Crash safety: a compaction stopped at any point is finished or undone by the next run, and
then every record is in the lake exactly once (a duplicate of the same change counts once)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from crashing import Crash, CrashingStorage
from lakes import data_keys, rows_by_partition, write_lake

from dmd.generated import REGISTRY
from dmd.lake import layout
from dmd.lake.compact import Options, compact
from dmd.lake.storage import LocalStorage

NOW = Options(min_age=0, scan_all=True)
ONE_TYPE = Options(min_age=0, scan_all=True, types=frozenset(sorted(REGISTRY)[:1]))  # fewer partitions, same steps
STATE = layout.DEFAULT_STATE_PREFIX


def once(before: dict[str, Counter[str]], types: frozenset[str] | None = None) -> dict[str, Counter[str]]:
    """The lake's rows once compacted: each change once in every partition of `types` (all)."""
    return {
        part: Counter(set(rows)) if types is None or part.split("/")[2] in types else rows
        for part, rows in before.items()
    }


def assert_clean(storage: LocalStorage) -> None:
    """No open merge; a killed put may leave a `.tmp-` file behind: hidden from every reader."""
    assert not list(storage.list(layout.journal_prefix(STATE)))
    visible = [k for k in storage.list("archive/") if not layout.is_hidden(k)]
    assert all(layout.parse_data_key(k, "archive") for k in visible)


@pytest.fixture(scope="module", params=["parquet", "avro"])
def small_lake(request, tmp_path_factory) -> tuple[Path, dict[str, Counter[str]]]:
    root = tmp_path_factory.mktemp(f"small-{request.param}")
    write_lake(LocalStorage(root), request.param, 300, seed=5, retries=2)
    return root, rows_by_partition(LocalStorage(root))


def test_a_crash_at_any_step_is_finished_or_undone_by_the_next_run(small_lake, tmp_path):
    """Every step of the first merges (journal, merged put, verified journal, each source
    deletion, journal deletion) and a random sample of the later ones as crash points."""
    root, before = small_lake
    probe = CrashingStorage(root, at=0)
    shutil.copytree(root, tmp_path / "probe")
    probe.root = (tmp_path / "probe").resolve()
    compact(probe, ONE_TYPE)
    steps = probe.calls
    assert steps > 30
    points = [*range(1, 21), *random.Random(3).sample(range(21, steps + 1), 6)]
    for at in points:
        lake = tmp_path / f"crash-{at}"
        shutil.copytree(root, lake)
        with pytest.raises(Crash):
            compact(CrashingStorage(lake, at), ONE_TYPE)
        storage = LocalStorage(lake)
        report = compact(storage, ONE_TYPE)
        assert not report.failed and not report.stuck, (at, report.text())
        assert rows_by_partition(storage) == once(before, ONE_TYPE.types), f"crash at step {at}"
        assert_clean(storage)
        shutil.rmtree(lake)


def test_kill_9_at_random_points_then_rerun(tmp_path):
    """Real processes: `dmd compact` killed (SIGKILL) at random moments, several times over a lake
    of more than 200 partitions, then run to the end: every record exactly once."""
    lake = tmp_path / "lake"
    storage = LocalStorage(lake)
    write_lake(storage, "avro", 1600, seed=9, retries=4)
    before = rows_by_partition(storage)
    assert len(before) >= 200
    objects = len(data_keys(storage))
    cmd = [sys.executable, "-c", "from dmd.tools.cli import main; main()", "compact", "--lake", str(lake), "--all"]
    cmd += ["--min-age", "0"]
    rng = random.Random(int(os.environ.get("DMD_KILL_SEED", "12")))
    journal = lake / layout.journal_prefix(STATE)
    killed = left_open = 0
    for _ in range(12):
        if killed >= 6 and left_open >= 2:
            break
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # once it is working (a merge's journal entry appeared), at a random moment after that:
        # within the same merge or many merges later
        deadline = time.monotonic() + 20
        open_before = set(journal.rglob("*.json"))  # a killed run's, until this one resolves them
        while proc.poll() is None and time.monotonic() < deadline and set(journal.rglob("*.json")) <= open_before:
            time.sleep(0.002)
        time.sleep(rng.choice([rng.uniform(0, 0.02), rng.uniform(0, 0.4)]))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        _, err = proc.communicate()
        assert proc.returncode in (0, -signal.SIGKILL), err
        left_open += any(journal.rglob("*.json"))  # a merge the next run must finish or undo
    final = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stdout + final.stderr
    assert killed >= 3 and left_open >= 1
    assert rows_by_partition(storage) == once(before)
    assert_clean(storage)
    assert len(data_keys(storage)) < objects / 2
