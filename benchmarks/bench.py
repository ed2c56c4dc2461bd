"""Side-by-side benchmark: dmd's runtime against a straightforward reference implementation.

    .venv/bin/python benchmarks/bench.py                  # 200,000 records, 3 rounds
    .venv/bin/python benchmarks/bench.py --records 20000  # a quick check

Input: `dmd sample` records (fixed seed; the one synthetic-data generator, `dmd.tools.synth`),
cut into Lambda events of 100 and of 10,000 records.

Ours runs the real `process_batch` (or, for "parse", the real `parse_batch`) on an in-memory
store. The reference is written the way a competent engineer would first write it: per record
base64 + json.loads + boto3's TypeDeserializer, plain dicts, then `fastavro.writer` per group
for Avro and `pa.Table.from_pylist` + `pq.write_table` per group for Parquet. Both run in the
same process, alternating, for several rounds; the table shows medians of records/s.

The floor is what no implementation can avoid: base64 + orjson.loads of every record (parse),
and pyarrow writing already-built Arrow tables of the same groups with the same writer options
(Parquet). Peak RSS and the handler's cold import are measured in fresh subprocesses.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gc
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
SEED = 6
BATCH_SIZES = (100, 10_000)
NOW = datetime(2024, 3, 1, tzinfo=UTC)
# Targets of issue 6: minimum ratio ours/reference.
TARGETS = {
    ("parse", 100): 2.5,
    ("avro", 100): 2.0,
    ("parquet", 100): 1.5,
    ("parse", 10_000): 2.5,
    ("avro", 10_000): 2.7,
    ("parquet", 10_000): 3.0,
}
COLD_IMPORT_TARGET_MS = 300


# --- input ---------------------------------------------------------------------------------------


def kinesis_records(n: int, seed: int) -> tuple[list[dict[str, Any]], str]:
    """n Lambda Kinesis records of `dmd sample`, the same for the same (n, seed), and where
    they come from. Cached in the temp folder (keyed by the generator's source), since
    generating 200,000 records takes longer than a benchmark round."""
    from dmd.tools import malform, sample, synth

    digest = hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (sample, synth, malform))).hexdigest()
    cache = Path(tempfile.gettempdir()) / f"dmd-bench-{n}-{seed}-{digest[:12]}.json"
    if cache.exists():
        return orjson.loads(cache.read_bytes()), f"dmd sample (cached in {cache})"
    records = [r for event in sample.Sampler(n, seed, batch_size=10_000).events() for r in event["Records"]]
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(records))
    tmp.replace(cache)
    return records, "dmd sample"


def events_of(records: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    return [{"Records": records[i : i + size]} for i in range(0, len(records), size)]


# --- ours ----------------------------------------------------------------------------------------


class MemoryStorage:
    max_parallel_puts = 1  # answers at once: no thread pool (see pipeline.process_batch)

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes, content_type: str) -> str:
        self.objects[key] = body
        return f"mem://{key}"


def ours(fmt: str) -> Callable[[dict[str, Any]], int]:
    """One Lambda event -> records handled, through the real runtime."""
    from dmd.generated import REGISTRY
    from dmd.ingest.config import Settings
    from dmd.ingest.envelope import decode_event
    from dmd.ingest.pipeline import gc_paused, parse_batch, process_batch

    settings = Settings(format="parquet" if fmt == "parse" else fmt)
    storage = MemoryStorage()

    if fmt == "parse":

        def run(event: dict[str, Any]) -> int:
            with gc_paused():  # as the handler runs a batch
                groups, errors = parse_batch(decode_event(event), registry=REGISTRY, settings=settings)
            return sum(len(g) for g in groups.values()) + len(errors)

        return run

    def run(event: dict[str, Any]) -> int:
        storage.objects.clear()
        with gc_paused():  # as the handler runs a batch
            result = process_batch(decode_event(event), registry=REGISTRY, settings=settings, storage=storage, now=NOW)
        return result.records_in

    return run


# --- the reference -------------------------------------------------------------------------------


class Reference:
    """The first version a competent engineer would write: generic, dict-based, schema-driven."""

    def __init__(self, fmt: str) -> None:
        from boto3.dynamodb.types import TypeDeserializer

        from dmd.generated import REGISTRY

        self.fmt = fmt
        self.deserializer = TypeDeserializer()
        self.avro = {t: dict(s.avro_schema) for t, s in REGISTRY.items()}
        self.pii = {t: [f.path for f in s.fields if f.pii] for t, s in REGISTRY.items()}
        self.dates = {}
        for t in REGISTRY:
            raw = json.loads((ROOT / "schemas" / f"{t}.json").read_text())
            self.dates[t] = raw["dmd"]["partitionDate"]["paths"]
        self.objects: dict[str, bytes] = {}
        if fmt == "avro":
            import fastavro

            self.parsed = {t: fastavro.parse_schema(s) for t, s in self.avro.items()}
        if fmt == "parquet":
            self.arrow = {t: s.arrow_schema() for t, s in REGISTRY.items()}

    def conform(self, value: Any, schema: Any) -> Any:
        """A deserialized DynamoDB value -> the Python value the Avro/Arrow writers expect."""
        if value is None:  # absent; a required record still exists (the pipeline adds to it)
            required_record = isinstance(schema, dict) and schema["type"] == "record"
            return self.conform({}, schema) if required_record else None
        if isinstance(schema, list):  # ["null", T]
            return self.conform(value, schema[1])
        if isinstance(schema, dict):
            t, logical = schema["type"], schema.get("logicalType")
            if logical in ("timestamp-millis", "timestamp-micros"):
                return datetime.fromisoformat(value)
            if logical == "date":
                return date.fromisoformat(value)
            if logical == "decimal":
                return Decimal(value)
            if t == "record":
                return {f["name"]: self.conform(value.get(f["name"]), f["type"]) for f in schema["fields"]}
            if t == "array":
                return [self.conform(v, schema["items"]) for v in value]
            if t == "enum":
                return value
            return self.conform(value, t)
        if schema in ("int", "long"):
            return int(value)
        return value

    def parse_record(self, r: dict[str, Any]) -> tuple[str, date, dict[str, Any]]:
        doc = json.loads(base64.b64decode(r["kinesis"]["data"]))
        operation = doc["eventName"]
        ddb = doc["dynamodb"]
        image = ddb["OldImage"] if operation == "REMOVE" else ddb["NewImage"]
        item = {k: self.deserializer.deserialize(v) for k, v in image.items()}
        type_name = item["type"]
        rec = self.conform(item, self.avro[type_name])
        removed = operation == "REMOVE"
        change_time = datetime.fromtimestamp(ddb["ApproximateCreationDateTime"] / 1000, UTC)
        rec["isDeleted"] = removed
        rec["date"]["deleted"] = change_time if removed else None
        rec["reference"] = f"{type_name}:{rec['id']}"
        if "system" in rec:
            rec["system"] = "demand-capture"
        user = doc.get("userIdentity") or {}
        rec["cdc"] = {
            "operation": operation,
            "ttlExpired": user.get("principalId") == "dynamodb.amazonaws.com",
            "sequenceNumber": r["kinesis"]["sequenceNumber"],
            "changeTime": change_time,
            "eventId": doc.get("eventID", ""),
        }
        if removed:
            for path in self.pii[type_name]:
                *parents, last = path.split(".")
                target = rec
                for p in parents:
                    target = target.get(p) or {}
                if target.get(last) is not None:
                    target[last] = "[redacted]"
        return type_name, self.partition_date(type_name, rec, change_time), rec

    def partition_date(self, type_name: str, rec: dict[str, Any], fallback: datetime) -> date:
        for path in self.dates[type_name]:
            v: Any = rec
            for p in path.split("."):
                v = v.get(p) if v is not None else None
            if v is not None:
                return v.date()
        return fallback.date()  # as the runtime does: the change time stands in

    def parse(self, event: dict[str, Any]) -> tuple[dict[tuple[str, date], list[dict[str, Any]]], list[Any]]:
        groups: dict[tuple[str, date], list[dict[str, Any]]] = {}
        errors = []
        for r in event["Records"]:
            try:
                type_name, day, rec = self.parse_record(r)
            except Exception as e:
                errors.append((str(e), r))
                continue
            groups.setdefault((type_name, day), []).append(rec)
        return groups, errors

    def run(self, event: dict[str, Any]) -> int:
        groups, errors = self.parse(event)
        if self.fmt == "parse":
            return sum(len(g) for g in groups.values()) + len(errors)
        self.objects.clear()
        for (type_name, day), records in groups.items():
            key = f"archive/{self.fmt}/{type_name}/partition_date={day}/{uuid.uuid4()}.{self.fmt}"
            try:
                self.objects[key] = self.encode(type_name, records)
            except Exception as e:  # the whole group goes to the errors
                errors.append((str(e), records))
        for e in errors:
            self.objects[f"errors/{uuid.uuid4()}.json"] = json.dumps({"error": e[0]}, default=str).encode()
        return len(event["Records"])

    def encode(self, type_name: str, records: list[dict[str, Any]]) -> bytes:
        buf = io.BytesIO()
        if self.fmt == "avro":
            import fastavro

            fastavro.writer(buf, self.parsed[type_name], records, codec="deflate")
            return buf.getvalue()
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records, schema=self.arrow[type_name]), buf, compression="snappy")
        return buf.getvalue()


def reference(fmt: str) -> Callable[[dict[str, Any]], int]:
    return Reference(fmt).run


# --- the floor -----------------------------------------------------------------------------------


def floor_parse() -> Callable[[dict[str, Any]], int]:
    loads, a2b = orjson.loads, binascii.a2b_base64

    def run(event: dict[str, Any]) -> int:
        for r in event["Records"]:
            loads(a2b(r["kinesis"]["data"]))
        return len(event["Records"])

    return run


def floor_parquet(events: list[dict[str, Any]]) -> tuple[Callable[[Any], int], list[Any]]:
    """pyarrow writing prebuilt tables of the same groups, with our writer options."""
    from dmd.generated import REGISTRY
    from dmd.ingest.config import Settings
    from dmd.ingest.envelope import decode_event
    from dmd.ingest.pipeline import parse_batch
    from dmd.lake.encode import write_parquet

    settings = Settings(format="parquet")
    prebuilt = []
    for event in events:
        groups, _ = parse_batch(decode_event(event), registry=REGISTRY, settings=settings)
        tables = [(REGISTRY[t].to_arrow([p.record for p in items]), len(items)) for (t, _), items in groups.items()]
        prebuilt.append((tables, len(event["Records"])))

    def run(batch: Any) -> int:
        tables, n = batch
        for table, _ in tables:
            write_parquet(table, settings.codec)
        return n

    return run, prebuilt


# --- measuring -----------------------------------------------------------------------------------


def timed(run: Callable[[Any], int], batches: list[Any]) -> float:
    """records per CPU-second over all batches.

    CPU time of the process (all threads), not wall time: on a shared machine the wall clock
    also counts the time other processes hold the cores, which is noise; CPU time is what a
    Lambda function or a backfill pays for."""
    gc.collect()
    n = 0
    t = time.process_time()
    for b in batches:
        n += run(b)
    return n / (time.process_time() - t)


def per_file_overhead(events: list[dict[str, Any]]) -> dict[str, float]:
    """ms per Parquet file of one tiny group, default pyarrow options vs ours."""
    import pyarrow.parquet as pq

    from dmd.generated import REGISTRY
    from dmd.ingest.config import Settings
    from dmd.ingest.envelope import decode_event
    from dmd.ingest.pipeline import parse_batch
    from dmd.lake.encode import write_parquet

    groups, _ = parse_batch(decode_event(events[0]), registry=REGISTRY, settings=Settings())
    (type_name, _), items = next(iter(groups.items()))
    table = REGISTRY[type_name].to_arrow([items[0].record])
    out = {}
    for name, write in (
        ("default", lambda: pq.write_table(table, io.BytesIO(), compression="snappy")),
        ("ours", lambda: write_parquet(table, "snappy")),
    ):
        samples = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(200):
                write()
            samples.append((time.perf_counter() - t) / 200 * 1000)
        out[name] = statistics.median(samples)
    return out


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DMD_BUCKET="bench-bucket",
        DMD_FORMAT="parquet",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        PYTHONDONTWRITEBYTECODE="",
    )
    return env


COLD_IMPORT = """
import sys, time
t = time.perf_counter()
import dmd.ingest.handler
ms = (time.perf_counter() - t) * 1000
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"pyarrow", "fastavro", "jinja2", "jsonschema", "click"})
t = time.perf_counter()
dmd.ingest.handler.STORAGE.client  # made on the first put
client_ms = (time.perf_counter() - t) * 1000
print(ms, client_ms, ",".join(heavy) or "-")
"""


def cold_import(times: int) -> tuple[float, float, str]:
    """Median ms of importing the handler (boto3 included), median ms of creating its S3
    client afterwards (on the first put), and the heavy modules the import loaded."""
    imports, clients, heavy = [], [], ""
    for _ in range(times):
        out = subprocess.run(
            [sys.executable, "-c", COLD_IMPORT], env=child_env(), check=True, capture_output=True, text=True
        ).stdout.split()
        imports.append(float(out[0]))
        clients.append(float(out[1]))
        heavy = "" if out[2] == "-" else out[2]
    return statistics.median(imports), statistics.median(clients), heavy


def _vm(field: str) -> int:
    """kB of a /proc/self/status field."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_child(impl: str, fmt: str, path: str) -> None:
    """In a fresh process: MB of RSS added at peak while processing the 10,000-record event."""
    event = orjson.loads(Path(path).read_bytes())
    run = ours(fmt) if impl == "ours" else reference(fmt)
    run({"Records": event["Records"][:100]})  # imports and caches, not measured
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base = _vm("VmRSS")
    except OSError:
        base = _vm("VmHWM")
    run(event)
    rss = (_vm("VmHWM") - base) / 1024
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    run(event)
    heap = tracemalloc.get_traced_memory()[1] / 2**20
    print(rss, heap)


def peak_rss(impl: str, fmt: str, path: str) -> tuple[float, float]:
    """(peak RSS added, peak Python heap by tracemalloc), MB, in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", impl, fmt, path],
        env=child_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    rss, heap = out.stdout.split()
    return float(rss), float(heap)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--imports", type=int, default=7, help="cold imports to take the median of")
    ap.add_argument("--only", choices=("parse", "avro", "parquet"), action="append", help="formats to run")
    ap.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return

    t = time.perf_counter()
    records, source = kinesis_records(args.records, SEED)
    print(f"input: {len(records):,} records from {source}, seed {SEED} ({time.perf_counter() - t:.1f} s)")
    events = {size: events_of(records, size) for size in BATCH_SIZES}
    formats = args.only or ["parse", "avro", "parquet"]

    impls: dict[tuple[str, int], dict[str, tuple[Callable[[Any], int], list[Any]]]] = {}
    for size in BATCH_SIZES:
        for fmt in formats:
            impls[fmt, size] = {"ours": (ours(fmt), events[size]), "reference": (reference(fmt), events[size])}
            if fmt == "parse":
                impls[fmt, size]["floor"] = (floor_parse(), events[size])
            if fmt == "parquet":
                impls[fmt, size]["floor"] = floor_parquet(events[size])
    samples: dict[tuple[str, int, str], list[float]] = {}
    for r in range(args.rounds):
        for (fmt, size), runs in impls.items():
            order = list(runs) if r % 2 == 0 else list(reversed(runs))  # alternate who goes first
            for name in order:
                run, batches = runs[name]
                samples.setdefault((fmt, size, name), []).append(timed(run, batches))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    med = {k: statistics.median(v) for k, v in samples.items()}
    print()
    print(f"records per CPU-second, median of {args.rounds} rounds; ours and the reference alternate in one process")
    print(f"{'':18}{'ours':>10}{'reference':>11}{'ratio':>8}{'target':>8}{'':3}{'floor':>10}{'ours/floor':>12}")
    for fmt, size in impls:
        o, ref = med[fmt, size, "ours"], med[fmt, size, "reference"]
        ratio = o / ref
        target = TARGETS[fmt, size]
        ok = "ok" if ratio >= target else "MISS"
        floor = med.get((fmt, size, "floor"))
        floor_cols = f"{floor:>10,.0f}{o / floor:>12.0%}" if floor else ""
        label = f"{'parse+' + fmt if fmt != 'parse' else 'parse'} b{size if size < 1000 else str(size // 1000) + 'k'}"
        print(f"{label:18}{o:>10,.0f}{ref:>11,.0f}{ratio:>7.2f}x{target:>7.1f}x {ok:<4}{floor_cols}")

    if "parquet" in formats:
        overhead = per_file_overhead(events[100])
        print(
            f"\nParquet per-file overhead (one 1-row file): pyarrow defaults {overhead['default']:.3f} ms, "
            f"ours {overhead['ours']:.3f} ms"
        )

    big = events[BATCH_SIZES[-1]][0]
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        f.write(orjson.dumps(big))
        f.flush()
        print(
            f"\npeak memory added while processing one {len(big['Records']):,}-record event, MB "
            "(fresh process each; RSS high-water mark, and the Python heap's peak by tracemalloc)"
        )
        for fmt in [f for f in formats if f != "parse"]:
            (o, oh), (ref, rh) = peak_rss("ours", fmt, f.name), peak_rss("reference", fmt, f.name)
            print(
                f"  {fmt:8} RSS ours {o:6.1f}  reference {ref:6.1f}  {'ok' if o <= ref else 'MISS':4}   "
                f"heap ours {oh:6.1f}  reference {rh:6.1f}  {'ok' if oh <= rh else 'MISS'}"
            )

    ms, client_ms, heavy = cold_import(args.imports)
    verdict = "ok" if ms <= COLD_IMPORT_TARGET_MS else "MISS"
    print(
        f"\ncold import of dmd.ingest.handler incl. boto3 (fresh interpreter, median of {args.imports}): "
        f"{ms:.0f} ms (target <= {COLD_IMPORT_TARGET_MS}) {verdict}; heavy modules loaded: {heavy or 'none'}\n"
        f"  + the S3 client, created on the first put: {client_ms:.0f} ms (import + client: {ms + client_ms:.0f} ms)"
    )


if __name__ == "__main__":
    main()
