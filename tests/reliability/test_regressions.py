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


# --- identity: nothing overwrites what another record wrote (issue 10, items 2-4 and 11) ---------------


def _stored_records(storage: MemoryStorage) -> int:
    """Rows in containers plus entries in error documents: what the lake holds."""
    from lakecheck import read_container

    rows = sum(len(read_container(k, storage.objects[k])) for k in storage.list("archive/"))
    return rows + sum(len(d["events"]) for d in error_docs(storage))


def test_the_same_shard_and_sequence_number_from_two_streams_are_two_records():
    first = kinesis_event()["Records"][0]
    other = copy.deepcopy(first)
    other["eventSourceARN"] = first["eventSourceARN"].replace("demand-capture", "other-table")
    storage = MemoryStorage()
    for record in (first, other):  # two batches, as two event source mappings would send them
        process_batch(decode_event({"Records": [record]}), registry=REGISTRY, settings=Settings(), storage=storage)
    assert _stored_records(storage) == 2


def test_records_without_a_sequence_number_in_two_batches_do_not_overwrite_each_other():
    first = ddb_event()["Records"][0]
    first["dynamodb"]["SequenceNumber"] = ""
    second = copy.deepcopy(first)  # another change of the same item: same type, same partition
    second["eventID"] = "another-event"  # arriving in the same second
    records = [first, second]
    storage = MemoryStorage()
    for r in records:
        process_batch(decode_event({"Records": [r]}), registry=REGISTRY, settings=Settings(), storage=storage)
    assert _stored_records(storage) == 2


def test_two_different_bad_records_with_one_sequence_number_get_two_documents():
    bad = [with_change({"eventName": "INSERT", "dynamodb": {}}), with_change({"eventName": "MODIFY"})]
    result, storage = run(bad)
    assert len(result.errors) == 2 and len(error_docs(storage)) == 2


def test_a_retried_error_rewrites_its_own_document():
    bad = with_change({"eventName": "INSERT", "dynamodb": {}})
    _, storage = run([bad])
    first = set(storage.objects)
    process_batch(decode_event({"Records": [bad]}), registry=REGISTRY, settings=Settings(), storage=storage)
    assert set(storage.objects) == first


def _run_file(path: Path, storage: MemoryStorage) -> None:
    from dmd.ingest.envelope import read_lines

    with path.open("rb") as f:
        for batch in read_lines(f, path.name):
            process_batch(batch, registry=REGISTRY, settings=Settings(), storage=storage)


def test_unreadable_lines_of_two_files_of_one_name_keep_both_documents(tmp_path):
    storage = MemoryStorage()
    for day, text in (("monday", b"not an event\n"), ("tuesday", b"another bad line\n")):
        (tmp_path / day).mkdir()
        (tmp_path / day / "events.jsonl").write_bytes(text)
        _run_file(tmp_path / day / "events.jsonl", storage)
    assert sorted(d["events"][0] for d in error_docs(storage)) == ["another bad line", "not an event"]
    _run_file(tmp_path / "monday" / "events.jsonl", storage)  # the same file again: the same key
    assert len(error_docs(storage)) == 2


def test_a_byte_order_mark_before_the_first_event_is_not_part_of_it(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\xef\xbb\xbf" + json.dumps(kinesis_event()).encode() + b"\n")
    storage = MemoryStorage()
    _run_file(events, storage)
    assert error_docs(storage) == []
    assert _stored_records(storage) == len(kinesis_event()["Records"])
