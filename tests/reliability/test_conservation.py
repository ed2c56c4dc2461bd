"""Conservation under bad input: every record of a batch ends in exactly one data container or
exactly one error document, whatever the batch holds.

Batches mix valid records of every type (built from the schemas' FieldInfo) with malformed
ones of every kind in `batchgen`. Per batch: processing returns, every input record is found
exactly once (containers read back with fastavro/pyarrow, error documents with json, matched
by sequence number), valid records are archived and malformed ones are not, error documents
keep the original text byte for byte, and no key leaves its prefix.

Example counts scale with DMD_RELIABILITY_SCALE (default 1: 1,500 + 500 in-memory examples
and 200 through the Lambda handler and a moto S3 server).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from batchgen import BAD_KINDS, DDB_BAD_KINDS, GOOD_KINDS, TYPES, ddb_item, kinesis_item
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lakecheck import assert_conserved, read_lake
from memstore import MemoryStorage

from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event
from dmd.ingest.pipeline import process_batch

SCALE = float(os.environ.get("DMD_RELIABILITY_SCALE", "1"))
TOTALS: Counter[str] = Counter()  # reported at the end of the session (see conftest)

# Huge records are rare (1 MB each); ordinary valid and malformed ones share the rest.
_COMMON_GOOD = tuple(k for k in GOOD_KINDS if k != "huge-string")
_COMMON_BAD = tuple(k for k in BAD_KINDS if k != "huge-bad-string")
KINESIS_KINDS = _COMMON_GOOD * 4 + _COMMON_BAD + ("huge-string", "huge-bad-string")
DDB_KINDS = _COMMON_GOOD * 3 + DDB_BAD_KINDS
PREFIXES = [("archive", "errors"), ("lake/v1", "lake/errors"), ("a.b_c", "err-x")]


@st.composite
def configurations(draw) -> Settings:
    fmt = draw(st.sampled_from(["parquet", "avro"]))
    prefix, errors_prefix = draw(st.sampled_from(PREFIXES))
    return Settings(format=fmt, prefix=prefix, errors_prefix=errors_prefix)


@st.composite
def kinesis_batches(draw, max_size: int = 12):
    kinds = draw(st.lists(st.sampled_from(KINESIS_KINDS), min_size=1, max_size=max_size))
    types = draw(st.lists(st.sampled_from(TYPES), min_size=len(kinds), max_size=len(kinds)))
    rng = draw(st.randoms(use_true_random=False))
    start = draw(st.integers(0, 1000))
    return [kinesis_item(k, t, start + i, rng) for i, (k, t) in enumerate(zip(kinds, types, strict=True))]


@st.composite
def ddb_batches(draw, max_size: int = 10):
    kinds = draw(st.lists(st.sampled_from(DDB_KINDS), min_size=1, max_size=max_size))
    types = draw(st.lists(st.sampled_from(TYPES), min_size=len(kinds), max_size=len(kinds)))
    rng = draw(st.randoms(use_true_random=False))
    return [ddb_item(k, t, 100 + i, rng) for i, (k, t) in enumerate(zip(kinds, types, strict=True))]


def run_in_memory(items, config: Settings) -> dict[str, int]:
    storage = MemoryStorage()
    event = {"Records": [i.record for i in items]}
    result = process_batch(decode_event(event), registry=REGISTRY, settings=config, storage=storage)
    assert result.records_in == len(items)
    assert result.failed == ()
    assert sum(d.records for d in result.data) + result.error_records == len(items)
    assert len(storage.puts) == len(set(storage.puts)), "a key was written twice in one batch"
    lake = read_lake(storage.objects, storage.get, config)
    counts = assert_conserved(items, lake)
    TOTALS["examples"] += 1
    TOTALS["records"] += len(items)
    TOTALS.update({f"kind:{i.kind}": 1 for i in items})
    return counts


@settings(max_examples=int(1500 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=kinesis_batches(), config=configurations())
def test_kinesis_batches_conserve_every_record(items, config):
    run_in_memory(items, config)


@settings(max_examples=int(500 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=ddb_batches(), config=configurations())
def test_dynamodb_streams_batches_conserve_every_record(items, config):
    run_in_memory(items, config)


@pytest.mark.parametrize("kind", sorted(set(BAD_KINDS)))
def test_every_malformation_lands_in_an_error_document(kind):
    """Each kind on its own, for every type (the property tests mix them)."""
    import random

    for type_name in TYPES:
        items = [
            kinesis_item(kind, type_name, 1, random.Random(7)),
            kinesis_item("valid", type_name, 2, random.Random(8)),
        ]
        run_in_memory(items, Settings())


@pytest.mark.parametrize("kind", sorted(set(DDB_BAD_KINDS)))
def test_every_dynamodb_streams_malformation_lands_in_an_error_document(kind):
    import random

    for type_name in TYPES:
        items = [ddb_item(kind, type_name, 1, random.Random(3)), ddb_item("valid", type_name, 2, random.Random(4))]
        run_in_memory(items, Settings(format="avro"))


# --- the same property through the Lambda handler and a real S3 API (moto server) ---------------


@pytest.fixture
def lambda_handler(s3, moto_server, monkeypatch):
    import importlib
    import sys

    monkeypatch.setenv("DMD_BUCKET", "dmd-test")
    monkeypatch.setenv("DMD_S3_ENDPOINT", moto_server.url)
    monkeypatch.setenv("DMD_FORMAT", "avro")
    sys.modules.pop("dmd.ingest.handler", None)
    return importlib.import_module("dmd.ingest.handler")


def _empty_bucket(s3) -> None:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="dmd-test")
    keys = [{"Key": o["Key"]} for p in pages for o in p.get("Contents", ())]
    if keys:
        s3.delete_objects(Bucket="dmd-test", Delete={"Objects": keys})


@settings(
    max_examples=int(200 * SCALE),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(items=kinesis_batches(max_size=8))
def test_handler_on_s3_conserves_every_record(lambda_handler, s3, items):
    _empty_bucket(s3)
    response = lambda_handler.handler({"Records": [i.record for i in items]}, None)
    assert response == {"batchItemFailures": []}
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="dmd-test")
    keys = [o["Key"] for p in pages for o in p.get("Contents", ())]

    def get(key: str) -> bytes:
        return s3.get_object(Bucket="dmd-test", Key=key)["Body"].read()

    lake = read_lake(keys, get, lambda_handler.CONFIG.settings)
    assert_conserved(items, lake)
    TOTALS["handler_examples"] += 1
    TOTALS["handler_records"] += len(items)
