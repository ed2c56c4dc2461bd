"""`dmd backfill s3://.../AWSDynamoDB/<export-id>/ --lake s3://...` against a real S3 API (moto's
server on 127.0.0.1), worker processes included; objects read back with pyarrow and DuckDB."""

from __future__ import annotations

import io
import json
from collections import Counter

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dmd.ingest.backfill import Plan, backfill_file, open_export
from dmd.ingest.config import Settings
from dmd.lake import layout
from dmd.lake.storage import open_storage
from dmd.tools.cli import main
from dmd.tools.tableexport import FULL, INCREMENTAL, write_export


def keys(s3, bucket: str, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", ()))


def parquet_rows(s3, bucket: str, prefix: str) -> list[dict]:
    rows = []
    for key in keys(s3, bucket, prefix):
        if key.endswith(".parquet"):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            rows += pq.read_table(io.BytesIO(body)).to_pylist()
    return rows


def test_backfill_from_s3_to_s3_in_worker_processes(s3, moto_server, tmp_path):
    s3.create_bucket(Bucket="exports")
    stats = write_export(
        open_storage("s3://exports", moto_server.url),
        "tables/demand-capture",
        records=800,
        seed=31,
        kind=FULL,
        files=3,
        bad_fraction=0.02,
    )
    export = f"s3://exports/{stats.folder}"
    args = ["backfill", export, "--lake", "s3://dmd-test/lake", "--s3-endpoint", moto_server.url, "--workers", "2"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = parquet_rows(s3, "dmd-test", "lake/archive/")
    assert Counter(r["type"] for r in rows) == stats.by_type
    assert len(keys(s3, "dmd-test", "lake/errors/")) == len(stats.bad)
    done = keys(s3, "dmd-test", "lake/" + layout.backfill_prefix("_dmd-state", stats.export_id) + "done/")
    assert len(done) == stats.files
    assert keys(s3, "dmd-test", "lake/_dmd-state/touched/")  # the compactor will find the partitions
    # DuckDB reads an object as written
    key = next(k for k in keys(s3, "dmd-test", "lake/archive/") if k.endswith(".parquet"))
    body = s3.get_object(Bucket="dmd-test", Key=key)["Body"].read()
    (tmp_path / "object.parquet").write_bytes(body)
    path = tmp_path / "object.parquet"
    sql = f"SELECT count(*), count(*) FILTER (cdc.operation = 'SNAPSHOT') FROM read_parquet('{path}')"
    total, snapshots = duckdb.connect().sql(sql).fetchall()[0]
    assert total == snapshots == pq.ParquetFile(io.BytesIO(body)).metadata.num_rows > 0
    # a rerun reads nothing again and writes nothing new
    before = keys(s3, "dmd-test")
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert f"({stats.files} data files were archived by an earlier run" in again.output
    assert keys(s3, "dmd-test") == before


def test_one_data_file_as_the_lambda_function_handles_it(s3, moto_server):
    s3.create_bucket(Bucket="exports")
    stats = write_export(
        open_storage("s3://exports", moto_server.url), "", records=600, seed=32, kind=INCREMENTAL, files=2
    )
    export = open_export(f"s3://exports/{stats.folder}", moto_server.url)
    summary = export.summary()
    lake = open_storage("s3://dmd-test", moto_server.url)
    settings = Settings(format="avro")
    first = export.files()[0]
    result = backfill_file(
        export,
        summary,
        first,
        storage=lake,
        settings=settings,
        registry=_registry(),
        plan=Plan.of(settings, 1 << 27, 1000),
    )
    assert result.items == first.items and sum(result.archived.values()) == first.items
    assert all(k.endswith(".avro") for k in keys(s3, "dmd-test", "archive/"))


def _registry():
    from dmd.generated import REGISTRY

    return REGISTRY


def test_the_lambda_handler_archives_the_map_item_it_is_given(s3, moto_server, monkeypatch):
    import importlib
    import sys

    s3.create_bucket(Bucket="exports")
    stats = write_export(open_storage("s3://exports", moto_server.url), "exports", records=500, seed=33, files=2)
    monkeypatch.setenv("DMD_BUCKET", "dmd-test")
    monkeypatch.setenv("DMD_S3_ENDPOINT", moto_server.url)
    monkeypatch.setenv("DMD_BACKFILL_TARGET_BYTES", str(1 << 20))
    sys.modules.pop("dmd.ingest.backfill_handler", None)
    handler = importlib.import_module("dmd.ingest.backfill_handler").handler
    manifest = f"{stats.folder}manifest-files.json"
    lines = s3.get_object(Bucket="exports", Key=manifest)["Body"].read().splitlines()
    # what the Distributed Map's ItemSelector hands each invocation
    events = [{"bucket": "exports", "manifest": manifest, "file": json.loads(line)} for line in lines]
    results = [handler(e, None) for e in events]
    assert sum(r["items"] for r in results) == stats.items
    assert sum(sum(r["archived"].values()) for r in results) == sum(stats.by_type.values())
    assert Counter(r["type"] for r in parquet_rows(s3, "dmd-test", "archive/")) == stats.by_type
    before = keys(s3, "dmd-test")
    retried = handler(events[0], None)  # Step Functions retries a file: nothing is read or written again
    assert retried["done_before"] and keys(s3, "dmd-test") == before
    with pytest.raises(ValueError, match="expected"):
        handler({"file": {}}, None)
