"""Batches of Lambda stream records, valid and malformed, for the reliability tests.

Images come from the one generator (`dmd.tools.synth`, wild style: any text, whole ranges,
every spelling) and malformations from its one catalogue (`dmd.tools.malform`). Each record
comes with what the test expects of it: "data" (it must be archived) or "error" (it must land
in an error document), and how to recognise its original text in an error document. Values come
from a `random.Random` that hypothesis drives (`st.randoms()`), so failures shrink and replay.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from random import Random
from typing import Any

from dmd.generated import REGISTRY
from dmd.support.records import FieldInfo
from dmd.tools import malform
from dmd.tools.sample import change_document
from dmd.tools.synth import ABSENT, image_nodes, wild_image

TYPES = tuple(sorted(REGISTRY))
SHARD = "shardId-000000000003"
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/demand-capture/stream/2024-01-01T00:00:00.000"
MB = malform.MB

# Every malformation must end in an error document; valid kinds must be archived.
BAD_KINDS = malform.KINESIS
DDB_BAD_KINDS = malform.DYNAMODB
GOOD_KINDS = ("valid", "valid-remove", "valid-ttl", "huge-string", "extra-attributes")


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


# --- valid change records ----------------------------------------------------------------------------


def image_fields(type_name: str) -> list[FieldInfo]:
    """Fields that come from the item image (not what the pipeline adds, not `cdc`)."""
    return [n.info for n in image_nodes(REGISTRY[type_name].fields)]


def valid_image(type_name: str, rng: Random, *, all_present: bool = False, extra: bool = False) -> dict[str, Any]:
    return wild_image(type_name, REGISTRY[type_name].fields, rng, all_present=all_present, extra=extra)[0]


def change_record(type_name: str, rng: Random, operation: str = "", ttl: bool = False) -> dict[str, Any]:
    operation = operation or rng.choice(["INSERT", "MODIFY"])
    image = valid_image(type_name, rng)
    return change_document(
        operation,
        {"id": image["id"]},
        1_700_000_000_000 + rng.randrange(10**10),
        f"ev-{rng.randrange(10**9)}",
        **{"old" if operation == "REMOVE" else "new": image},
        ttl=ttl,
    )


def image_of(change: dict[str, Any]) -> dict[str, Any]:
    ddb = change["dynamodb"]
    return ddb.get("NewImage") or ddb["OldImage"]


def good(kind: str, type_name: str, rng: Random) -> tuple[bytes, dict[str, Any]]:
    if kind == "valid-remove":
        change = change_record(type_name, rng, "REMOVE")
    elif kind == "valid-ttl":
        change = change_record(type_name, rng, "REMOVE", ttl=True)
    else:
        change = change_record(type_name, rng)
    image = image_of(change)
    if kind == "huge-string":
        strings = [f for f in image_fields(type_name) if f.kind == "string" and f.path != "type"]
        malform.put(image, rng.choice(strings).path, {"S": "h" * (MB + rng.randrange(1000))})
    elif kind == "extra-attributes":  # attributes the schema does not know are ignored
        image["unknownAttr"] = {"M": {"a": {"L": [{"N": "1"}, {"NULL": True}]}}}
        image["someBytes"] = {"B": base64.b64encode(b"\x00\xff").decode()}
    return malform.dumps(rng, change), change


def broken(kind: str, type_name: str, rng: Random) -> malform.Broken:
    """A valid change of `type_name` broken as the catalogue's `kind` says (of another type when
    no attribute of `type_name` can carry it: an integer fault needs an integer field)."""
    m = malform.CATALOGUE[kind]
    if not malform.applies(m, image_nodes(REGISTRY[type_name].fields)):
        type_name = rng.choice([t for t in TYPES if malform.applies(m, image_nodes(REGISTRY[t].fields))])
    nodes = image_nodes(REGISTRY[type_name].fields)
    return malform.breaking(m, rng, change_record(type_name, rng), nodes, TYPES)


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
    """A Kinesis record; `kind` from GOOD_KINDS or BAD_KINDS."""
    arrival = 1_705_343_400 + seq * 0.25
    if kind in GOOD_KINDS:
        payload, change = good(kind, type_name, rng)
        record = kinesis_record(seq, base64.b64encode(payload).decode(), arrival)
        return Item(kind, "data", record, seq_str(seq), payload=payload, change=change)
    b = broken(kind, type_name, rng)
    data = base64.b64encode(b.payload).decode() if b.data is ABSENT else b.data
    record = kinesis_record(seq, data, arrival, with_seq=b.sequence_number)
    if not b.sequence_number:  # the record itself is then unreadable: more than its data may be odd
        record["extra"] = rng.choice([{"n": 1}, {"n": 10**25}, ["x"]])
    payload: bytes | None = b.payload
    if b.data is not ABSENT:  # what the data decodes to, if anything (the pipeline keeps it as text then)
        try:
            payload = binascii.a2b_base64(data, strict_mode=True) if type(data) is str else None
        except ValueError:
            payload = None
    seq_text = seq_str(seq) if b.sequence_number else ""
    notes = {"field": b.field} if b.field else {}
    return Item(kind, "error", record, seq_text, payload=payload, change=b.change, notes=notes)


def ddb_item(kind: str, type_name: str, seq: int, rng: Random) -> Item:
    """A DynamoDB Streams record (change inline); `kind` from GOOD_KINDS or DDB_BAD_KINDS."""
    if kind in GOOD_KINDS:
        _, change = good(kind, type_name, rng)
        expect = "data"
    else:
        b = broken(kind, type_name, rng)
        assert b.change is not None, f"{kind} is no DynamoDB Streams malformation"
        change, expect = b.change, "error"
    change["eventSourceARN"] = STREAM_ARN
    has_seq = kind != "missing-sequence-number" and isinstance(change.get("dynamodb"), dict)
    if has_seq:
        change["dynamodb"]["SequenceNumber"] = seq_str(seq)
        # DynamoDB Streams' ApproximateCreationDateTime is in seconds
        if type(change["dynamodb"].get("ApproximateCreationDateTime")) is int and kind != "huge-change-time":
            change["dynamodb"]["ApproximateCreationDateTime"] //= 1000
        change["dynamodb"].pop("ApproximateCreationDateTimePrecision", None)
    return Item(kind, expect, change, seq_str(seq) if has_seq else "", document=change if has_seq else None)
