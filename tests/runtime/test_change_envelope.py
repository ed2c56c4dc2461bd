"""What a change record says around its item image (eventName, userIdentity, the change time),
read alike by the fast and the exact decoder: both go through envelope.IMAGE_OF, ttl_expired()
and change_time(), so each case below is checked on both paths."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import StreamRecord, decode_event
from dmd.ingest.parse import ArchiveError, Parsed, parse_exact, parse_fast

EVENTS = Path(__file__).resolve().parents[1] / "events"
SETTINGS = Settings().record_settings
TTL = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def kinesis_change() -> dict[str, Any]:
    event = json.loads((EVENTS / "kinesis-event.json").read_text())
    return json.loads(base64.b64decode(event["Records"][0]["kinesis"]["data"]))


def kinesis(change: dict[str, Any]) -> StreamRecord:
    payload = json.dumps(change).encode()
    return StreamRecord("kinesis", "shardId-0", "4963", 1_705_000_000.0, payload, base64.b64encode(payload).decode())


def both(change: dict[str, Any]) -> Parsed:
    """The exact path's result, after checking the fast path gives the same record."""
    source = kinesis(change)
    exact = parse_exact(source, REGISTRY, SETTINGS)
    fast = parse_fast(source, REGISTRY, SETTINGS)
    assert type(exact) is Parsed, exact
    assert fast is not None, "the fast path declined a record it should take"
    assert fast.record == exact.record and fast.partition_date == exact.partition_date
    return exact


def error(change: dict[str, Any]) -> str:
    source = kinesis(change)
    assert parse_fast(source, REGISTRY, SETTINGS) is None
    result = parse_exact(source, REGISTRY, SETTINGS)
    assert type(result) is ArchiveError
    return result.message


@pytest.mark.parametrize(
    ("operation", "image"), [("INSERT", "NewImage"), ("MODIFY", "NewImage"), ("REMOVE", "OldImage")]
)
def test_the_item_is_read_from_the_image_its_operation_names(operation, image):
    change = kinesis_change()
    wanted = change["dynamodb"].pop("NewImage")
    other = copy.deepcopy(wanted)
    other["id"] = {"S": "the-other-image"}
    change["eventName"] = operation
    change["dynamodb"] = {**change["dynamodb"], "NewImage": other, "OldImage": other, image: wanted}
    parsed = both(change)
    assert parsed.record.id == wanted["id"]["S"]
    assert parsed.record.cdc.operation == operation
    assert parsed.record.isDeleted is (operation == "REMOVE")


def test_an_operation_without_its_image_is_an_error_naming_the_image():
    change = kinesis_change()
    change["eventName"] = "REMOVE"  # the record has a NewImage only
    assert error(change).startswith("dynamodb.OldImage: missing")


@pytest.mark.parametrize("name", ["DELETE", "insert", 7, None])
def test_an_unknown_operation_is_an_error_listing_the_known_ones(name):
    change = kinesis_change()
    change["eventName"] = name
    assert error(change).endswith("is not one of INSERT, MODIFY, REMOVE")


@pytest.mark.parametrize(
    ("user", "expired"),
    [
        (TTL, True),
        ({**TTL, "extra": 1}, True),
        (None, False),
        ({"type": "Service"}, False),
        ({"type": "Service", "principalId": "lambda.amazonaws.com"}, False),
        ({"type": "User", "principalId": "dynamodb.amazonaws.com"}, False),
    ],
)
def test_ttl_expiry_is_a_remove_by_the_dynamodb_service_principal(user, expired):
    change = kinesis_change()
    change["eventName"] = "REMOVE"
    change["dynamodb"]["OldImage"] = change["dynamodb"].pop("NewImage")
    change["userIdentity"] = user
    assert both(change).record.cdc.ttlExpired is expired


def test_a_user_identity_that_is_not_an_object_is_not_ttl_expiry():
    change = kinesis_change()
    change["userIdentity"] = ["Service", "dynamodb.amazonaws.com"]
    result = parse_exact(kinesis(change), REGISTRY, SETTINGS)
    assert type(result) is Parsed and result.record.cdc.ttlExpired is False


MS = 1_705_343_400_123  # 2024-01-15T18:30:00.123Z


@pytest.mark.parametrize(
    ("precision", "value", "expected"),
    [
        (None, MS, datetime(2024, 1, 15, 18, 30, 0, 123000, tzinfo=UTC)),  # absent: milliseconds
        ("MILLISECOND", MS, datetime(2024, 1, 15, 18, 30, 0, 123000, tzinfo=UTC)),
        ("MICROSECOND", MS * 1000 + 456, datetime(2024, 1, 15, 18, 30, 0, 123456, tzinfo=UTC)),
        ("MILLISECOND", -1, datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
    ],
)
def test_kinesis_change_time_is_in_the_unit_its_precision_names(precision, value, expected):
    change = kinesis_change()
    change["dynamodb"].pop("ApproximateCreationDateTimePrecision")
    if precision is not None:
        change["dynamodb"]["ApproximateCreationDateTimePrecision"] = precision
    change["dynamodb"]["ApproximateCreationDateTime"] = value
    assert both(change).record.cdc.changeTime == expected


def test_a_fractional_change_time_is_read_by_the_exact_path_alone():
    change = kinesis_change()
    change["dynamodb"]["ApproximateCreationDateTime"] = MS + 0.0025
    source = kinesis(change)
    assert parse_fast(source, REGISTRY, SETTINGS) is None
    parsed = parse_exact(source, REGISTRY, SETTINGS)
    assert type(parsed) is Parsed  # rounded as timedelta(milliseconds=...) rounds: 2 µs, not 3
    assert parsed.record.cdc.changeTime == datetime(2024, 1, 15, 18, 30, 0, 123002, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        ({"ApproximateCreationDateTime": "1705343400123"}, "ApproximateCreationDateTime: missing or not a number"),
        ({"ApproximateCreationDateTime": True}, "ApproximateCreationDateTime: missing or not a number"),
        (
            {"ApproximateCreationDateTimePrecision": "SECOND"},
            "ApproximateCreationDateTimePrecision: 'SECOND' is not MILLISECOND or MICROSECOND",
        ),
        (
            {"ApproximateCreationDateTimePrecision": None},
            "ApproximateCreationDateTimePrecision: None is not MILLISECOND or MICROSECOND",
        ),
        ({"ApproximateCreationDateTime": 10**17}, "ApproximateCreationDateTime: 100000000000000000 millis"),
        ({"ApproximateCreationDateTime": -(2**62)}, "ApproximateCreationDateTime: -4611686018427387904 millis"),
    ],
)
def test_a_change_time_that_cannot_be_read_is_an_error_naming_the_attribute(stream, message):
    change = kinesis_change()
    change["dynamodb"].update(stream)
    assert error(change).startswith("dynamodb." + message)


def test_dynamodb_streams_change_times_are_seconds_whatever_the_precision_says():
    event = json.loads((EVENTS / "dynamodb-streams-event.json").read_text())
    record = event["Records"][0]
    record["dynamodb"]["ApproximateCreationDateTimePrecision"] = "MICROSECOND"  # not read for this source
    [source] = decode_event({"Records": [record]})
    assert parse_fast(source, REGISTRY, SETTINGS) is None  # inline records take the exact path
    parsed = parse_exact(source, REGISTRY, SETTINGS)
    assert type(parsed) is Parsed
    assert parsed.record.cdc.changeTime == datetime(2024, 1, 15, 18, 30, tzinfo=UTC)  # 1705343400 s
