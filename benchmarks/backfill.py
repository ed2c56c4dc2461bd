"""Backfill benchmark (issue 15): items per second of `dmd backfill` on a local full export, with
one worker process and with one per core, in both formats.

    .venv/bin/python benchmarks/backfill.py                      # a 200,000-change sample table
    .venv/bin/python benchmarks/backfill.py --records 20000      # a quick check

The export is written by dmd.tools.tableexport exactly as DynamoDB writes one (gzipped DynamoDB
JSON, a manifest of `--files` data files) from `dmd sample`'s change stream (seed 17): the table
as the whole stream left it, so its items spread over partition dates as the sample's do (demand
and notifications around their arrival, events and sales over weeks). Each run is the `dmd
backfill` command as a child process into a fresh lake, timed from start to exit (worker start-up
included); its CPU time (itself and its workers) and the peak RSS of its largest process come
from `os.wait4` in a small launcher (benchmarks/compaction.py's). Items per second = the export's
items / wall seconds; items per CPU-second = the export's items / the CPU time of the command
and its workers (what the cores can do when no other process competes for them).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compaction import DMD, run

from dmd.lake.storage import LocalStorage
from dmd.tools.tableexport import FULL, write_export


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="changes of the sample table's stream")
    parser.add_argument("--files", type=int, default=8, help="data files of the export (units of work)")
    parser.add_argument("--formats", default="parquet,avro")
    parser.add_argument("--workers", default=f"1,{os.cpu_count() or 1}", help="worker counts to compare")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dmd-backfill-bench-") as tmp:
        root = Path(tmp)
        stats = write_export(
            LocalStorage(root / "export"), "exports", records=args.records, seed=17, kind=FULL, files=args.files
        )
        export = root / "export" / stats.folder
        size = sum(p.stat().st_size for p in (export / "data").iterdir())
        print(
            f"export: {stats.items:,} items in {stats.files} gzipped data files ({size / 2**20:.1f} MiB), "
            f"from a {args.records:,}-change sample; {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f} before the runs (other processes share the cores)"
        )
        print(
            f"{'format':<8} {'workers':>7} {'wall s':>8} {'items/s':>9} {'CPU s':>8} {'items/CPU-s':>11} "
            f"{'peak MB':>8} {'objects':>8} {'MiB':>7}"
        )
        for fmt in args.formats.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                lake = root / f"lake-{fmt}-{workers}"
                r = run([DMD, "backfill", str(export), "--lake", str(lake), "--format", fmt, "--workers", str(workers)])
                objects = [p for p in (lake / "archive").rglob(f"*.{fmt}")]
                mib = sum(p.stat().st_size for p in objects) / 2**20
                print(
                    f"{fmt:<8} {workers:>7} {r.wall:>8.2f} {stats.items / r.wall:>9,.0f} {r.cpu:>8.2f} "
                    f"{stats.items / r.cpu:>11,.0f} {r.max_rss_mb:>8.0f} {len(objects):>8} {mib:>7.1f}"
                )
                shutil.rmtree(lake)


if __name__ == "__main__":
    main()
