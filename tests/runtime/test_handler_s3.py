"""The Lambda handler against a real S3 API (moto server on 127.0.0.1), through boto3, with
every object read back by independent readers (pyarrow, fastavro, DuckDB)."""

from __future__ import annotations

import base64
import importlib
import io
import json
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import fastavro
import pyarrow.parquet as pq
import pytest
from boto3.dynamodb.types import TypeDeserializer

from dmd.generated import REGISTRY
from dmd.ingest.config import ConfigError

EVENTS = Path(__file__).resolve().parents[1] / "events"


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def load_handler(monkeypatch, endpoint: str, **env: str):
    monkeypatch.setenv("DMD_BUCKET", "dmd-test")
    monkeypatch.setenv("DMD_S3_ENDPOINT", endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("dmd.ingest.handler", None)
    return importlib.import_module("dmd.ingest.handler")


def keys(s3, prefix: str = "") -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="dmd-test", Prefix=prefix)
    return sorted(o["Key"] for p in pages for o in p.get("Contents", ()))


def body(s3, key: str) -> bytes:
    return s3.get_object(Bucket="dmd-test", Key=key)["Body"].read()


def changes(event: dict) -> list[dict]:
    """The DynamoDB change records inside a Lambda Kinesis event."""
    return [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]


def expected_values(image: dict, type_name: str) -> dict[str, object]:
    """Image attribute values by field path, converted independently of our decoder
    (boto3's TypeDeserializer + the schema's declared kinds)."""
    plain = {k: TypeDeserializer().deserialize(v) for k, v in image.items()}
    out: dict[str, object] = {}
    for f in REGISTRY[type_name].fields:
        if f.origin != "image" or f.kind == "record":
            continue
        value: object = plain
        for part in f.path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            out[f.path] = None
        elif f.kind.startswith("timestamp"):
            out[f.path] = datetime.fromisoformat(value).astimezone(UTC)
        elif f.kind in ("int", "long"):
            out[f.path] = int(value)
        elif f.kind == "decimal":
            out[f.path] = Decimal(value).quantize(Decimal(1).scaleb(-f.scale))
        elif f.kind == "date":
            out[f.path] = datetime.fromisoformat(value).date()
        elif isinstance(value, set):
            out[f.path] = sorted(value)
        else:
            out[f.path] = value
    return out


def at(row: dict, path: str) -> object:
    value: object = row
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
    return value


def assert_archived(row: dict, change: dict, sequence_number: str) -> None:
    op = change["eventName"]
    image = change["dynamodb"]["OldImage" if op == "REMOVE" else "NewImage"]
    type_name = image["type"]["S"]
    pii = {f.path for f in REGISTRY[type_name].fields if f.pii}
    for path, value in expected_values(image, type_name).items():
        got = at(row, path)
        if isinstance(got, list) and REGISTRY[type_name].fields and path == "attractionIds":
            got = sorted(got)
        if op == "REMOVE" and path in pii and value is not None:
            assert got == "[redacted]", path
        else:
            assert got == value, path
    assert row["reference"] == f"{type_name}:{image['id']['S']}"
    assert row["isDeleted"] is (op == "REMOVE")
    assert row["cdc"]["operation"] == op
    assert row["cdc"]["sequenceNumber"] == sequence_number
    assert row["cdc"]["eventId"] == change["eventID"]
    if type_name == "demand":
        assert row["system"] == "demand-capture"


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_kinesis_batch_is_archived_and_read_back_field_by_field(s3, moto_server, monkeypatch, tmp_path, fmt):
    handler = load_handler(monkeypatch, moto_server.url, DMD_FORMAT=fmt)
    event = load_event("kinesis-event.json")

    assert handler.handler(event, None) == {"batchItemFailures": []}

    data_keys = keys(s3, f"archive/{fmt}/")
    assert len(data_keys) == 4  # four types, one partition date each
    assert keys(s3, "errors/") == []
    rows = {}
    for key in data_keys:
        raw = body(s3, key)
        if fmt == "parquet":
            read = pq.read_table(io.BytesIO(raw)).to_pylist()
            local = tmp_path / key
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(raw)
            count = duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{local}')").fetchone()[0]
            assert count == len(read)
        else:
            read = list(fastavro.reader(io.BytesIO(raw)))
        for row in read:
            rows[row["cdc"]["sequenceNumber"]] = (key, row)
    for record, change in zip(event["Records"], changes(event), strict=True):
        seq = record["kinesis"]["sequenceNumber"]
        key, row = rows[seq]
        image = change["dynamodb"]["NewImage"]
        assert f"/{image['type']['S']}/partition_date=" in key
        assert_archived(row, change, seq)


def test_duckdb_reads_the_archived_parquet_with_partition_columns(s3, moto_server, monkeypatch, tmp_path):
    handler = load_handler(monkeypatch, moto_server.url)
    handler.handler(load_event("kinesis-event.json"), None)
    for key in keys(s3, "archive/"):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(body(s3, key))
    glob = tmp_path / "archive/parquet/demand/**/*.parquet"
    row = (
        duckdb.connect()
        .execute(
            f"SELECT partition_date, quantity, date.requested, cdc.operation "
            f"FROM read_parquet('{glob}', hive_partitioning = true)"
        )
        .fetchone()
    )
    assert str(row[0]) == "2024-01-15"
    assert row[1] == 4
    assert row[3] == "INSERT"


def test_microsecond_change_time_and_ttl_remove(s3, moto_server, monkeypatch):
    handler = load_handler(monkeypatch, moto_server.url, DMD_FORMAT="avro")
    for name in ("kinesis-event-microsecond.json", "kinesis-event-ttl-remove.json"):
        assert handler.handler(load_event(name), None) == {"batchItemFailures": []}
    rows = [r for k in keys(s3, "archive/") for r in fastavro.reader(io.BytesIO(body(s3, k)))]
    by_op = {r["cdc"]["operation"]: r for r in rows}
    assert by_op["MODIFY"]["cdc"]["changeTime"] == datetime(2024, 1, 15, 18, 31, 2, 250123, tzinfo=UTC)
    removed = by_op["REMOVE"]
    assert removed["cdc"]["ttlExpired"] is True
    assert removed["isDeleted"] is True
    assert removed["messageBody"] == "[redacted]"
    assert removed["phoneNumber"] == "[redacted]"
    assert removed["email"] is None  # absent in the image: nothing to redact
    assert removed["date"]["deleted"] == datetime(2024, 2, 3, 22, 40, tzinfo=UTC)


def test_dynamodb_streams_event(s3, moto_server, monkeypatch):
    handler = load_handler(monkeypatch, moto_server.url, DMD_FORMAT="avro")
    event = load_event("dynamodb-streams-event.json")
    assert handler.handler(event, None) == {"batchItemFailures": []}
    rows = [r for k in keys(s3, "archive/") for r in fastavro.reader(io.BytesIO(body(s3, k)))]
    assert sorted(r["cdc"]["sequenceNumber"] for r in rows) == sorted(
        r["dynamodb"]["SequenceNumber"] for r in event["Records"]
    )
    for record in event["Records"]:
        row = next(r for r in rows if r["cdc"]["sequenceNumber"] == record["dynamodb"]["SequenceNumber"])
        assert_archived(row, record, record["dynamodb"]["SequenceNumber"])
    remove = next(r for r in rows if r["isDeleted"])
    assert remove["cdc"]["changeTime"] == datetime(2024, 1, 16, 10, 13, 20, tzinfo=UTC)
    assert remove["cdc"]["ttlExpired"] is True


def test_retry_of_the_same_batch_overwrites_instead_of_duplicating(s3, moto_server, monkeypatch):
    handler = load_handler(monkeypatch, moto_server.url)
    event = load_event("kinesis-event.json")
    handler.handler(event, None)
    first = keys(s3)
    handler.handler(event, None)
    assert keys(s3) == first


def test_bad_records_go_to_error_documents_with_their_original_text(s3, moto_server, monkeypatch):
    handler = load_handler(monkeypatch, moto_server.url)
    event = load_event("kinesis-event.json")
    bad = json.loads(json.dumps(event["Records"][0]))
    change = changes({"Records": [bad]})[0]
    change["dynamodb"]["NewImage"]["quantity"] = {"N": "9"}
    original = json.dumps(change)
    bad["kinesis"]["data"] = base64.b64encode(original.encode()).decode()
    bad["kinesis"]["sequenceNumber"] = "49590338271490256608559692538361571095921575989136589999"
    result = handler.handler({"Records": [*event["Records"], bad]}, None)
    assert result == {"batchItemFailures": []}
    [error_key] = keys(s3, "errors/")
    doc = json.loads(body(s3, error_key))
    assert doc["events"] == [original]
    assert "quantity" in doc["error"]["message"] and "out of range" in doc["error"]["message"]
    assert doc["records"][0]["sequenceNumber"] == bad["kinesis"]["sequenceNumber"]
    assert len(keys(s3, "archive/")) == 4


def test_s3_down_mid_run_reports_the_affected_records_and_a_rerun_completes(s3, fault_proxy, monkeypatch):
    handler = load_handler(monkeypatch, fault_proxy.url)
    event = load_event("kinesis-event.json")
    first, second = {"Records": event["Records"][:2]}, {"Records": event["Records"][2:]}
    assert handler.handler(first, None) == {"batchItemFailures": []}
    fault_proxy.down = True  # the server "stops" between batches of a run
    result = handler.handler(second, None)
    assert [f["itemIdentifier"] for f in result["batchItemFailures"]] == [
        r["kinesis"]["sequenceNumber"] for r in second["Records"]
    ]
    assert fault_proxy.injected["down"] >= 2
    fault_proxy.down = False
    assert handler.handler(second, None) == {"batchItemFailures": []}
    archived = keys(s3, "archive/")
    assert len(archived) == 4
    sequence_numbers = {
        r["cdc"]["sequenceNumber"] for k in archived for r in pq.read_table(io.BytesIO(body(s3, k))).to_pylist()
    }
    assert sequence_numbers == {r["kinesis"]["sequenceNumber"] for r in event["Records"]}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DMD_FORMAT": "csv"}, "format 'csv' must be one of parquet, avro"),
        ({"DMD_CODEC": "gzip"}, "codec 'gzip' must be one of"),
        ({"DMD_PREFIX": "../escape"}, "prefix '../escape' must be"),
        ({"DMD_ERRORS_PREFIX": "/abs"}, "errors_prefix '/abs' must be"),
        ({"DMD_BUCKET": "Not_A_Bucket"}, "DMD_BUCKET 'Not_A_Bucket' is not a valid S3 bucket name"),
        ({"DMD_S3_ENDPOINT": "ftp://x"}, "DMD_S3_ENDPOINT 'ftp://x': must be an http(s) URL with a host"),
    ],
)
def test_bad_configuration_fails_at_cold_start(monkeypatch, aws_env, env, message):
    with pytest.raises(ConfigError, match="invalid configuration") as err:
        load_handler(monkeypatch, "http://127.0.0.1:1", **env)
    assert message in str(err.value)
