"""Peak RSS of `dmd compact` on one partition of many small files (issue 12 item 8).

    .venv/bin/python tests/compaction/measure_memory.py --format avro --mib 1024 --rows-per-file 64

Builds the partition from rows the real pipeline archived (a `dmd sample`, one record type),
each small file a copy of a sampled object's rows with fresh sequence numbers and ids (so no row
is a duplicate), then runs `dmd compact --all --min-age 0` in a child process and reports its
peak RSS (ru_maxrss), time and objects before/after. Not part of the test suite (minutes).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lakes import write_lake

from dmd.generated import REGISTRY
from dmd.lake import layout
from dmd.lake.read import read_rows
from dmd.lake.storage import LocalStorage


def build(root: Path, fmt: str, mib: int, rows_per_file: int) -> tuple[int, int]:
    type_name = sorted(REGISTRY)[0]
    seed_lake = root / "seed"
    write_lake(LocalStorage(seed_lake), fmt, 3000, seed=1, retries=0)
    keys = [k for k in LocalStorage(seed_lake).list("archive/") if f"/{type_name}/" in k]
    rows = [r for k in keys for r in read_rows(LocalStorage(seed_lake).get(k))]
    body = LocalStorage(seed_lake).get(keys[0])
    folder = root / "lake" / layout.partition_prefix("archive", fmt, type_name, "2024-01-01")
    folder.mkdir(parents=True)
    total = files = 0
    n = 0
    if fmt == "avro":
        import fastavro

        schema = fastavro.reader(io.BytesIO(body)).writer_schema
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.read_schema(io.BytesIO(body))
    while total < mib << 20:
        chunk = []
        for _ in range(rows_per_file):
            r = dict(rows[n % len(rows)])
            r["cdc"] = dict(r["cdc"], sequenceNumber=f"{49_000_000_000_000 + n:032d}")
            r["id"] = f"m-{n}"
            chunk.append(r)
            n += 1
        path = folder / f"2024-01-01-00-00-00-{files:08d}-0000-0000-0000-000000000000.{fmt}"
        if fmt == "avro":
            with path.open("wb") as f:
                fastavro.writer(f, schema, chunk, codec="deflate")
        else:
            pq.write_table(pa.Table.from_pylist(chunk, schema=schema), path, compression="snappy")
        total += path.stat().st_size
        files += 1
    return files, total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--format", default="avro")
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--rows-per-file", type=int, default=64)
    ap.add_argument("--target-size", default="128MiB")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dmd-measure-") as tmp:
        root = Path(tmp)
        t = time.monotonic()
        files, total = build(root, args.format, args.mib, args.rows_per_file)
        built = time.monotonic() - t
        t = time.monotonic()
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                "from dmd.tools.cli import main; main()",
                "compact",
                "--lake",
                str(root / "lake"),
                "--all",
                "--min-age",
                "0",
                "--target-size",
                args.target_size,
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.monotonic() - t
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        report = json.loads(out.stdout)
        after = sum(1 for p in (root / "lake" / "archive").rglob("*") if p.is_file())
        print(
            json.dumps(
                {
                    "format": args.format,
                    "files_before": files,
                    "bytes_before": total,
                    "build_seconds": round(built, 1),
                    "objects_after": after,
                    "bytes_after": report["bytes_out"],
                    "rows": report["rows"],
                    "compact_seconds": round(seconds, 1),
                    "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
                    "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
