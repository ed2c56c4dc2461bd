"""benchmarks/backfill.py runs end to end on a small export and prints a row per run."""

from __future__ import annotations

from benchmod import load


def test_the_backfill_benchmark_prints_items_per_second_per_worker_count(capsys):
    module = load("backfill")
    module.main(["--records", "300", "--files", "2", "--formats", "avro", "--workers", "1,2"])
    out = capsys.readouterr().out
    assert "gzipped data files" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("avro")]
    assert [r[1] for r in rows] == ["1", "2"]
    assert all(float(r[3].replace(",", "")) > 0 and int(r[7]) > 0 for r in rows)  # items/s, objects
