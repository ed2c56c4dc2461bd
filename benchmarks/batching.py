"""How the Kinesis event source mapping's batching settings trade objects for latency.

Every batch the archiving function handles writes one object per (record type, partition date) it
holds, so fewer, larger batches write fewer objects, and records wait longer for their batch. This
measures both, for batch sizes x batching windows x parallelization factors, at a few stream rates:

    .venv/bin/python benchmarks/batching.py                     # 100,000 records per rate (~6 min)
    .venv/bin/python benchmarks/batching.py --records 20000     # a quick check

Per rate, `dmd sample` (write_sample, seed 11, no malformed records) makes the stream: with its
`rate` option when it has one, otherwise with its change clock scaled to that rate (the sample
spreads change times over `SPAN`; setting SPAN = records / rate makes the records arrive at the
rate, with the sample's own spread of partition dates around each arrival). A simulated event
source mapping then cuts each shard's records into batches the way Lambda does:

- with parallelization factor P, a shard's records are split by partition key into P
  sub-streams, each batched and invoked on its own (order is kept per partition key);
- a batch opens at its first record (or when the previous batch of its sub-stream closed, if that
  record was already waiting) and closes when it holds `batch size` records, when the next
  record would take its payload past Lambda's 6 MB, or when its window ends: the batching
  window; with window 0 Lambda still polls a shard about once a second, so the batch closes at
  the next poll (polls every second, from a random phase);
- each batch runs through the real pipeline (`decode_event` + `process_batch`, the handler's
  path) into an in-memory store, which counts the objects it writes.

Added latency of a record = when its batch closes - when it arrived (the window plus the time to
fill a batch; the invocation's own run time comes on top and is the same for every setting). The
last batch of each sub-stream is left out of the latencies (it waits for records the finite
sample never sends) but not out of the objects.
Objects are counted per 100,000 records. The objects a batch writes do not depend on the format
(one per group either way): the run uses Avro, the cheaper one to encode.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import io
import math
import random
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

PAYLOAD_LIMIT = 6 * 1024 * 1024  # Lambda's invocation payload limit, which also caps a batch
POLL_SECONDS = 1.0  # Lambda polls each shard about once a second (window 0)
ENVELOPE = len(b'{"Records":[]}')
NOW = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Record:
    shard: str
    partition_key: str
    arrived: float
    size: int  # bytes of its JSON in the Lambda event (plus the comma between records)
    json: dict[str, Any]


@dataclass(frozen=True)
class Setting:
    batch_size: int
    window: int
    parallelization: int


@dataclass(frozen=True)
class Outcome:
    rate: float
    setting: Setting
    records: int
    batches: int
    objects: int
    latency_mean: float
    latency_p99: float
    largest_payload: int
    capped: int  # batches closed by the 6 MB payload limit

    @property
    def objects_per_100k(self) -> float:
        return self.objects * 100_000 / self.records

    @property
    def records_per_batch(self) -> float:
        return self.records / self.batches


# --- the stream --------------------------------------------------------------------------------


def stream(records: int, rate: float, seed: int) -> tuple[list[Record], str]:
    """The sample's Kinesis records at `rate` records/second, in arrival order per shard, and how
    the rate was made."""
    from dmd.tools import sample

    out = io.StringIO()
    if "rate" in inspect.signature(sample.write_sample).parameters:
        sample.write_sample(out, records=records, seed=seed, batch_size=1000, rate=rate)
        how = "dmd sample's rate option"
    else:
        span = sample.SPAN
        sample.SPAN = timedelta(seconds=records / rate)  # the sample's change clock, at this rate
        try:
            sample.write_sample(out, records=records, seed=seed, batch_size=1000)
        finally:
            sample.SPAN = span
        how = "modelled here: dmd sample has no rate option on this branch, its clock is scaled (SPAN)"
    result = []
    for line in out.getvalue().splitlines():
        for r in orjson.loads(line)["Records"]:
            shard = r["eventID"].partition(":")[0]
            k = r["kinesis"]
            size = len(orjson.dumps(r)) + 1
            result.append(Record(shard, k["partitionKey"], float(k["approximateArrivalTimestamp"]), size, r))
    return result, how


def substreams(records: Sequence[Record], parallelization: int) -> list[list[Record]]:
    """Each shard split by partition key into `parallelization` sub-streams, in arrival order."""
    out: dict[tuple[str, int], list[Record]] = {}
    for r in records:
        slot = int(hashlib.md5(r.partition_key.encode()).hexdigest(), 16) % parallelization
        out.setdefault((r.shard, slot), []).append(r)
    return [sorted(v, key=lambda r: r.arrived) for _, v in sorted(out.items())]


def batches(records: Sequence[Record], s: Setting, phase: float) -> Iterator[tuple[list[Record], float, bool]]:
    """(records, close time, closed by the payload limit) of each batch of one sub-stream."""
    i, n, closed = 0, len(records), -math.inf
    while i < n:
        opened = max(records[i].arrived, closed)
        next_poll = phase + math.ceil((opened - phase) / POLL_SECONDS) * POLL_SECONDS
        deadline = opened + s.window if s.window else next_poll
        batch, payload, capped = [], ENVELOPE, False
        while i < n and len(batch) < s.batch_size and records[i].arrived <= max(deadline, opened):
            if payload + records[i].size > PAYLOAD_LIMIT:
                capped = True
                break
            batch.append(records[i])
            payload += records[i].size
            i += 1
        # closes when full (at the time its last record arrived, or when it opened) or at the deadline
        full = len(batch) == s.batch_size or capped
        closed = max(opened, batch[-1].arrived) if full else deadline
        yield batch, closed, capped


# --- the pipeline ------------------------------------------------------------------------------


class CountingStorage:
    """Counts the lake's objects: data containers and error documents, not the batch's one
    touched-partitions marker under the state prefix (the compactor deletes those)."""

    max_parallel_puts = 1  # answers at once (see pipeline.process_batch)

    def __init__(self) -> None:
        self.objects = 0

    def put(self, key: str, body: bytes, content_type: str) -> str:
        from dmd.lake.layout import DEFAULT_STATE_PREFIX

        self.objects += not key.startswith(DEFAULT_STATE_PREFIX + "/")
        return f"mem://{key}"


class Pipeline:
    """The handler's path for one batch, counting objects; a batch seen before is not rerun."""

    def __init__(self, fmt: str) -> None:
        from dmd.generated import REGISTRY
        from dmd.ingest.config import Settings

        self.registry, self.settings = REGISTRY, Settings(format=fmt)
        self.cache: dict[tuple[str, int], int] = {}
        self.cpu, self.records = 0.0, 0

    def objects(self, batch: list[Record]) -> int:
        from dmd.ingest.envelope import decode_event
        from dmd.ingest.pipeline import process_batch

        key = (batch[0].json["eventID"], len(batch))
        if key not in self.cache:
            storage = CountingStorage()
            t = time.process_time()
            result = process_batch(
                decode_event({"Records": [r.json for r in batch]}),
                registry=self.registry,
                settings=self.settings,
                storage=storage,
                now=NOW,
            )
            self.cpu += time.process_time() - t
            self.records += len(batch)
            assert not result.failed and result.records_in == len(batch)
            self.cache[key] = storage.objects
        return self.cache[key]


def measure(records: Sequence[Record], rate: float, s: Setting, pipeline: Pipeline, seed: int) -> Outcome:
    phase = random.Random(seed).random() * POLL_SECONDS
    latencies: list[float] = []
    n_batches = objects = largest = capped = 0
    for sub in substreams(records, s.parallelization):
        cut = list(batches(sub, s, phase))
        for k, (batch, closed, was_capped) in enumerate(cut):
            n_batches += 1
            capped += was_capped
            objects += pipeline.objects(batch)
            largest = max(largest, ENVELOPE + sum(r.size for r in batch))
            if k < len(cut) - 1:
                latencies.extend(closed - r.arrived for r in batch)
    latencies = sorted(latencies) or [math.nan]  # nan: every sub-stream was one batch
    return Outcome(
        rate=rate,
        setting=s,
        records=len(records),
        batches=n_batches,
        objects=objects,
        latency_mean=statistics.fmean(latencies),
        latency_p99=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        largest_payload=largest,
        capped=capped,
    )


# --- report ------------------------------------------------------------------------------------


def table(outcomes: Sequence[Outcome]) -> str:
    lines = [
        "| rate (rec/s) | batch size | window (s) | parallelization | records/batch | objects per 100k records "
        "| added latency mean (s) | p99 (s) | largest batch (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        s = o.setting
        cap = f" ({o.capped} at 6 MB)" if o.capped else ""
        lines.append(
            f"| {o.rate:g} | {s.batch_size:,} | {s.window} | {s.parallelization} | {o.records_per_batch:,.0f} "
            f"| {o.objects_per_100k:,.0f} | {o.latency_mean:.1f} | {o.latency_p99:.1f} "
            f"| {o.largest_payload / 1e6:.2f}{cap} |"
        )
    return "\n".join(lines)


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=100_000, help="records of the stream at each rate")
    p.add_argument("--rates", default="10,100,1000", help="stream rates, records/second (comma-separated)")
    p.add_argument("--batch-sizes", default="100,1000,10000")
    p.add_argument("--windows", default="0,10,60,300", help="maximum batching windows, seconds")
    p.add_argument("--parallelization", default="1,10", help="parallelization factors")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--format", default="avro", choices=("avro", "parquet"))
    args = p.parse_args(argv)

    pipeline = Pipeline(args.format)
    outcomes = []
    for rate in [float(x) for x in args.rates.split(",")]:
        t = time.perf_counter()
        records, how = stream(args.records, rate, args.seed)
        sizes = [r.size for r in records]
        mean = statistics.fmean(sizes)
        span = max(r.arrived for r in records) - min(r.arrived for r in records)
        shards = len({r.shard for r in records})
        print(
            f"rate {rate:g} rec/s: {len(records):,} records over {span:,.0f} s on {shards} shards ({how}); "
            f"record in the event: mean {mean:,.0f} B, max {max(sizes):,} B -> {PAYLOAD_LIMIT // mean:,.0f} per 6 MB",
            file=sys.stderr,
        )
        for b in ints(args.batch_sizes):
            for w in ints(args.windows):
                for f in ints(args.parallelization):
                    outcomes.append(measure(records, rate, Setting(b, w, f), pipeline, args.seed))
        print(f"  measured in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    print(table(outcomes))
    if pipeline.records:
        speed = pipeline.records / pipeline.cpu
        print(
            f"\npipeline ({args.format}, in-memory store): {speed:,.0f} records per CPU-second "
            f"over the {pipeline.records:,} records of distinct batches"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
