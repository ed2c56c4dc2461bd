"""Batches of Lambda stream records, valid and malformed, built from the schemas' FieldInfo.

Each generated record comes with what the test expects of it: "data" (it must be archived)
or "error" (it must land in an error document), and how to recognise its original text in an
error document. Values come from a `random.Random` that hypothesis drives (`st.randoms()`),
so failures shrink and replay.
"""

from __future__ import annotations

import base64
import binascii
import json
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from dmd.generated import REGISTRY
from dmd.support.records import FieldInfo

TYPES = tuple(sorted(REGISTRY))
SHARD = "shardId-000000000003"
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/demand-capture/stream/2024-01-01T00:00:00.000"
_TEXT = string.ascii_letters + string.digits + ' -_.:/@+éü中文😀"\\\n\t'
MB = 1 << 20

# Malformed kinds: every one of them must end in an error document.
BAD_KINDS = (
    "bad_base64",
    "non_utf8",
    "invalid_json",
    "json_array",
    "json_scalar",
    "missing_dynamodb",
    "missing_image",
    "bad_event_name",
    "unknown_type",
    "missing_required",
    "wrong_tag",
    "out_of_range",
    "non_integral",
    "bad_timestamp",
    "bad_date",
    "huge_bad_string",
    "deep_nesting",
    "deep_nesting_1024",
    "bad_change_time",
    "missing_sequence_number",
)
GOOD_KINDS = ("valid", "valid_remove", "valid_ttl", "huge_string", "extra_attributes")
# DynamoDB Streams events carry the change record inline as JSON, so they have their own
# malformations: values Python's json accepts that orjson does not write back.
DDB_BAD_KINDS = (
    "missing_dynamodb",
    "unknown_type",
    "missing_required",
    "wrong_tag",
    "bad_timestamp",
    "big_int",
    "lone_surrogate_in_enum",
    "lone_surrogate_in_string",
    "missing_sequence_number",
)


@dataclass
class Item:
    """One record of a generated batch and what must become of it."""

    kind: str
    expect: str  # "data" | "error"
    record: dict[str, Any]  # the Lambda event record
    sequence_number: str  # "" when the record has none
    payload: bytes | None = None  # kinesis: the bytes base64-encoded in `data`, when valid base64
    document: dict[str, Any] | None = None  # dynamodb: the inline change record
    change: dict[str, Any] | None = None  # the change record, when it is one
    notes: dict[str, Any] = field(default_factory=dict)

    def original_matches(self, text: str, encoding: str) -> bool:
        """Does an error document's event keep this record's original, byte for byte?"""
        if not self.sequence_number:  # unreadable envelope: the Lambda record, re-serialised
            return encoding == "text" and json.loads(text) == self.record
        if self.document is not None:  # inline JSON: kept as JSON text of the same value
            return encoding == "text" and json.loads(text) == self.document
        data = self.record["kinesis"]["data"]
        if type(data) is not str:  # never from Kinesis; kept as the JSON text of the value
            return encoding == "kinesis-data" and json.loads(text) == data
        if self.payload is None:
            return encoding == "kinesis-data" and text == data
        try:
            as_text = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            return encoding == "kinesis-data" and text == data
        return encoding == "text" and text.encode("utf-8") == self.payload and as_text == text


# --- valid images ------------------------------------------------------------------------------


def text(rng: Random, lo: int = 1, hi: int = 12) -> str:
    return "".join(rng.choice(_TEXT) for _ in range(rng.randint(lo, hi)))


def timestamp(rng: Random) -> str:
    t = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(milliseconds=rng.randrange(10 * 365 * 86400 * 1000))
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _value(f: FieldInfo, rng: Random, type_name: str) -> dict[str, Any]:
    if f.path == "type":
        return {"S": type_name}
    if f.kind == "string":
        return {"S": text(rng)}
    if f.kind == "enum":
        return {"S": rng.choice(f.symbols)}
    if f.kind in ("int", "long"):
        lo = f.minimum if f.minimum is not None else -(2**31)
        hi = f.maximum if f.maximum is not None else 2**31 - 1
        n = rng.choice([lo, hi, rng.randint(lo, hi)])
        return {"N": str(n)}
    if f.kind == "decimal":
        whole = rng.randrange(10 ** (f.precision - f.scale))
        frac = rng.randrange(10**f.scale)
        return {"N": f"{rng.choice(['', '-'])}{whole}.{frac:0{f.scale}d}"}
    if f.kind.startswith("timestamp"):
        return {"S": timestamp(rng)}
    if f.kind == "date":
        return {"S": timestamp(rng)[:10]}
    if f.kind == "boolean":
        return {"BOOL": rng.random() < 0.5}
    if f.kind == "array" and f.wire == "SS":
        members = sorted({text(rng) for _ in range(rng.randint(1, 4))})
        return {"SS": members}
    if f.kind == "array":
        return {"L": [{"S": text(rng)} for _ in range(rng.randint(0, 3))]}
    raise AssertionError(f"no generator for {f.kind}")


def image_fields(type_name: str) -> list[FieldInfo]:
    """Fields that come from the item image (not what the pipeline adds, not `cdc`)."""
    return [
        f
        for f in REGISTRY[type_name].fields
        if f.origin == "image" and f.path != "cdc" and not f.path.startswith("cdc.")
    ]


def valid_image(type_name: str, rng: Random, optional_rate: float = 0.6) -> dict[str, Any]:
    image: dict[str, Any] = {}
    skipped: list[str] = []
    for f in image_fields(type_name):
        parent, _, name = f.path.rpartition(".")
        if any(f.path.startswith(s + ".") for s in skipped):
            continue
        if f.optional and rng.random() > optional_rate:
            skipped.append(f.path)
            continue
        container = image
        if parent:
            for part in parent.split("."):
                container = container[part]["M"]
        if f.kind == "record":
            container[name] = {"M": {}}
        else:
            container[name] = _value(f, rng, type_name)
    return image


def change_record(type_name: str, rng: Random, operation: str = "", ttl: bool = False) -> dict[str, Any]:
    operation = operation or rng.choice(["INSERT", "MODIFY"])
    image = valid_image(type_name, rng)
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1_700_000_000_000 + rng.randrange(10**10),
        "ApproximateCreationDateTimePrecision": "MILLISECOND",
        "Keys": {"id": image["id"]},
        "OldImage" if operation == "REMOVE" else "NewImage": image,
        "SizeBytes": 300,
    }
    return {
        "awsRegion": "us-east-1",
        "eventID": f"ev-{rng.randrange(10**9)}",
        "eventName": operation,
        "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"} if ttl else None,
        "recordFormat": "application/json",
        "tableName": "demand-capture",
        "dynamodb": ddb,
        "eventSource": "aws:dynamodb",
    }


def image_of(change: dict[str, Any]) -> dict[str, Any]:
    ddb = change["dynamodb"]
    return ddb.get("NewImage") or ddb["OldImage"]


def _set(image: dict[str, Any], path: str, av: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        image = image.setdefault(part, {"M": {}})["M"]
    image[parts[-1]] = av


def _delete(image: dict[str, Any], path: str) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        image = image[part]["M"]
    del image[parts[-1]]


def _fields_of(type_name: str, kinds: tuple[str, ...]) -> list[FieldInfo]:
    return [f for f in image_fields(type_name) if f.kind in kinds]


def deep_value(depth: int) -> str:
    """The JSON text of a `depth`-deep nest of L and M AttributeValues."""
    opening = "".join('{"L":[' if i % 2 else '{"M":{"k":' for i in range(depth))
    closing = "".join("]}" if i % 2 else "}}" for i in reversed(range(depth)))
    return opening + '{"S":"x"}' + closing


# --- malformations of a change record (Kinesis path: the change is JSON text) ---------------------


def malform(kind: str, type_name: str, rng: Random) -> tuple[bytes, dict[str, Any] | None, dict[str, Any]]:
    """(payload bytes, the change dict if the payload is one, notes) for a malformed change."""
    change = change_record(type_name, rng)
    image = image_of(change)
    notes: dict[str, Any] = {}
    if kind == "invalid_json":
        text_ = json.dumps(change)
        cut = rng.randrange(1, len(text_) - 1)
        broken = text_[:cut].encode() + rng.choice([b"", b"}}", b"\x00", b",]"])
        try:  # a cut + "}}" can close the document again ("SizeBytes": 3}})
            json.loads(broken)
            broken += b","
        except ValueError:
            pass
        return broken, None, notes
    if kind == "json_array":
        return json.dumps(rng.choice([[change], [], [1, "a"]])).encode(), None, notes
    if kind == "json_scalar":
        return rng.choice([b"42", b'"text"', b"null", b"true", b"-1.5e300"]), None, notes
    if kind == "missing_dynamodb":
        rng.choice([lambda: change.pop("dynamodb"), lambda: change.update(dynamodb=[1])])()
    elif kind == "missing_image":
        change["dynamodb"].pop("NewImage")
    elif kind == "bad_event_name":
        change["eventName"] = rng.choice(["UPSERT", None, 7, {"a": 1}, "x" * 100])
    elif kind == "unknown_type":
        image["type"] = rng.choice([{"S": "ticket"}, {"S": "../../x"}, {"S": ""}, {"N": "1"}, {"S": "Demand"}])
        if rng.random() < 0.3:
            del image["type"]
    elif kind == "missing_required":
        required = [f for f in image_fields(type_name) if not f.optional and f.kind != "record" and f.path != "type"]
        f = rng.choice(required)
        _delete(image, f.path)
        notes["field"] = f.path
    elif kind == "wrong_tag":
        f = rng.choice([f for f in image_fields(type_name) if f.kind != "record" and f.path != "type"])
        wrong = [t for t in ("S", "N", "BOOL", "M", "L", "SS", "B", "XYZ") if t != f.wire]
        tag = rng.choice(wrong)
        _set(image, f.path, rng.choice([{tag: "1"}, {tag: "1", f.wire: "2"}, "bare", [1], {}]))
        notes["field"] = f.path
    elif kind == "out_of_range":
        numeric = _fields_of(type_name, ("int", "long", "decimal"))
        if not numeric:
            return malform("wrong_tag", type_name, rng)
        f = rng.choice(numeric)
        if f.kind == "decimal":
            bad = rng.choice(["1" * (f.precision + 1), "1e40", "1e999999999", "0.001"])
        else:
            hi = f.maximum if f.maximum is not None else 2**63 - 1
            lo = f.minimum if f.minimum is not None else -(2**63)
            bad = rng.choice([str(hi + 1), str(lo - 1), "1e400", "-9" * 50, "1E+999999999"])
        _set(image, f.path, {"N": bad})
        notes["field"] = f.path
    elif kind == "non_integral":
        ints = _fields_of(type_name, ("int", "long"))
        if not ints:
            return malform("wrong_tag", type_name, rng)
        _set(image, rng.choice(ints).path, {"N": rng.choice(["2.5", "1.0000001", "NaN", "Infinity", "0x10", " 1"])})
    elif kind == "bad_timestamp":
        f = rng.choice(_fields_of(type_name, ("timestamp-millis", "timestamp-micros")) or image_fields(type_name)[2:3])
        bad = rng.choice(
            [
                "2024-02-30T00:00:00.000Z",
                "../../x",
                "2024-01-15",
                "2024-01-15T25:00:00.000Z",
                "2024-01-15T10:00:00.0001Z",
                "2024-01-15T10:00:00.000",
                "9999-12-31T23:59:59.000-01:00",
                "0001-01-01T00:00:00.000+01:00",
                "0000-01-01T00:00:00.000Z",
                "２０２４-01-15T10:00:00.000Z",
            ]
        )
        _set(image, f.path, {"S": bad} if f.kind != "string" else {"N": bad})
        notes["value"] = bad
    elif kind == "bad_date":
        dates = _fields_of(type_name, ("date",))
        if not dates:
            return malform("bad_timestamp", type_name, rng)
        _set(image, dates[0].path, {"S": rng.choice(["2024-02-30", "../../x", "2024-13-01", "24-01-01", "0000-01-01"])})
    elif kind == "huge_bad_string":
        # where a string must be one of a few values: an enum, a timestamp, or `type` itself
        fields = [*_fields_of(type_name, ("enum", "timestamp-millis")), image_fields(type_name)[1]]
        _set(image, rng.choice(fields).path, {"S": "z" * (MB + rng.randrange(1000))})
    elif kind == "bad_change_time":
        change["dynamodb"]["ApproximateCreationDateTime"] = rng.choice(["1700000000", None, 1e300, -1e300, 10**25])
        if rng.random() < 0.3:
            change["dynamodb"]["ApproximateCreationDateTimePrecision"] = "NANOSECOND"
            change["dynamodb"]["ApproximateCreationDateTime"] = 1
    elif kind in ("deep_nesting", "deep_nesting_1024"):
        # Deep nests are written as text: json.dumps itself would exceed Python's recursion limit.
        depth = 5000 if kind == "deep_nesting" else rng.choice([495, 505, 509])  # 2 JSON levels each
        f = rng.choice([f for f in image_fields(type_name) if f.kind != "record" and f.path != "type"])
        _set(image, f.path, {"S": "@@DEEP@@"})
        text_ = json.dumps(change).replace('{"S": "@@DEEP@@"}', deep_value(depth))
        if kind == "deep_nesting_1024":  # as deep as orjson parses, in the eventName (a repr there recurses)
            nest = "[" * (depth + 2) + "]" * (depth + 2)
            text_ = json.dumps(change).replace(f'"{change["eventName"]}"', nest, 1)
        return text_.encode(), None, notes
    else:
        raise AssertionError(kind)
    return json.dumps(change, ensure_ascii=rng.random() < 0.5).encode(), change, notes


def good(kind: str, type_name: str, rng: Random) -> tuple[bytes, dict[str, Any]]:
    if kind == "valid_remove":
        change = change_record(type_name, rng, "REMOVE")
    elif kind == "valid_ttl":
        change = change_record(type_name, rng, "REMOVE", ttl=True)
    else:
        change = change_record(type_name, rng)
    image = image_of(change)
    if kind == "huge_string":
        strings = [f for f in _fields_of(type_name, ("string",)) if f.path != "type"]
        _set(image, rng.choice(strings).path, {"S": "h" * (MB + rng.randrange(1000))})
    elif kind == "extra_attributes":  # attributes the schema does not know are ignored
        image["unknownAttr"] = {"M": {"a": {"L": [{"N": "1"}, {"NULL": True}]}}}
        image["someBytes"] = {"B": base64.b64encode(b"\x00\xff").decode()}
    return json.dumps(change, ensure_ascii=rng.random() < 0.5).encode(), change


# --- envelopes -----------------------------------------------------------------------------------


def kinesis_record(seq: int, data: Any, arrival: float, *, with_seq: bool = True) -> dict[str, Any]:
    kinesis: dict[str, Any] = {
        "kinesisSchemaVersion": "1.0",
        "partitionKey": f"pk-{seq}",
        "data": data,
        "approximateArrivalTimestamp": arrival,
    }
    if with_seq:
        kinesis["sequenceNumber"] = seq_str(seq)
    return {
        "kinesis": kinesis,
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{SHARD}:{seq_str(seq)}",
        "eventName": "aws:kinesis:record",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/demand-capture",
    }


def seq_str(seq: int) -> str:
    return f"4959033827149025660855969253836157109592157598913{seq:07d}"


def kinesis_item(kind: str, type_name: str, seq: int, rng: Random) -> Item:
    arrival = 1_705_343_400 + seq * 0.25
    if kind in GOOD_KINDS:
        payload, change = good(kind, type_name, rng)
        record = kinesis_record(seq, base64.b64encode(payload).decode(), arrival)
        return Item(kind, "data", record, seq_str(seq), payload=payload, change=change)
    if kind == "bad_base64":
        data = rng.choice(["not base64!", "eyJh", "====", "eyJhIjoxfQ==\n", "é", ""]) + text(rng, 0, 4)
        if data == "":
            data = "@"
        if rng.random() < 0.2:
            data = rng.choice([None, 12, {"x": 1}, ["a"]])
        record = kinesis_record(seq, data, arrival)
        try:  # some of these are valid base64 of invalid JSON ("eyJh" is `{"a`)
            payload = binascii.a2b_base64(data, strict_mode=True) if type(data) is str else None
        except ValueError:
            payload = None
        return Item(kind, "error", record, seq_str(seq), payload=payload)
    if kind == "non_utf8":
        payload, _ = good("valid", type_name, rng)
        pos = rng.randrange(len(payload))
        payload = payload[:pos] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]) + payload[pos:]
        record = kinesis_record(seq, base64.b64encode(payload).decode(), arrival)
        return Item(kind, "error", record, seq_str(seq), payload=payload)
    if kind == "missing_sequence_number":
        payload, change = good("valid", type_name, rng)
        record = kinesis_record(seq, base64.b64encode(payload).decode(), arrival, with_seq=False)
        record["extra"] = rng.choice([{"n": 1}, {"n": 10**25}, ["x"]])
        return Item(kind, "error", record, "", payload=payload, change=change)
    payload, change, notes = malform(kind, type_name, rng)
    record = kinesis_record(seq, base64.b64encode(payload).decode(), arrival)
    return Item(kind, "error", record, seq_str(seq), payload=payload, change=change, notes=notes)


def ddb_item(kind: str, type_name: str, seq: int, rng: Random) -> Item:
    """A DynamoDB Streams record (change inline); `kind` from GOOD_KINDS or DDB_BAD_KINDS."""
    if kind in GOOD_KINDS:
        _, change = good(kind, type_name, rng)
        expect = "data"
    elif kind in ("big_int", "lone_surrogate_in_enum", "lone_surrogate_in_string"):
        change = change_record(type_name, rng)
        image = image_of(change)
        if kind == "big_int":
            change["dynamodb"]["ApproximateCreationDateTime"] = rng.choice([10**30, -(10**25)])
        elif kind == "lone_surrogate_in_enum":
            constrained = [*_fields_of(type_name, ("enum", "timestamp-millis")), image_fields(type_name)[1]]
            _set(image, constrained[0].path, {"S": "\ud800x"})
        else:
            _set(image, "id", {"S": "id-\udcff"})
        expect = "error"
    elif kind == "missing_sequence_number":
        change = change_record(type_name, rng)
        expect = "error"
    else:
        _, change_or_none, _ = malform(kind, type_name, rng)
        assert change_or_none is not None
        change = change_or_none
        expect = "error"
    change["eventSourceARN"] = STREAM_ARN
    has_seq = kind != "missing_sequence_number" and isinstance(change.get("dynamodb"), dict)
    if has_seq:
        change["dynamodb"]["SequenceNumber"] = seq_str(seq)
        # DynamoDB Streams' ApproximateCreationDateTime is in seconds
        if type(change["dynamodb"].get("ApproximateCreationDateTime")) is int and kind != "big_int":
            change["dynamodb"]["ApproximateCreationDateTime"] //= 1000
        change["dynamodb"].pop("ApproximateCreationDateTimePrecision", None)
    return Item(kind, expect, change, seq_str(seq) if has_seq else "", document=change if has_seq else None)
