"""benchmarks/compaction.py: its parts (a child's own rusage, lake statistics, query timing), and
the whole benchmark and the demo mode through a stand-in `dmd compact` that does nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from benchmod import load

compaction = load("compaction")


def test_child_rusage_is_the_childs_own():
    grow = 'x = b"x" * (80 * 1024 * 1024); sum(range(20_000_000))'
    big = compaction.run([sys.executable, "-c", grow])
    small = compaction.run([sys.executable, "-c", "pass"])
    assert big.max_rss_mb >= 80 > small.max_rss_mb
    ballast = b"x" * (120 * 1024 * 1024)  # this process's memory is not counted in a child's peak
    assert compaction.run([sys.executable, "-c", "pass"]).max_rss_mb < 80
    del ballast
    assert big.cpu > small.cpu + 0.2 > 0.2
    with pytest.raises(subprocess.CalledProcessError):
        compaction.run([sys.executable, "-c", "raise SystemExit(3)"])


def test_lake_statistics_and_query_times_of_an_archived_sample(tmp_path: Path):
    events = tmp_path / "events.jsonl"
    compaction.sample(events, 400, seed=5, batch_size=100)
    ingested = compaction.ingest(events, tmp_path / "lake", "avro")
    assert ingested.cpu > 0
    stats = compaction.lake_stats(tmp_path / "lake")
    assert stats.rows == 400 and stats.objects > 4 and stats.bytes > 0
    (tmp_path / "lake" / "archive" / "_dmd-state").mkdir()
    (tmp_path / "lake" / "archive" / "_dmd-state" / "journal.json").write_text("{}")
    assert compaction.lake_stats(tmp_path / "lake") == stats  # hidden names are not data
    times = compaction.query_times(tmp_path / "lake", rounds=1)
    assert set(times) == set(compaction.QUERIES) and all(t > 0 for t in times.values())


@pytest.fixture
def noop_compactor(tmp_path: Path, monkeypatch) -> Path:
    """A `dmd` whose `compact` does nothing (and logs its arguments); everything else is the real one."""
    real = compaction.DMD
    log = tmp_path / "compact-args"
    fake = tmp_path / "dmd"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = compact ]; then echo "$@" >> {log}; exit 0; fi\nexec {real} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setattr(compaction, "DMD", str(fake))
    return log


def test_the_whole_benchmark_runs_and_reports_through_a_compactor(tmp_path: Path, noop_compactor: Path, capsys):
    assert compaction.main(["--records", "300", "--rounds", "1", "--work", str(tmp_path / "work")]) == 0
    out = capsys.readouterr().out
    assert "300 -> 300" in out  # rows, both formats, nothing dropped by a no-op
    for label in ("objects fewer", "compact MB/s", "compact CPU / ingest CPU", "compact peak RSS MB", "faster"):
        assert label in out, label
    calls = noop_compactor.read_text().splitlines()
    assert len(calls) == 2  # one run per format
    assert calls[-1].endswith("--min-age 0 --all") and "--prefix archive" in calls[-1]


def test_demo_mode_compacts_a_lake_in_place_and_shows_before_and_after(tmp_path: Path, noop_compactor: Path):
    events = tmp_path / "events.jsonl"
    compaction.sample(events, 200, seed=2, batch_size=100)
    compaction.ingest(events, tmp_path / "lake", "parquet")
    text = compaction.compact_in_place(tmp_path / "lake", ["--min-age", "0"], rounds=1)
    before, after = (line.split() for line in text.splitlines()[2:4])
    assert before[0] == "before" and after[0] == "after" and before[1:3] == after[1:3]  # objects, rows
    assert noop_compactor.read_text().splitlines()[-1].endswith("--min-age 0")
