"""S3 faults on a real HTTP path: boto3 -> FaultProxy (127.0.0.1) -> moto server.

The proxy injects, per request, 503 SlowDown, 500 InternalError, a TCP reset, or a stall
longer than the client's read timeout. Faults are decided from (seed, key, attempt number),
so a seed replays the same faults whatever order the parallel puts run in.

What must hold: boto3 retries with the bounded standard policy (the proxy sees at most
`max_attempts` requests per object); records of objects that were not written are reported
for retry and never as delivered; retrying the batch after the fault completes the archive
with exactly the keys and records of a fault-free run.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import random
import sys
import threading
from collections import Counter
from collections.abc import Callable
from urllib.parse import unquote

import pytest
from batchgen import TYPES, kinesis_item
from lakecheck import assert_conserved, read_lake
from memstore import MemoryStorage

from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event
from dmd.ingest.pipeline import BatchResult, process_batch
from dmd.lake.storage import S3Policy, S3Storage, s3_client

BUCKET = "dmd-test"
TOTALS: Counter[str] = Counter()  # reported at the end of the session (see conftest)
FAULTS = ("slowdown", "error500", "reset", "stall")


class PutPlan:
    """The proxy's plan: `decide(key, attempt) -> fault or None` for PUTs, attempts counted per key."""

    def __init__(self, decide: Callable[[str, int], str | None]) -> None:
        self.decide = decide
        self.attempts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, method: str, path: str) -> str | None:
        if method != "PUT":
            return None
        key = unquote(path.split("?")[0]).removeprefix(f"/{BUCKET}/")
        with self.lock:
            self.attempts[key] += 1
            attempt = self.attempts[key]
        return self.decide(key, attempt)


def timeout_for(fault: str) -> float:
    """The client's read timeout: below the proxy's 3 s stall so a stall times out, and
    generous otherwise, so a busy machine never turns a slow answer into an extra fault."""
    return 1.5 if fault == "stall" else 10


def seeded(seed: int, key: str, attempt: int) -> float:
    """A number in [0, 1) fixed by (seed, key, attempt): reproducible under parallel puts."""
    digest = hashlib.sha256(f"{seed}\0{key}\0{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def make_batch(seed: int, size: int = 12, bad_rate: float = 0.25) -> list:
    rng = random.Random(seed)
    kinds = ["valid", "valid-remove", "extra-attributes"]
    bad = ["invalid-json", "wrong-tag", "missing-required", "invalid-timestamp", "invalid-base64", "unknown-type"]
    return [
        kinesis_item(rng.choice(bad) if rng.random() < bad_rate else rng.choice(kinds), rng.choice(TYPES), i, rng)
        for i in range(seed * 1000, seed * 1000 + size)
    ]


def run(items: list, storage, settings: Settings) -> BatchResult:
    sources = decode_event({"Records": [i.record for i in items]})
    return process_batch(sources, registry=REGISTRY, settings=settings, storage=storage)


def bucket_keys(s3) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", ()))


def read_bucket(s3, settings: Settings):
    return read_lake(bucket_keys(s3), lambda k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read(), settings)


def fault_free(items: list, settings: Settings) -> set[str]:
    storage = MemoryStorage()
    assert not run(items, storage, settings).failed
    return set(storage.objects)


def key_records(items: list, settings: Settings) -> dict[str, set[str]]:
    """The sequence numbers each key holds, from a fault-free dry run (keys are deterministic)."""
    storage = MemoryStorage()
    assert not run(items, storage, settings).failed
    lake = read_lake(storage.objects, storage.get, settings)
    out = {key: {r["cdc"]["sequenceNumber"] for r in rows} for key, rows in lake.rows.items()}
    for e in lake.errors:
        out.setdefault(e.key, set()).add(e.sequence_number)
    return out


def check_reporting(result: BatchResult, items: list, s3, holds: dict[str, set[str]]) -> None:
    """Failed objects are absent and their records reported; delivered ones are present and
    none of their records is reported."""
    present = set(bucket_keys(s3))
    delivered = set().union(*(holds[d.key] for d in (*result.data, *result.errors)))
    failed = set(result.failed_sequence_numbers())
    assert failed == set().union(*(holds[f.key] for f in result.failed))
    assert not delivered & failed, "a record reported both delivered and failed"
    assert delivered | failed == {i.sequence_number for i in items}
    for key, records in holds.items():  # not written => reported (a write may also land after
        if key not in present:  # the client gave up on it: then it is reported and overwritten)
            assert records <= failed, f"{key} is not in the bucket but its records were not reported"
    for d in (*result.data, *result.errors):
        assert d.key in present, f"{d.key} reported delivered but it is not in the bucket"


def record_faults(proxy) -> None:
    TOTALS.update({f"injected:{k}": v for k, v in proxy.injected.items()})
    TOTALS["requests"] += len(proxy.requests)


@pytest.fixture
def storage_for(s3, fault_proxy):
    def make(policy: S3Policy) -> S3Storage:
        return S3Storage(BUCKET, client=s3_client(fault_proxy.url, policy))

    return make


# --- bounded retries -----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_on_every_attempt_is_retried_exactly_max_attempts_times_then_reported(
    fault, s3, fault_proxy, storage_for
):
    settings = Settings(format="avro")
    items = make_batch(1, size=8, bad_rate=0.3)
    policy = S3Policy(max_attempts=3, connect_timeout=5, read_timeout=timeout_for(fault))
    fault_proxy.plan = plan = PutPlan(lambda key, attempt: fault)
    result = run(items, storage_for(policy), settings)
    record_faults(fault_proxy)

    expected_keys = fault_free(items, settings)
    # the batch's touched marker goes first; once it has failed, no data object is attempted
    data_keys = {k for k in expected_keys if k.startswith(settings.prefix + "/")}
    assert set(plan.attempts) == expected_keys - data_keys
    assert max(plan.attempts.values()) <= 3, "bounded: at most max_attempts requests per object"
    if fault != "stall":  # a timed-out attempt may reach the proxy after the client gave up on it
        assert set(plan.attempts.values()) == {3}, "each object is tried exactly max_attempts times"
    assert result.data == () and result.errors == ()
    assert result.failed_sequence_numbers() == [i.sequence_number for i in items]
    assert bucket_keys(s3) == []


@pytest.mark.parametrize("fault", FAULTS)
def test_transient_faults_are_retried_to_success(fault, s3, fault_proxy, storage_for):
    settings = Settings()
    items = make_batch(2, size=8)
    policy = S3Policy(max_attempts=3, connect_timeout=5, read_timeout=timeout_for(fault))
    fault_proxy.plan = plan = PutPlan(lambda key, attempt: fault if attempt < 3 else None)
    result = run(items, storage_for(policy), settings)
    record_faults(fault_proxy)

    assert result.failed == ()
    assert set(plan.attempts.values()) == {3}, "two faults, then the third attempt succeeds"
    assert set(bucket_keys(s3)) == fault_free(items, settings)
    assert_conserved(items, read_bucket(s3, settings))


# --- random faults at random points of a batch, then a retry ---------------------------------------


@pytest.mark.parametrize("seed", range(1, 9))
def test_random_faults_then_a_retry_completes_the_archive_without_duplicates(seed, s3, fault_proxy, storage_for):
    settings = Settings(format="parquet" if seed % 2 else "avro")
    policy = S3Policy(max_attempts=2, connect_timeout=5, read_timeout=timeout_for("stall"))
    kinds = ("slowdown", "error500", "reset", "slowdown", "error500", "reset", "stall")

    def decide(key: str, attempt: int) -> str | None:
        x = seeded(seed, key, attempt)
        return kinds[int(x / 0.5 * len(kinds))] if x < 0.5 else None

    batches = [make_batch(seed * 10 + b, size=10) for b in range(3)]
    holds = [key_records(items, settings) for items in batches]
    fault_proxy.plan = plan = PutPlan(decide)
    storage = storage_for(policy)
    first = [run(items, storage, settings) for items in batches]
    record_faults(fault_proxy)
    for items, result, held in zip(batches, first, holds, strict=True):
        check_reporting(result, items, s3, held)
        assert max(plan.attempts.values()) <= policy.max_attempts
    TOTALS["records_reported_for_retry"] += sum(len(r.failed_sequence_numbers()) for r in first)

    fault_proxy.plan = lambda method, path: None
    for items, result in zip(batches, first, strict=True):
        if result.failed:  # Lambda retries a batch that reported failures
            assert run(items, storage, settings).failed == ()
    expected = set().union(*(fault_free(items, settings) for items in batches))
    assert set(bucket_keys(s3)) == expected, "the retried archive has other objects than a fault-free run"
    all_items = [i for items in batches for i in items]
    counts = assert_conserved(all_items, read_bucket(s3, settings))
    TOTALS["records_conserved"] += sum(counts.values())
    TOTALS["duplicate_records"] += 0  # assert_conserved fails on any duplicate


def sample_batch(copies: int) -> list:
    """The AWS-shaped sample batch (one record per type, one partition date each), repeated
    under new sequence numbers: groups of `copies` records, interleaved in stream order."""
    import base64
    import copy
    from pathlib import Path

    from batchgen import Item, seq_str

    event = json.loads((Path(__file__).resolve().parents[1] / "events" / "kinesis-event.json").read_text())
    items = []
    for n in range(copies):
        for i, template in enumerate(event["Records"]):
            record = copy.deepcopy(template)
            seq = seq_str(500 + n * 10 + i)
            record["kinesis"]["sequenceNumber"] = seq
            payload = base64.b64decode(record["kinesis"]["data"])
            items.append(Item("valid", "data", record, seq, payload=payload))
    return items


def test_lambda_partial_retry_from_the_lowest_failed_record_loses_nothing(s3, fault_proxy, storage_for):
    """Kinesis + ReportBatchItemFailures: Lambda re-sends the batch from the lowest reported
    sequence number on. Records after it that were already archived are archived again, under
    another key (their group changed): at-least-once, never lost. Counted, not hidden."""
    settings = Settings()
    items = sample_batch(copies=4)  # demand, notification, event, sale, demand, ...
    policy = S3Policy(max_attempts=2, connect_timeout=5, read_timeout=10)
    fault_proxy.plan = PutPlan(lambda key, attempt: "error500" if "/notification/" in key else None)
    storage = storage_for(policy)
    result = run(items, storage, settings)
    record_faults(fault_proxy)
    failed = result.failed_sequence_numbers()
    assert failed == [i.sequence_number for i in items[1::4]]
    suffix = items[1:]  # Lambda's retry: from the lowest failed record on

    fault_proxy.plan = lambda method, path: None
    assert run(suffix, storage, settings).failed == ()
    lake = read_bucket(s3, settings)
    data = lake.data_counts
    assert all(data[i.sequence_number] >= 1 for i in items), "a record was lost"
    assert data[items[0].sequence_number] == 1  # before the lowest failure: not re-sent
    assert all(data[i.sequence_number] == 1 for i in items[1::4]), "the failed group is written once"
    duplicates = sum(n - 1 for n in data.values())
    # event and sale groups lie wholly in the re-sent suffix: same records, same key, overwritten.
    # The demand group lost its first record in the suffix: its other 3 were archived again.
    assert duplicates == 3
    TOTALS["lambda_suffix_duplicate_records"] += duplicates


# --- error documents that cannot be written --------------------------------------------------------


def load_handler(monkeypatch, endpoint: str, **env: str):
    monkeypatch.setenv("DMD_BUCKET", BUCKET)
    monkeypatch.setenv("DMD_S3_ENDPOINT", endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("dmd.ingest.handler", None)
    return importlib.import_module("dmd.ingest.handler")


def test_error_document_delivery_failing_is_reported_for_retry_then_completed(s3, fault_proxy, monkeypatch):
    handler = load_handler(monkeypatch, fault_proxy.url, DMD_S3_MAX_ATTEMPTS="2", DMD_S3_READ_TIMEOUT="10")
    settings = handler.CONFIG.settings
    items = make_batch(5, size=12, bad_rate=0.4)
    bad = [i.sequence_number for i in items if i.expect == "error"]
    assert bad and len(bad) < len(items)
    fault_proxy.plan = plan = PutPlan(lambda key, attempt: "slowdown" if key.startswith("errors/") else None)
    event = {"Records": [i.record for i in items]}

    response = handler.handler(event, None)
    record_faults(fault_proxy)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == bad
    assert all(n == 2 for k, n in plan.attempts.items() if k.startswith("errors/"))
    assert bucket_keys(s3) and not [k for k in bucket_keys(s3) if k.startswith("errors/")]

    fault_proxy.plan = lambda method, path: None
    assert handler.handler(event, None) == {"batchItemFailures": []}
    assert set(bucket_keys(s3)) == fault_free(items, settings)
    assert_conserved(items, read_bucket(s3, settings))


def test_an_unreadable_record_whose_error_document_fails_fails_the_whole_batch(s3, fault_proxy, monkeypatch):
    """It has no sequence number to report, so the handler raises: Lambda retries the batch."""
    handler = load_handler(monkeypatch, fault_proxy.url, DMD_S3_MAX_ATTEMPTS="1")
    items = make_batch(6, size=4, bad_rate=0)
    unreadable = kinesis_item("missing-sequence-number", "demand", 99, random.Random(1))
    fault_proxy.plan = PutPlan(lambda key, attempt: "error500" if key.startswith("errors/") else None)
    with pytest.raises(handler.UnreportableFailure):
        handler.handler({"Records": [i.record for i in [*items, unreadable]]}, None)
    record_faults(fault_proxy)
    fault_proxy.plan = lambda method, path: None
    assert handler.handler({"Records": [i.record for i in [*items, unreadable]]}, None) == {"batchItemFailures": []}
    assert_conserved([*items, unreadable], read_bucket(s3, handler.CONFIG.settings))


def test_handler_with_a_stalled_server_times_out_within_its_configured_policy(s3, fault_proxy, monkeypatch):
    handler = load_handler(monkeypatch, fault_proxy.url, DMD_S3_MAX_ATTEMPTS="2", DMD_S3_READ_TIMEOUT="1.5")
    items = make_batch(8, size=6, bad_rate=0)
    fault_proxy.plan = plan = PutPlan(lambda key, attempt: "stall")
    response = handler.handler({"Records": [i.record for i in items]}, None)
    record_faults(fault_proxy)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [i.sequence_number for i in items]
    assert min(plan.attempts.values()) >= 1 and max(plan.attempts.values()) <= 2
    assert bucket_keys(s3) == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DMD_S3_MAX_ATTEMPTS": "0"}, "DMD_S3_MAX_ATTEMPTS '0' must be a number from 1 to 10"),
        ({"DMD_S3_MAX_ATTEMPTS": "2.5"}, "DMD_S3_MAX_ATTEMPTS '2.5' must be"),
        ({"DMD_S3_READ_TIMEOUT": "soon"}, "DMD_S3_READ_TIMEOUT 'soon' must be"),
        ({"DMD_S3_CONNECT_TIMEOUT": "-1"}, "DMD_S3_CONNECT_TIMEOUT '-1' must be"),
    ],
)
def test_a_bad_retry_policy_fails_at_cold_start(monkeypatch, aws_env, env, message):
    from dmd.ingest.config import ConfigError

    with pytest.raises(ConfigError, match="invalid configuration") as err:
        load_handler(monkeypatch, "http://127.0.0.1:1", **env)
    assert message in str(err.value)


def test_the_default_policy_is_four_attempts_in_total(monkeypatch, aws_env):
    handler = load_handler(monkeypatch, "http://127.0.0.1:1")
    assert handler.CONFIG.s3_policy == S3Policy(4, 5, 20)
    retries = handler.STORAGE.client.meta.config.retries
    assert retries == {"mode": "standard", "total_max_attempts": 4}
