"""`dmd sample`: realistic, deterministic Lambda Kinesis events generated from the schemas."""

from __future__ import annotations

import base64
import io
import json
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from dmd.generated import REGISTRY
from dmd.generator.loader import load_model
from dmd.support.records import Change, DecodeError, FieldInfo, RecordSpec
from dmd.tools.cli import main
from dmd.tools.sample import DEFAULT_KINDS, MALFORMED_KINDS, SHARDS, SampleStats, sample, write_sample

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"source_system_id": "sample-test"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
TIMESTAMP_MICROS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")
KINESIS_KEYS = {
    "kinesis",
    "eventSource",
    "eventVersion",
    "eventID",
    "eventName",
    "invokeIdentityArn",
    "awsRegion",
    "eventSourceARN",
}
KINESIS_DATA_KEYS = {"kinesisSchemaVersion", "partitionKey", "sequenceNumber", "data", "approximateArrivalTimestamp"}


def records_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for e in events for r in e["Records"]]


def document(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(record["kinesis"]["data"], validate=True))


def change_of(doc: dict[str, Any], record: dict[str, Any]) -> Change:
    ddb = doc["dynamodb"]
    assert ddb["ApproximateCreationDateTimePrecision"] == "MILLISECOND"
    when = EPOCH + timedelta(milliseconds=ddb["ApproximateCreationDateTime"])
    ttl = doc["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return Change(doc["eventName"], ttl, record["kinesis"]["sequenceNumber"], when, doc["eventID"])


def decode(record: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """What the pipeline does with a record: unbase64, JSON, pick the image, decode by `type`."""
    doc = document(record)
    image = doc["dynamodb"]["OldImage" if doc["eventName"] == "REMOVE" else "NewImage"]
    return REGISTRY[image["type"]["S"]].decode(image, change_of(doc, record), SETTINGS), doc


def reject_reason(record: dict[str, Any]) -> str:
    """Why a strict reader refuses a record ("" if it does not): the stage that failed."""
    data = record["kinesis"]["data"]
    try:
        raw = base64.b64decode(data, validate=True)
    except (ValueError, TypeError):  # binascii.Error, a non-ASCII str, not a str at all
        return "base64"
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "utf-8"
    except (ValueError, RecursionError):
        return "json"
    if type(doc) is not dict:
        return "not-an-object"
    if doc.get("eventName") not in ("INSERT", "MODIFY", "REMOVE"):
        return "eventName"
    if type(doc.get("dynamodb")) is not dict:
        return "dynamodb"
    image = doc["dynamodb"].get("OldImage" if doc["eventName"] == "REMOVE" else "NewImage")
    if image is None:
        return "image"
    if image.get("type", {}).get("S") not in REGISTRY:
        return "type"
    when = doc["dynamodb"].get("ApproximateCreationDateTime")
    if type(when) is not int or doc["dynamodb"].get("ApproximateCreationDateTimePrecision") != "MILLISECOND":
        return "change-time"
    try:
        EPOCH + timedelta(milliseconds=when)
    except OverflowError:
        return "change-time"
    try:
        decode(record)
    except RecursionError:  # ~1,000 levels: json parsed it above, a few frames deeper it does not
        return "json"
    except DecodeError as e:
        assert len(e.problems) == 1, e.problems  # one planted fault, the rest of the image is valid
        return e.problems[0]
    return ""


@pytest.fixture(scope="module")
def clean() -> tuple[list[dict[str, Any]], SampleStats]:
    return sample(1200, seed=3)


@pytest.fixture(scope="module")
def mixed() -> tuple[list[dict[str, Any]], SampleStats]:
    return sample(2000, seed=11, bad_fraction=0.1, batch_size=64)


# --- determinism and bookkeeping -----------------------------------------------------------------


def test_same_arguments_give_byte_identical_output() -> None:
    runs = []
    for _ in range(2):
        out = io.StringIO()
        write_sample(out, 400, 5, bad_fraction=0.1, batch_size=50)
        runs.append(out.getvalue())
    assert runs[0] == runs[1]
    other = io.StringIO()
    write_sample(other, 400, 6, bad_fraction=0.1, batch_size=50)
    assert other.getvalue() != runs[0]
    # one Lambda event per line
    lines = runs[0].splitlines()
    assert all(json.loads(line).keys() == {"Records"} for line in lines)


def test_stats_account_for_every_record(mixed) -> None:
    events, stats = mixed
    records = records_of(events)
    assert stats.records == len(records) == 2000
    assert stats.good + stats.bad == stats.records
    assert stats.bad == 200 == len(stats.bad_sequence_numbers) == sum(stats.by_bad_kind.values())
    assert stats.events == len(events)
    assert sum(stats.by_type.values()) == sum(stats.by_operation.values()) == stats.good
    assert stats.summary().startswith("2000 records (1800 good, 200 malformed) in ")


def test_arguments_are_checked() -> None:
    for kwargs in ({"records": -1}, {"bad_fraction": 1.5}, {"batch_size": 0}, {"rate": 0}):
        args = {"records": 10, "seed": 1} | kwargs
        with pytest.raises(ValueError):
            sample(**args)
    assert sample(0, 1) == ([], SampleStats(0, 0, 0, 0, {}, {}, 0, {}, {}))
    with pytest.raises(ValueError, match="unknown malformed kinds"):
        sample(10, 1, 0.5, kinds=["bogus"])


def test_malformed_kinds_can_be_chosen() -> None:
    events, stats = sample(200, 8, 0.5, kinds=["wrong-tag", "invalid-base64"])
    assert stats.by_bad_kind == {"invalid-base64": 50, "wrong-tag": 50}
    assert sum(reject_reason(r) == "base64" for r in records_of(events)) == 50


# --- good records --------------------------------------------------------------------------------


def test_every_good_record_decodes_with_the_generated_decoder(clean, mixed) -> None:
    for events, stats in (clean, mixed):
        for record in records_of(events):
            if record["kinesis"]["sequenceNumber"] in stats.bad_sequence_numbers:
                continue
            rec, doc = decode(record)
            ddb = doc["dynamodb"]
            images = {k for k in ("NewImage", "OldImage") if k in ddb}
            expected = {"INSERT": {"NewImage"}, "MODIFY": {"NewImage", "OldImage"}, "REMOVE": {"OldImage"}}
            assert images == expected[doc["eventName"]]
            for name in images:  # every image decodes, the MODIFY's old one too
                assert ddb[name]["id"] == ddb["Keys"]["id"]
                assert "cdc" not in ddb[name] and "isDeleted" not in ddb[name] and "reference" not in ddb[name]
            assert rec.isDeleted is (doc["eventName"] == "REMOVE")
            assert doc["tableName"] == "demand-capture" and doc["eventSource"] == "aws:dynamodb"
            assert doc["recordFormat"] == "application/json" and doc["awsRegion"] == "us-east-1"
            assert ddb["SizeBytes"] > 0


def test_all_types_all_operations_and_ttl_removes(clean) -> None:
    _, stats = clean
    assert set(stats.by_type) == set(REGISTRY)
    assert set(stats.by_operation) == {"INSERT", "MODIFY", "REMOVE"}
    ops = stats.by_operation
    assert 0.6 < ops["INSERT"] / stats.good < 0.8
    assert 0.12 < ops["MODIFY"] / stats.good < 0.28
    assert 0.05 < ops["REMOVE"] / stats.good < 0.15
    assert 0 < stats.ttl_removes < ops["REMOVE"]


def test_optional_fields_are_sometimes_absent_and_pipeline_fields_never_present(clean) -> None:
    events, _ = clean
    seen: dict[str, Counter[str]] = defaultdict(Counter)  # type -> path -> images holding it
    images: Counter[str] = Counter()
    for record in records_of(events):
        doc = document(record)
        for name in ("NewImage", "OldImage"):
            if name in doc["dynamodb"]:
                image = doc["dynamodb"][name]
                t = image["type"]["S"]
                images[t] += 1
                seen[t].update(_paths(image))
    for t, spec in REGISTRY.items():
        for f in spec.fields:
            n = seen[t][f.path]
            leaves = [g.path for g in spec.fields if g.origin == "image" and g.kind != "record"]
            if f.origin != "image" or not any(p == f.path or p.startswith(f.path + ".") for p in leaves):
                assert n == 0, f"{t}.{f.path} is added by the pipeline, not part of the item"
            elif f.optional:
                assert 0 < n < images[t], f"{t}.{f.path}: optional, should be sometimes present, sometimes absent"
            elif all(not g.optional for g in spec.fields if f.path.startswith(g.path + ".")):
                assert n == images[t], f"{t}.{f.path} is required"


def _paths(image: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k, av in image.items():
        out.append(prefix + k)
        if "M" in av:
            out += _paths(av["M"], f"{prefix}{k}.")
    return out


def test_values_look_real(clean) -> None:
    events, _ = clean
    decoded = [decode(r) for r in records_of(events)]
    by_type: dict[str, list[Any]] = defaultdict(list)
    for rec, _doc in decoded:
        by_type[rec.type].append(rec)
    demands, notifications = by_type["demand"], by_type["notification"]
    assert all(1 <= d.quantity <= 8 for d in demands)
    assert any(d.priceLevels == [] for d in demands) and any(len(d.priceLevels) > 1 for d in demands)
    emails = [r.email for r in demands + notifications if r.email not in (None, "[redacted]")]
    assert emails and all(re.fullmatch(r"[a-z]+\.[a-z]+\d*@[a-z.]+\.(com|org|net)", e) for e in emails)
    phones = [r.phoneNumber for r in demands + notifications if r.phoneNumber not in (None, "[redacted]")]
    assert phones and all(re.fullmatch(r"\+[1-9]\d{8,14}", p) for p in phones)
    demand_ids = {d.id for d in demands}
    assert sum(n.demandId in demand_ids for n in notifications) > len(notifications) / 2  # references
    events_ = by_type["event"]
    assert all(e.attractionIds is None or (e.attractionIds and len(set(e.attractionIds)) == len(e.attractionIds))
               for e in events_)  # fmt: skip
    assert {e.timezone.split("/")[0] for e in events_ if e.timezone} <= {"America", "Europe", "Australia"}
    starts = [e.eventDate.start for e in events_ if e.eventDate and e.eventDate.start]
    assert any(s.dateTime and s.localDate == s.dateTime.date() for s in starts)
    sales = by_type["sale"]
    ranges = [s.priceRange for s in sales if s.priceRange]
    assert all(r.currency is None or re.fullmatch(r"[A-Z]{3}", r.currency) for r in ranges)
    assert all(r.min is None or r.max is None or r.min <= r.max for r in ranges)
    assert all(s.saleEndDateTime is None or s.saleEndDateTime > s.saleStartDateTime for s in sales)
    # moments of an item's life come in order
    assert all(d.date.updated is None or d.date.requested <= d.date.updated for d in demands)
    assert all(n.date.sent is None or n.date.created <= n.date.sent for n in notifications)
    seen_updated = [(e.date.firstSeen, e.date.updated) for e in events_ if e.date.firstSeen and e.date.updated]
    assert seen_updated and all(first <= updated for first, updated in seen_updated)
    starts_ = [e.eventDate.start for e in events_ if e.eventDate]
    assert all(s is None or s.dateTime or s.localDate for s in starts_), "no empty optional maps"


def test_wire_formats(clean) -> None:
    events, _ = clean
    numbers: list[str] = []
    for record in records_of(events):
        doc = document(record)
        image = doc["dynamodb"].get("NewImage") or doc["dynamodb"]["OldImage"]
        spec = REGISTRY[image["type"]["S"]]
        for f in spec.fields:
            av = _get(image, f.path)
            if av is None or f.kind == "record":
                continue
            assert list(av) == [f.wire], f.path
            if f.kind == "timestamp-millis":
                assert TIMESTAMP.match(av["S"]), av
            if f.wire == "N":
                numbers.append(av["N"])
            if f.kind == "decimal" and "E" not in av["N"]:
                assert len(av["N"].partition(".")[2]) <= f.scale
    assert "1E+2" in numbers  # DynamoDB keeps numbers as written


def _get(image: dict[str, Any], path: str) -> dict[str, Any] | None:
    head, _, rest = path.partition(".")
    av = image.get(head)
    if av is None or not rest:
        return av
    return _get(av["M"], rest) if "M" in av else None


def test_modify_and_remove_follow_earlier_versions_of_the_same_item(clean) -> None:
    events, _ = clean
    docs = sorted((document(r) for r in records_of(events)), key=lambda d: d["dynamodb"]["ApproximateCreationDateTime"])
    current: dict[str, dict[str, Any]] = {}
    removed: set[str] = set()
    for doc in docs:
        ddb, op = doc["dynamodb"], doc["eventName"]
        item = ddb["Keys"]["id"]["S"]
        assert item not in removed
        if op == "INSERT":
            assert item not in current
            current[item] = ddb["NewImage"]
        else:
            assert ddb["OldImage"] == current[item], "the old image is the item's previous version"
            if op == "MODIFY":
                assert ddb["NewImage"] != ddb["OldImage"]
                for name, av in ddb["OldImage"].items():  # the item's key, type and references stay
                    if name in ("id", "type") or name.endswith("Id") or name.endswith("Ids"):
                        assert ddb["NewImage"][name] == av, name
                current[item] = ddb["NewImage"]
            else:
                removed.add(item)
                del current[item]
        assert (doc["userIdentity"] is not None) <= (op == "REMOVE")


# --- the domain's invariants, for any seed ---------------------------------------------------------

PARTITION_PATHS = {rt.type_name: rt.partition_paths for rt in load_model(ROOT / "schemas").types}


def _moment_of_writing(path: str) -> bool:
    """Names tell the moments an item is written at (requested, created, sent, updated) from
    those of the world outside (firstSeen elsewhere, a show's or a sale's start and end)."""
    low = path.lower()
    return "start" not in low and "end" not in low and "first" not in low.rpartition(".")[2]


def _value_at(rec: Any, path: str) -> Any:
    for part in path.split("."):
        rec = getattr(rec, part, None)
    return rec


def _timestamps_by_map(spec: RecordSpec) -> dict[str, list[str]]:
    """Image timestamp paths of each map (record) of a type, in schema order."""
    out: dict[str, list[str]] = defaultdict(list)
    for f in spec.fields:
        if f.origin == "image" and f.kind in ("timestamp-millis", "timestamp-micros"):
            out[f.path.rpartition(".")[0]].append(f.path)
    return out


def check_domain(events: list[dict[str, Any]], stats: SampleStats) -> dict[str, list[date]]:
    """What every sample must hold, whatever its seed; returns each type's partition dates."""
    last: dict[str, int] = {}
    partitions: dict[str, list[date]] = defaultdict(list)
    for record in records_of(events):
        if record["kinesis"]["sequenceNumber"] in stats.bad_sequence_numbers:
            continue
        rec, doc = decode(record)
        spec, ddb, when = REGISTRY[rec.type], doc["dynamodb"], rec.cdc.changeTime
        shard = record["eventID"].partition(":")[0]
        assert ddb["ApproximateCreationDateTime"] > last.get(shard, 0), "change times increase per shard"
        last[shard] = ddb["ApproximateCreationDateTime"]
        versions = [rec]
        if doc["eventName"] == "MODIFY":
            versions.append(spec.decode(ddb["OldImage"], change_of(doc, record), SETTINGS))
        for version in versions:
            for paths in _timestamps_by_map(spec).values():
                values = {p: v for p in paths if (v := _value_at(version, p)) is not None}
                mine = [values[p] for p in paths if p in values and _moment_of_writing(p)]
                assert mine == sorted(mine), f"{rec.type}: moments of its life out of order: {values}"
                assert all(v <= when for v in mine), f"{rec.type}: a moment after the change that wrote it"
                starts = [v for p, v in values.items() if "start" in p.lower()]
                ends = [v for p, v in values.items() if "end" in p.lower()]
                assert all(s < e for s in starts for e in ends), f"{rec.type}: ends before it starts: {values}"
        if doc["eventName"] == "MODIFY":  # a moment past stays what it was
            old = versions[1]
            for paths in _timestamps_by_map(spec).values():
                for p in paths:
                    if "updated" not in p.lower() and _moment_of_writing(p) and _value_at(old, p) is not None:
                        assert _value_at(rec, p) == _value_at(old, p), f"{rec.type}.{p} changed in a MODIFY"
        day = spec.partition_date(rec, when)
        partitions[rec.type].append(day)
        source = next((p for p in PARTITION_PATHS[rec.type] if _value_at(rec, p) is not None), "")
        if source and _moment_of_writing(source):  # demand, notifications: around their arrival
            assert (when - timedelta(minutes=10)).date() <= day <= when.date(), (rec.type, source, day, when)
        else:  # events, sales: over their own dates, within a season of the change
            assert when.date() - timedelta(days=120) <= day <= when.date() + timedelta(days=200), (rec.type, day)
    return partitions


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rate=st.sampled_from([0.5, 5.0, 50.0, 500.0]))
def test_domain_invariants_hold_for_any_seed(seed: int, rate: float) -> None:
    events, stats = sample(400, seed, bad_fraction=0.05, rate=rate)
    check_domain(events, stats)
    changes = sorted(
        document(r)["dynamodb"]["ApproximateCreationDateTime"]
        for r in records_of(events)
        if r["kinesis"]["sequenceNumber"] not in stats.bad_sequence_numbers
    )
    expected_ms = 400 / rate * 1000  # Poisson arrivals: the span of 400 is within a few percent of this
    assert 0.6 * expected_ms < changes[-1] - changes[0] < 1.5 * expected_ms + 400


def test_a_batch_spans_seconds_and_partition_dates_spread_as_the_domain_does(mixed) -> None:
    events, stats = mixed  # the default rate, batches of 64
    for event in events:
        times = [r["kinesis"]["approximateArrivalTimestamp"] for r in event["Records"]]
        assert max(times) - min(times) < 30, "a Lambda batch spans seconds"
    partitions = check_domain(events, stats)
    for type_name, days in partitions.items():
        paths = PARTITION_PATHS[type_name]
        if _moment_of_writing(paths[0]):
            assert len(set(days)) <= 2, f"{type_name}: dated at its arrival"
        elif len(days) >= 50:
            assert len(set(days)) >= 10, f"{type_name}: over dates of its own"


# --- envelope --------------------------------------------------------------------------------------


def test_kinesis_envelope(mixed) -> None:
    events, stats = mixed
    last_seq: dict[str, int] = {}
    last_arrival: dict[str, float] = {}
    shard_of_key: dict[str, str] = {}
    for event in events:
        records = event["Records"]
        assert 1 <= len(records) <= 64
        shards = {r["eventID"].partition(":")[0] for r in records}
        assert len(shards) == 1 and shards <= set(SHARDS), "a Lambda event holds records of one shard"
        for r in records:
            assert r.keys() == KINESIS_KEYS
            k = r["kinesis"]
            assert k.keys() == KINESIS_DATA_KEYS
            assert k["kinesisSchemaVersion"] == "1.0" and r["eventVersion"] == "1.0"
            assert r["eventSource"] == "aws:kinesis" and r["eventName"] == "aws:kinesis:record"
            assert r["awsRegion"] == "us-east-1"
            assert r["eventSourceARN"] == "arn:aws:kinesis:us-east-1:123456789012:stream/demand-capture"
            assert r["invokeIdentityArn"] == "arn:aws:iam::123456789012:role/dmd"
            seq = k["sequenceNumber"]
            shard = r["eventID"].partition(":")[0]
            assert r["eventID"] == f"{shard}:{seq}"
            assert re.fullmatch(r"\d{56}", seq)
            assert int(seq) > last_seq.get(shard, 0), "sequence numbers increase per shard"
            assert k["approximateArrivalTimestamp"] > last_arrival.get(shard, 0.0)
            last_seq[shard], last_arrival[shard] = int(seq), k["approximateArrivalTimestamp"]
            assert re.fullmatch(r"[0-9A-F]{32}", k["partitionKey"])
            assert shard_of_key.setdefault(k["partitionKey"], shard) == shard
            if seq not in stats.bad_sequence_numbers:
                doc = document(r)  # strict base64, UTF-8 JSON
                arrival = k["approximateArrivalTimestamp"] * 1000
                assert 0 < arrival - doc["dynamodb"]["ApproximateCreationDateTime"] < 60_000
    assert set(last_seq) == set(SHARDS)


# --- malformed records -----------------------------------------------------------------------------

# the stage (or the decoder's problem) each kind must be refused for
EXPECTED_REJECTION = {
    "invalid-base64": r"base64",
    "invalid-json": r"json",
    "deep-nesting": r"json",
    "deep-nesting-1024": r"json|eventName",  # as deep as parsers go: some parse it, then refuse the eventName
    "json-array": r"not-an-object",
    "json-scalar": r"not-an-object",
    "non-utf8": r"utf-8",
    "missing-dynamodb": r"dynamodb",
    "missing-image": r"image",
    "unknown-event-name": r"eventName",
    "unknown-type": r"type",
    "bad-change-time": r"change-time",
    "huge-change-time": r"change-time",
    "missing-required": r"[\w.]+: required attribute is missing",
    "wrong-tag": r"[\w.]+: (expected type tag '\w+', got .*|not a DynamoDB AttributeValue .*)",
    "unknown-enum-symbol": r"[\w.]+: '.*' is not one of .*",
    "non-integral-integer": r"[\w.]+: ('.*' is not an integer|'N' value must be a number string, got .*)",
    "out-of-range-int": r"[\w.]+: '-?[\dEe+]+(…|') is out of range \[.*\]",  # long values are shown cut short
    "invalid-decimal": r"[\w.]+: '.*' (has more than \d+ decimal places|is out of range) for decimal\(\d+,\d+\)",
    "invalid-timestamp": r"[\w.]+: '.*' (is not (an ISO-8601|a valid calendar) timestamp|is more precise|is outside).*",
    "invalid-date": r"[\w.]+: '.*' is not (a valid calendar date|a YYYY-MM-DD date)",
    "path-traversal-date": r"[\w.]+: '.*\.\..*' is not (an ISO-8601 timestamp|a YYYY-MM-DD date).*",
    "huge-bad-string": r"type|[\w.]+: 'z+(…|') is not (one of|an ISO-8601 timestamp).*",
}


def test_bad_fraction_is_respected_and_every_kind_appears(mixed) -> None:
    events, stats = mixed
    assert set(EXPECTED_REJECTION) == set(MALFORMED_KINDS)
    assert set(stats.by_bad_kind) == set(DEFAULT_KINDS)  # rare ones (1 MB records) only when asked for
    counts = stats.by_bad_kind.values()
    assert max(counts) - min(counts) <= 1, "kinds are dealt evenly, in random order"
    kinds_in_order = [stats.bad_sequence_numbers[r["kinesis"]["sequenceNumber"]] for r in records_of(events)
                      if r["kinesis"]["sequenceNumber"] in stats.bad_sequence_numbers]  # fmt: skip
    assert kinds_in_order[: len(DEFAULT_KINDS)] != list(DEFAULT_KINDS)
    small = sample(1000, seed=2, bad_fraction=0.05)[1]
    assert small.bad == 50 and small.good == 950


def test_every_malformed_record_is_refused_for_its_reason(mixed) -> None:
    events, stats = mixed
    for record in records_of(events):
        kind = stats.bad_sequence_numbers.get(record["kinesis"]["sequenceNumber"])
        reason = reject_reason(record)
        if kind is None:
            assert reason == ""
            continue
        assert re.fullmatch(EXPECTED_REJECTION[kind], reason), (kind, reason)
        if kind == "path-traversal-date":
            assert any(f.kind in ("date", "timestamp-millis") for f in _fields_named(reason))


def test_every_kind_of_the_catalogue_can_be_asked_for_and_is_refused_for_its_reason() -> None:
    """The rare ones (1 MB records) too, which a sample holds only when asked for by name."""
    events, stats = sample(300, seed=5, bad_fraction=0.3, kinds=MALFORMED_KINDS)
    assert set(stats.by_bad_kind) == set(MALFORMED_KINDS) == set(EXPECTED_REJECTION)
    for record in records_of(events):
        kind = stats.bad_sequence_numbers.get(record["kinesis"]["sequenceNumber"])
        if kind is not None:
            assert re.fullmatch(EXPECTED_REJECTION[kind], reject_reason(record)), kind


def _fields_named(reason: str) -> list[FieldInfo]:
    path = reason.partition(":")[0]
    return [f for spec in REGISTRY.values() for f in spec.fields if f.path == path]


# --- a fifth type --------------------------------------------------------------------------------


def _fifth_type() -> RecordSpec:
    def f(path: str, kind: str, optional: bool = False, **kw: Any) -> FieldInfo:
        return FieldInfo(path, kind, optional, kw.pop("origin", "image"), **kw)

    fields = (
        f("id", "string", wire="S"),
        f("type", "string", wire="S"),
        f("seatCount", "int", wire="N", minimum=0, maximum=4),
        f("active", "boolean", wire="BOOL"),
        f("fee", "decimal", True, wire="N", precision=6, scale=3),
        f("tier", "enum", wire="S", symbols=("gold", "silver")),
        f("rows", "array", wire="L", item_kind="int"),
        f("tags", "array", True, wire="SS", item_kind="string"),
        f("window", "record", True, wire="M"),
        f("window.opens", "timestamp-micros", wire="S"),
        f("window.day", "date", True, wire="S"),
        f("archivedAt", "timestamp-millis", True, origin="deleted-at"),
        f("isDeleted", "boolean", origin="is-deleted"),
    )
    return RecordSpec("ticket", object, None, None, None, None, None, None, {}, fields)  # type: ignore[arg-type]


def test_a_fifth_type_gets_samples_with_no_code_change() -> None:
    events, stats = sample(300, seed=4, bad_fraction=0.1, registry={"ticket": _fifth_type()})
    assert stats.by_type == {"ticket": stats.good} and stats.bad == 30
    assert "unknown-enum-symbol" in stats.by_bad_kind and "venue" not in stats.by_bad_kind
    windows = 0
    for record in records_of(events):
        if record["kinesis"]["sequenceNumber"] in stats.bad_sequence_numbers:
            continue
        doc = document(record)
        image = doc["dynamodb"].get("NewImage") or doc["dynamodb"]["OldImage"]
        assert image["type"] == {"S": "ticket"}
        assert 0 <= int(image["seatCount"]["N"]) <= 4
        assert type(image["active"]["BOOL"]) is bool
        assert image["tier"]["S"] in ("gold", "silver")
        assert all(list(x) == ["N"] for x in image["rows"]["L"])
        if "tags" in image:
            assert image["tags"]["SS"] and len(set(image["tags"]["SS"])) == len(image["tags"]["SS"])
        if "window" in image:
            windows += 1
            assert TIMESTAMP_MICROS.match(image["window"]["M"]["opens"]["S"])
            if "day" in image["window"]["M"]:
                assert image["window"]["M"]["day"]["S"] == image["window"]["M"]["opens"]["S"][:10]
        assert "archivedAt" not in image and "isDeleted" not in image
    assert windows > 0


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_writes_json_lines_and_a_summary(tmp_path) -> None:
    out = tmp_path / "events.jsonl"
    args = ["sample", "--records", "150", "--seed", "9", "--bad-fraction", "0.1", "--batch-size", "20"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "150 records (135 good, 15 malformed)" in result.stderr
    lines = out.read_text().splitlines()
    assert sum(len(json.loads(line)["Records"]) for line in lines) == 150
    to_stdout = CliRunner().invoke(main, args)
    assert to_stdout.exit_code == 0
    assert to_stdout.stdout == out.read_text()
    for wrong in (["--bad-fraction", "2"], ["--bad-kind", "bogus"], ["--rate", "0"]):
        assert CliRunner().invoke(main, ["sample", *wrong]).exit_code == 2
    slower = CliRunner().invoke(main, [*args, "--rate", "0.5"])
    times = [r["kinesis"]["approximateArrivalTimestamp"] for line in slower.stdout.splitlines()
             for r in json.loads(line)["Records"]]  # fmt: skip
    assert slower.exit_code == 0 and max(times) - min(times) > 150  # 150 records at 0.5 a second
    only = CliRunner().invoke(main, ["sample", "--records", "40", "--bad-fraction", "0.5", "--bad-kind", "json-array"])
    assert only.exit_code == 0 and "20 malformed" in only.stderr
