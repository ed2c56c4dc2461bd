"""Compaction benchmark (issue 12): sample records archived at batches of 100, then compacted, in
both formats; objects, bytes, throughput, peak memory, CPU against ingest, and query times.

    .venv/bin/python benchmarks/compaction.py                     # 200,000 records (the issue's run)
    .venv/bin/python benchmarks/compaction.py --records 20000     # a quick check
    .venv/bin/python benchmarks/compaction.py --ingest-only       # ingest and query times only
    .venv/bin/python benchmarks/compaction.py --lake lake         # compact an existing lake (make demo)

Every step runs the `dmd` command as a child process, as a user would (`dmd sample`, `dmd run`,
`dmd compact --min-age 0 --all`), so the script depends on no internals; each child's CPU time
and peak RSS come from `os.wait4` in a small launcher (its own rusage, not the sum of every
child, nor the RSS of this script, which Linux would otherwise count in a child's peak). Query times are
DuckDB's over the lake through `dmd.tools.query.open_lake` (the views `dmd query` serves): a
`count(*)` and a group-by over `all_records`, median of `--rounds`, each on a fresh connection and
including the opening of the lake (the file listing; for Avro, reading the containers).

Targets (issue 12): >= 50x fewer objects; queries >= 10x faster; compaction CPU <= 0.5x the
ingest CPU for Avro and <= 1x for Parquet; peak RSS of the compactor <= 512 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DMD = str(Path(sys.executable).with_name("dmd"))
PREFIX = "archive"
QUERIES = {
    "count": "SELECT count(*) FROM all_records",
    "group-by": "SELECT type, partition_date, count(*) AS n FROM all_records GROUP BY ALL ORDER BY ALL",
}
TARGET_OBJECTS_RATIO, TARGET_QUERY_SPEEDUP, TARGET_RSS_MB = 50, 10, 512
TARGET_CPU_SHARE = {"avro": 0.5, "parquet": 1.0}


@dataclass(frozen=True)
class Run:
    """One child process: wall and CPU seconds, peak RSS."""

    wall: float
    cpu: float
    max_rss_mb: float
    stdout: str


@dataclass(frozen=True)
class LakeStats:
    objects: int
    bytes: int
    rows: int


@dataclass(frozen=True)
class Result:
    format: str
    before: LakeStats
    after: LakeStats | None
    ingest: Run
    compact: Run | None
    query_before: dict[str, float]
    query_after: dict[str, float]


# Starts the measured command and reports its own rusage. Linux counts a child's peak RSS from the
# memory of the process that spawned it (the high-water mark survives exec), so a command started
# by this script would inherit its RSS (DuckDB, the Avro tables of the queries); started by this
# small launcher, it inherits ~10 MB instead.
LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump([usage.ru_utime + usage.ru_stime, usage.ru_maxrss], f)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run(args: Sequence[str], cwd: Path | None = None) -> Run:
    """Run a command; its own CPU time and peak RSS, through LAUNCHER."""
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rusage.json"
        launch = [sys.executable, "-S", "-c", LAUNCHER, str(report), *args]
        result = subprocess.run(launch, capture_output=True, text=True, errors="replace", cwd=cwd, check=False)
        wall = time.perf_counter() - t
        if result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, list(args), result.stdout, result.stderr)
        cpu, max_rss_kb = json.loads(report.read_text())
    return Run(wall, cpu, max_rss_kb / 1024, result.stdout)


def lake_stats(lake: Path, prefix: str = PREFIX) -> LakeStats:
    """Data objects (what Athena would read: names not starting with `_` or `.`), their bytes, and
    the rows DuckDB reads from them."""
    from dmd.tools.query import open_lake

    files = [
        p
        for p in (lake / prefix).rglob("*")
        if p.is_file() and not any(part.startswith(("_", ".")) for part in p.relative_to(lake).parts)
    ]
    con = open_lake(lake, prefix)
    try:
        (rows,) = con.execute(QUERIES["count"]).fetchone()
    finally:
        con.close()
    return LakeStats(len(files), sum(p.stat().st_size for p in files), rows)


def query_times(lake: Path, rounds: int, prefix: str = PREFIX) -> dict[str, float]:
    """Median seconds of each query, each round on a fresh connection (no warm metadata), opening
    the lake included: DuckDB reads Parquet itself, but `open_lake` reads Avro containers into
    Arrow when it creates the views, so only open + query compares the formats and the lakes."""
    from dmd.tools.query import open_lake

    times: dict[str, list[float]] = {name: [] for name in QUERIES}
    for _ in range(rounds):
        for name, sql in QUERIES.items():
            t = time.perf_counter()
            con = open_lake(lake, prefix)
            try:
                con.execute(sql).fetchall()
                times[name].append(time.perf_counter() - t)
            finally:
                con.close()
    return {name: statistics.median(ts) for name, ts in times.items()}


def sample(events: Path, records: int, seed: int, batch_size: int) -> None:
    size = ["--batch-size", str(batch_size)]
    run([DMD, "sample", "--records", str(records), "--seed", str(seed), *size, "--out", str(events)])


def ingest(events: Path, lake: Path, fmt: str) -> Run:
    return run([DMD, "run", str(events), "--lake", str(lake), "--format", fmt])


def compact(lake: Path, options: Sequence[str] = ("--min-age", "0", "--all")) -> Run:
    return run([DMD, "compact", "--lake", str(lake), "--prefix", PREFIX, *options])


def measure(fmt: str, events: Path, work: Path, rounds: int, ingest_only: bool) -> Result:
    lake = work / f"lake-{fmt}"
    shutil.rmtree(lake, ignore_errors=True)
    ingested = ingest(events, lake, fmt)
    before, query_before = lake_stats(lake), query_times(lake, rounds)
    if ingest_only:
        return Result(fmt, before, None, ingested, None, query_before, {})
    compacted = compact(lake)
    return Result(fmt, before, lake_stats(lake), ingested, compacted, query_before, query_times(lake, rounds))


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def report(results: Sequence[Result], records: int, batch_size: int) -> str:
    then = "then `dmd compact --min-age 0 --all`"
    lines = [f"{records:,} sample records archived at batches of {batch_size}, {then}", ""]
    head = f"{'':28}" + "".join(f"{r.format:>22}" for r in results)
    lines.append(head)

    def row(label: str, cells: Sequence[str]) -> None:
        lines.append(f"{label:28}" + "".join(f"{c:>22}" for c in cells))

    def change(r: Result, field: str, scale: float = 1, spec: str = ",.0f") -> str:
        before = format(getattr(r.before, field) / scale, spec)
        return before + (f" -> {getattr(r.after, field) / scale:{spec}}" if r.after else "")

    row("rows", [change(r, "rows") for r in results])
    row("objects", [change(r, "objects") for r in results])
    row("MB", [change(r, "bytes", 1e6, ",.1f") for r in results])
    row("ingest CPU s (wall s)", [f"{r.ingest.cpu:,.1f} ({r.ingest.wall:,.1f})" for r in results])
    for name in QUERIES:
        cells = []
        for r in results:
            b = r.query_before[name] * 1000
            cells.append(f"{b:,.0f}" + (f" -> {r.query_after[name] * 1000:,.0f}" if r.query_after else ""))
        row(f"query {name} ms (open+run)", cells)
    if all(r.compact and r.after for r in results):
        row("objects fewer (>= 50x)", [_objects(r) for r in results])
        row("compact CPU s (wall s)", [f"{r.compact.cpu:,.1f} ({r.compact.wall:,.1f})" for r in results])
        row("compact MB/s (wall)", [f"{r.before.bytes / 1e6 / r.compact.wall:,.1f}" for r in results])
        row("compact rows/s (wall)", [f"{r.before.rows / r.compact.wall:,.0f}" for r in results])
        row("compact CPU / ingest CPU", [_cpu_share(r) for r in results])
        row("compact peak RSS MB", [_rss(r) for r in results])
        for name in QUERIES:
            row(f"query {name} faster (>= 10x)", [_speedup(r, name) for r in results])
        row("rows dropped (duplicates)", [f"{r.before.rows - r.after.rows:,}" for r in results])
    else:
        lines += ["", "(no compaction measured: --ingest-only)"]
    return "\n".join(lines)


def _objects(r: Result) -> str:
    ratio = r.before.objects / max(r.after.objects, 1)
    return f"{ratio:,.0f}x {verdict(ratio >= TARGET_OBJECTS_RATIO)}"


def _cpu_share(r: Result) -> str:
    share = r.compact.cpu / r.ingest.cpu
    return f"{share:.2f} (<= {TARGET_CPU_SHARE[r.format]}) {verdict(share <= TARGET_CPU_SHARE[r.format])}"


def _rss(r: Result) -> str:
    return f"{r.compact.max_rss_mb:,.0f} (<= {TARGET_RSS_MB}) {verdict(r.compact.max_rss_mb <= TARGET_RSS_MB)}"


def _speedup(r: Result, name: str) -> str:
    ratio = r.query_before[name] / r.query_after[name]
    return f"{ratio:,.1f}x {verdict(ratio >= TARGET_QUERY_SPEEDUP)}"


def compact_in_place(lake: Path, options: Sequence[str], rounds: int) -> str:
    """Objects, rows, bytes and query times of a local lake before and after `dmd compact`."""
    before, query_before = lake_stats(lake), query_times(lake, rounds)
    compacted = compact(lake, options)
    after, query_after = lake_stats(lake), query_times(lake, rounds)
    names = list(QUERIES)
    lines = [
        f"dmd compact --lake {lake} {' '.join(options)}: {compacted.wall:.1f} s, "
        f"peak RSS {compacted.max_rss_mb:.0f} MB",
        f"{'':8}{'objects':>10}{'rows':>10}{'MB':>8}" + "".join(f"{n + ' ms':>14}" for n in names),
    ]
    for label, stats, times in (("before", before, query_before), ("after", after, query_after)):
        lines.append(
            f"{label:8}{stats.objects:>10,}{stats.rows:>10,}{stats.bytes / 1e6:>8.1f}"
            + "".join(f"{times[n] * 1000:>14,.0f}" for n in names)
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--batch-size", type=int, default=100, help="records per Lambda event (the stream's batch size)")
    p.add_argument("--formats", default="parquet,avro")
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3, help="query rounds (median)")
    p.add_argument("--ingest-only", action="store_true", help="skip compaction: ingest and query times only")
    p.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed after)")
    p.add_argument("--lake", type=Path, help="only compact this existing local lake, before/after (make demo)")
    p.add_argument("--compact-options", default="--min-age 0", help="`dmd compact` options with --lake")
    args = p.parse_args(argv)

    if args.lake:
        print(compact_in_place(args.lake, args.compact_options.split(), args.rounds))
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="dmd-compaction-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        events = work / "events.jsonl"
        sample(events, args.records, args.seed, args.batch_size)
        results = [measure(f, events, work, args.rounds, args.ingest_only) for f in args.formats.split(",")]
        print(report(results, args.records, args.batch_size))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
