"""The fast path (msgspec Structs, `decode_json`, `parse_fast`) against the exact path.

The contract: for any Kinesis payload, the fast path either declines (None) or gives exactly
what the exact path gives: the same record, field for field, and the same partition date.
Checked on random valid images in every spelling the exact decoder accepts, on the same images
broken in the ways a stream breaks them, and on `dmd sample` output with every malformed kind.
The share of good sample records that take the fast path is asserted too, so a fast path that
quietly declines everything fails here rather than only in the benchmark.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
import pytest
from gen_image_strategies import images
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import StreamRecord, _base64, decode_event
from dmd.ingest.parse import ArchiveError, Parsed, parse_exact, parse_fast
from dmd.support.wire import timestamp_text
from dmd.tools.sample import sample

SETTINGS = Settings().record_settings
TTL = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def source_of(payload: bytes) -> StreamRecord:
    return StreamRecord("kinesis", "shardId-0", "4963", 1_705_000_000.0, payload, base64.b64encode(payload).decode())


def assert_same(source: StreamRecord) -> Parsed | None:
    fast = parse_fast(source, REGISTRY, SETTINGS)
    exact = parse_exact(source, REGISTRY, SETTINGS)
    if fast is not None:
        assert type(exact) is Parsed, f"fast path accepted what the exact path rejects: {exact}"
        assert fast.spec is exact.spec
        assert repr(fast.record) == repr(exact.record)  # repr: Decimal('1.0') == Decimal('1.00')
        assert fast.record == exact.record
        assert fast.partition_date == exact.partition_date
    return fast


# --- breaking an image the ways a stream breaks it ------------------------------------------------

WRONG_TAG = {"S": "N", "N": "S", "L": "SS", "SS": "L", "M": "S", "BOOL": "S"}
MUTATIONS = ("none", "null", "extra-key", "wrong-tag", "drop", "unknown-attribute", "scalar", "empty-map")


def paths_of(image: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, av in image.items():
        out.append((*prefix, name))
        if isinstance(av, dict) and isinstance(av.get("M"), dict):
            out += paths_of(av["M"], (*prefix, name, "M"))
    return out


def mutate(image: dict[str, Any], how: str, pick: int) -> dict[str, Any]:
    image = json.loads(json.dumps(image))  # a deep copy
    paths = [p for p in paths_of(image) if p[-1] != "M"]
    if how == "none" or not paths:
        return image
    path = paths[pick % len(paths)]
    parent = image
    for step in path[:-1]:
        parent = parent[step]
    name = path[-1]
    av = parent[name]
    match how:
        case "null":
            parent[name] = {"NULL": True}
        case "extra-key":
            if isinstance(av, dict):
                av["S" if "S" not in av else "N"] = "x"
        case "wrong-tag":
            if isinstance(av, dict) and av:
                tag = next(iter(av))
                parent[name] = {
                    {"S": "N", "N": "S", "L": "SS", "SS": "L", "M": "S", "BOOL": "S"}.get(tag, "S"): av[tag]
                }
        case "drop":
            del parent[name]
        case "unknown-attribute":
            parent["zz" + name] = {"S": "extra"}
        case "scalar":
            parent[name] = "plain"
        case "empty-map":
            parent[name] = {"M": {}}
    return image


def payload_of(image: dict[str, Any], operation: str, when: int, user: Any, precision: str | None) -> bytes:
    stream: dict[str, Any] = {"ApproximateCreationDateTime": when, "SequenceNumber": "4963", "SizeBytes": 100}
    if precision is not None:
        stream["ApproximateCreationDateTimePrecision"] = precision
    stream["OldImage" if operation == "REMOVE" else "NewImage"] = image
    if operation == "MODIFY":
        stream["OldImage"] = image
    doc = {"eventID": "e-1", "eventName": operation, "userIdentity": user, "dynamodb": stream}
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    operation=st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
    when=st.one_of(st.integers(0, 4_102_444_800_000), st.integers(-(2**70), 2**70)),
    user=st.sampled_from([None, TTL, {"type": "Service"}, "x", [1]]),
    precision=st.sampled_from([None, "MILLISECOND", "MICROSECOND", "SECOND"]),
    how=st.sampled_from(MUTATIONS),
    pick=st.integers(0, 1000),
)
def test_fast_path_equals_exact_path_or_declines(type_name, data, operation, when, user, precision, how, pick):
    image, _ = data.draw(images(type_name, REGISTRY[type_name].fields))
    payload = payload_of(mutate(image, how, pick), operation, when, user, precision)
    assert_same(source_of(payload))


@pytest.mark.parametrize(
    ("anchor", "first", "goes_fast"),
    [
        ('"NewImage":{', '"id":{"S":"other"},', True),
        ('"NewImage":{', '"type":{"S":"sale"},', True),
        ('"NewImage":{', '"type":{"S":"nope"},', True),
        ("{", '"eventName":"REMOVE",', True),
        ('"dynamodb":{', '"ApproximateCreationDateTime":"x",', False),  # msgspec checks each occurrence
    ],
)
def test_duplicate_keys_resolve_alike(anchor, first, goes_fast):
    """JSON with a key twice (the first one planted): both parsers keep the last."""
    taken = 0
    for event in sample(records=60, seed=3)[0]:
        for record in event["Records"]:
            text = base64.b64decode(record["kinesis"]["data"]).decode()
            if anchor not in text:
                continue
            i = text.index(anchor) + len(anchor)
            taken += assert_same(source_of((text[:i] + first + text[i:]).encode())) is not None
    assert bool(taken) is goes_fast


@pytest.mark.parametrize("bad_fraction", [0.0, 0.3])
def test_on_sample_output_every_record_agrees_and_good_ones_go_fast(bad_fraction):
    fast = good = 0
    batches = sample(records=3000, seed=11, bad_fraction=bad_fraction)[0]
    for source in (s for event in batches for s in decode_event(event)):
        if source.problem:
            assert parse_fast(source, REGISTRY, SETTINGS) is None
            continue
        taken = assert_same(source)
        good += type(parse_exact(source, REGISTRY, SETTINGS)) is Parsed
        fast += taken is not None
    # The sample spells ~2% of numbers unusually ("1E+2"), which the exact path handles.
    assert good and fast >= 0.95 * good, (fast, good)


def test_records_of_fast_and_exact_path_encode_identically():
    """What lands in the lake is the same bytes whichever path decoded the records."""
    from dmd.lake.encode import encode

    sources = [s for e in sample(records=400, seed=5)[0] for s in decode_event(e)]
    pairs = [(f, parse_exact(s, REGISTRY, SETTINGS)) for s in sources if (f := parse_fast(s, REGISTRY, SETTINGS))]
    for spec in REGISTRY.values():
        fast = [f.record for f, _ in pairs if f.spec is spec]
        exact = [e.record for f, e in pairs if f.spec is spec]
        assert len(fast) > 20
        assert encode("parquet", spec, fast, "snappy") == encode("parquet", spec, exact, "snappy")
        datums = []  # Avro containers differ by their random sync marker: compare the datums
        for records in (fast, exact):
            out = bytearray()
            for r in records:
                spec.avro_write(r, out)
            datums.append(out)
        assert datums[0] == datums[1]


def test_exact_path_still_names_the_field_when_the_fast_path_declines():
    image = {"id": {"S": "d-1"}, "type": {"S": "demand"}, "quantity": {"N": "9"}}
    source = source_of(payload_of(image, "INSERT", 1_705_000_000_000, None, None))
    assert parse_fast(source, REGISTRY, SETTINGS) is None
    error = parse_exact(source, REGISTRY, SETTINGS)
    assert type(error) is ArchiveError
    assert "quantity: '9' is out of range [1, 8]" in error.message
    assert "eventId: required attribute is missing" in error.message


# --- the text helpers the fast path uses instead of slower equivalents -----------------------------

_MILLIS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z\Z", re.ASCII)  # what the helper must equal
TIMESTAMPISH = st.text(alphabet="0123456789-:.TZtz+ ٣", min_size=20, max_size=28)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(TIMESTAMPISH, st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds") + "Z")))
def test_timestamp_text_is_exactly_the_millis_z_pattern(text):
    try:
        expected = datetime.fromisoformat(text) if _MILLIS_Z.match(text) else None
    except ValueError:
        expected = None
    got = timestamp_text(text)
    assert got == expected
    if got is not None:
        assert got.tzinfo is UTC


def test_timestamp_text_refuses_week_dates_and_offsets():
    assert timestamp_text("2024-W01-1T05:17:09.251Z") is None
    assert timestamp_text("2024-01-01T05:17:09.251+00:00") is None
    assert timestamp_text("2024-02-30T05:17:09.251Z") is None
    assert timestamp_text("2024-01-01T05:17:09.251Z") == datetime(2024, 1, 1, 5, 17, 9, 251000, tzinfo=UTC)


B64ISH = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n", max_size=16)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(B64ISH, st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())))
def test_base64_fast_decoder_is_a_subset_of_strict_binascii(text):
    try:
        strict = binascii.a2b_base64(text, strict_mode=True)
    except ValueError:
        strict = None
    try:
        fast = msgspec.convert(text, bytes)
    except msgspec.ValidationError:
        fast = None
    if fast is not None:
        assert fast == strict
    assert _base64(text) == strict  # and the envelope's decoder as a whole is strict binascii


def test_stream_record_arrival_is_the_kinesis_timestamp():
    [record] = decode_event(
        {
            "Records": [
                {
                    "eventSource": "aws:kinesis",
                    "eventID": "shardId-1:49",
                    "kinesis": {"sequenceNumber": "49", "data": "e30=", "approximateArrivalTimestamp": 1705312345.678},
                }
            ]
        }
    )
    assert record.arrival == datetime(2024, 1, 15, 9, 52, 25, 678000, tzinfo=UTC)
    assert record.payload is None and orjson.loads(record.decoded()) == {}  # decoded when parsed
    assert re.fullmatch(r"\d+\.\d+", repr(record.arrived))


@pytest.mark.parametrize(
    "planted",
    [b'"\xff"', b'"\xed\xa0\x80"', b'"caf\xc3"', b'{"\xffk":1}'],
    ids=["invalid-byte", "utf8-surrogate", "truncated-sequence", "invalid-key"],
)
def test_text_that_is_not_utf8_is_an_error_even_where_nobody_reads_it(planted):
    """msgspec skips unread attributes without checking their bytes; the record is still not
    JSON (which is UTF-8), so it goes to the exact path and ends in an error document."""
    image = {"id": {"S": "d-1"}, "type": {"S": "demand"}}
    payload = payload_of(image, "INSERT", 1_705_000_000_000, None, None).replace(b'"e-1"', planted, 1)
    source = source_of(payload)
    assert parse_fast(source, REGISTRY, SETTINGS) is None
    error = parse_exact(source, REGISTRY, SETTINGS)
    assert type(error) is ArchiveError and "not valid JSON" in error.message


def test_a_huge_number_nobody_reads_does_not_cost_the_record():
    """The one documented difference: orjson refuses 1E400 anywhere; msgspec reads past it in
    an attribute the pipeline ignores, and the record is archived."""
    image = {"id": {"S": "s-1"}, "type": {"S": "sale"}, "eventId": {"S": "e"}, "saleType": {"S": "general"}}
    image["saleStartDateTime"] = {"S": "2024-03-01T10:00:00.000Z"}
    payload = payload_of(image, "INSERT", 1_705_000_000_000, None, None)
    payload = payload.replace(b'"SizeBytes": 100', b'"SizeBytes": 1E400')
    assert b"1E400" in payload
    source = source_of(payload)
    assert type(parse_exact(source, REGISTRY, SETTINGS)) is ArchiveError
    parsed = parse_fast(source, REGISTRY, SETTINGS)
    assert parsed is not None and parsed.record.id == "s-1"


def test_microsecond_change_times_take_the_fast_path_too():
    """Streams configured with ApproximateCreationDateTimePrecision=MICROSECOND."""
    events, _ = sample(records=20, seed=4)
    for record in events[0]["Records"]:
        doc = orjson.loads(base64.b64decode(record["kinesis"]["data"]))
        doc["dynamodb"]["ApproximateCreationDateTime"] = doc["dynamodb"]["ApproximateCreationDateTime"] * 1000 + 123
        doc["dynamodb"]["ApproximateCreationDateTimePrecision"] = "MICROSECOND"
        parsed = assert_same(source_of(orjson.dumps(doc)))
        assert parsed is not None
        assert parsed.record.cdc.changeTime.microsecond % 1000 == 123
