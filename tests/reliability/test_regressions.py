"""Regression tests for the crashes and the lost record the conservation property found.
Each one raised out of `process_batch` (or `decode_event`), or lost a record, before its fix."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import pytest
from memstore import MemoryStorage

from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event
from dmd.ingest.pipeline import process_batch

EVENTS = Path(__file__).resolve().parents[1] / "events"


def kinesis_event() -> dict:
    return json.loads((EVENTS / "kinesis-event.json").read_text())


def ddb_event() -> dict:
    return json.loads((EVENTS / "dynamodb-streams-event.json").read_text())


def run(records: list) -> tuple[object, MemoryStorage]:
    storage = MemoryStorage()
    result = process_batch(decode_event({"Records": records}), registry=REGISTRY, settings=Settings(), storage=storage)
    assert sum(d.records for d in result.data) + result.error_records == len(records)
    return result, storage


def error_docs(storage: MemoryStorage) -> list[dict]:
    return [json.loads(storage.objects[k]) for k in storage.list("errors/")]


def with_change(change: dict) -> dict:
    record = copy.deepcopy(kinesis_event()["Records"][0])
    record["kinesis"]["data"] = base64.b64encode(json.dumps(change).encode()).decode()
    return record


def first_change() -> dict:
    return json.loads(base64.b64decode(kinesis_event()["Records"][0]["kinesis"]["data"]))


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59.000-01:00", "0001-01-01T00:00:00.000+01:00"])
def test_timestamp_whose_utc_value_leaves_datetime_range_is_an_error_not_a_crash(value):
    change = first_change()
    change["dynamodb"]["NewImage"]["date"]["M"]["requested"] = {"S": value}
    _result, storage = run([with_change(change)])
    [doc] = error_docs(storage)
    assert "date.requested" in doc["error"]["message"] and "is outside years 1..9999 in UTC" in doc["error"]["message"]


def test_kinesis_data_with_non_ascii_characters_is_invalid_base64_not_a_crash():
    record = kinesis_event()["Records"][0]
    record["kinesis"]["data"] = "é" + record["kinesis"]["data"]
    _, storage = run([record])
    [doc] = error_docs(storage)
    assert doc["events"] == [record["kinesis"]["data"]]
    assert doc["records"][0]["encoding"] == "kinesis-data"


@pytest.mark.parametrize("where", ["record", "envelope"])
def test_integers_beyond_64_bits_are_kept_in_the_error_document(where):
    record = ddb_event()["Records"][0]
    if where == "record":
        record["dynamodb"]["ApproximateCreationDateTime"] = 10**30
    else:  # no sequence number: the whole Lambda record is kept
        del record["dynamodb"]["SequenceNumber"]
        record["extra"] = 10**30
    _, storage = run([record])
    [doc] = error_docs(storage)
    assert json.loads(doc["events"][0]) == record


@pytest.mark.parametrize("field", ["status", "fanId"])
def test_lone_surrogates_from_an_inline_record_are_kept_in_the_error_document(field):
    # Python's json (which decodes Lambda events) accepts "\ud800"; orjson does not write it.
    record = ddb_event()["Records"][0]
    image = record["dynamodb"]["NewImage"]
    assert field in image
    image[field] = {"S": "\ud800x"}
    _, storage = run([record])
    [doc] = error_docs(storage)
    assert json.loads(doc["events"][0]) == record


def test_identical_records_without_a_sequence_number_are_both_kept():
    record = ddb_event()["Records"][0]
    del record["dynamodb"]["SequenceNumber"]
    _, storage = run([record, copy.deepcopy(record)])
    docs = error_docs(storage)
    assert len(docs) == 2
    assert all(json.loads(d["events"][0]) == record for d in docs)


def test_event_name_nested_deeper_than_the_recursion_limit_is_an_error_not_a_crash():
    change = first_change()
    text = json.dumps(change).replace('"INSERT"', "[" * 1020 + "]" * 1020, 1)
    record = kinesis_event()["Records"][0]
    record["kinesis"]["data"] = base64.b64encode(text.encode()).decode()
    _, storage = run([record])
    [doc] = error_docs(storage)
    assert doc["events"] == [text]
    assert "eventName: a JSON list" in doc["error"]["message"]


def test_attribute_nested_deeper_than_the_recursion_limit_is_an_error_not_a_crash():
    change = first_change()
    deep = '{"L":[' * 505 + '{"S":"x"}' + "]}" * 505  # 1,010 levels + 4 around: orjson reads it
    text = json.dumps(change).replace('{"N": "4"}', deep, 1)
    record = kinesis_event()["Records"][0]
    record["kinesis"]["data"] = base64.b64encode(text.encode()).decode()
    _, storage = run([record])
    [doc] = error_docs(storage)
    assert doc["events"] == [text]
    assert "quantity" in doc["error"]["message"]


@pytest.mark.parametrize("precision", [["MILLISECOND"], {"unit": "MILLISECOND"}])
def test_change_time_precision_that_is_not_a_string_is_an_error_not_a_crash(precision):
    change = first_change()
    change["dynamodb"]["ApproximateCreationDateTimePrecision"] = precision
    _, storage = run([with_change(change)])
    [doc] = error_docs(storage)
    assert doc["error"]["message"].startswith("dynamodb.ApproximateCreationDateTimePrecision: ")
    assert "is not MILLISECOND or MICROSECOND" in doc["error"]["message"]
