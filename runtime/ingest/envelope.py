"""Lambda event envelopes -> StreamRecords that keep their source position, and what a
change record says around its item image.

Two envelopes: a Kinesis event (the DynamoDB change JSON base64-encoded in `kinesis.data`)
and a DynamoDB Streams event (the change record inline). Nothing here fails on a bad record:
a record whose payload cannot be read still becomes a StreamRecord, and parsing turns it into
an error document with its original text.

Inside, the change record's own envelope (eventName, userIdentity, the change time) is read
by two decoders in parse.py, the fast and the exact; IMAGE_OF, ttl_expired(), UNITS and
change_time() below are the one interpretation both use (the fast path inlines
change_time()'s integer case).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UTF8_BOM = b"\xef\xbb\xbf"


NOT_BASE64 = "kinesis.data: not valid base64"

# --- the change record around its image ----------------------------------------------------

# The image that holds the item, by eventName: the new one, except for a REMOVE, which has none.
# SNAPSHOT is no stream's: it marks an item of a full table export (dmd.ingest.export), as it
# was at the export time; parsing accepts it only from records of source EXPORT.
SNAPSHOT = "SNAPSHOT"
IMAGE_OF = {"INSERT": "NewImage", "MODIFY": "NewImage", "REMOVE": "OldImage", SNAPSHOT: "NewImage"}
EXPORT = "export"  # StreamRecord.source of an item read from a DynamoDB table export

# DynamoDB's TTL sweeper deletes as this service principal; a client's delete names no service.
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


def ttl_expired(user: Any) -> bool:
    """Whether a change's `userIdentity` says TTL expiry removed the item."""
    return type(user) is dict and user.get("type") == "Service" and user.get("principalId") == TTL_PRINCIPAL


@dataclass(frozen=True, slots=True)
class TimeUnit:
    name: str  # timedelta's keyword, as messages name the unit
    step: timedelta  # a change time is EPOCH + step * ApproximateCreationDateTime (an integer)


# Units of dynamodb.ApproximateCreationDateTime. DynamoDB-to-Kinesis records say which in
# ApproximateCreationDateTimePrecision (DEFAULT_PRECISION when absent); DynamoDB Streams
# records carry seconds and no precision.
DEFAULT_PRECISION = "MILLISECOND"
UNITS = {
    "MILLISECOND": TimeUnit("milliseconds", timedelta(milliseconds=1)),
    "MICROSECOND": TimeUnit("microseconds", timedelta(microseconds=1)),
}
_SECONDS = TimeUnit("seconds", timedelta(seconds=1))


def change_time(value: Any, precision: Any, source: str) -> datetime | str:
    """The change's time from ApproximateCreationDateTime and its precision (as given, or
    DEFAULT_PRECISION when absent) in a record of `source`; or the reason it has none."""
    if type(value) is not int and type(value) is not float:
        return "dynamodb.ApproximateCreationDateTime: missing or not a number"
    unit = _SECONDS if source == "dynamodb" else UNITS.get(precision) if type(precision) is str else None
    if unit is None:
        return f"dynamodb.ApproximateCreationDateTimePrecision: {precision!r} is not {' or '.join(UNITS)}"
    try:
        if type(value) is int:  # exact, and twice as fast as the keyword constructor
            return EPOCH + unit.step * value
        # A float: the keyword constructor rounds unlike step * value (0.0025 ms: 2 µs, not 3).
        return EPOCH + timedelta(**{unit.name: value})
    except (OverflowError, ValueError):
        return f"dynamodb.ApproximateCreationDateTime: {value!r} {unit.name} is out of range"


class EnvelopeError(ValueError):
    """The event itself (not one of its records) is not a Lambda stream event."""


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 µs per record here
class StreamRecord:
    """One record of a batch, as received (treat as read-only)."""

    source: str  # "kinesis" | "dynamodb" | "line" (an unreadable line of a local events file) | "export"
    shard: str
    sequence_number: str  # Lambda's itemIdentifier for batchItemFailures
    arrived: float  # when the stream received it, seconds since the epoch (0: unknown); names objects
    payload: bytes | None = None  # the change record's bytes when known up front (replay); see decoded()
    raw: str = ""  # kinesis: `data` as received; line, export: the line (base64 if not UTF-8)
    raw_encoding: str = "kinesis-data"  # how `raw` is kept: "kinesis-data", "text" or "base64"
    document: Mapping[str, Any] | None = None  # dynamodb: the change record, already parsed
    problem: str = ""  # why the record could not even be read (e.g. invalid base64)
    # the stream it came from (the event source ARN; a file's lines: ""): with the shard and the
    # sequence number, a record's identity, since two streams may share shard ids and numbers
    stream: str = ""

    @property
    def arrival(self) -> datetime:
        """`arrived` as an aware UTC datetime (made on demand: a batch needs only its earliest)."""
        return datetime.fromtimestamp(self.arrived, UTC)

    def decoded(self) -> bytes | None:
        """The change record's bytes: `payload`, or a Kinesis record's `data` base64-decoded
        now (while it is parsed, so a batch never holds all its decoded payloads at once:
        ~9 MB for 10,000 records); None when `data` is not valid base64."""
        if self.payload is not None:
            return self.payload
        if self.source == "kinesis" and not self.problem:
            return _base64(self.raw)
        return None

    def original(self) -> tuple[str, str]:
        """(text, encoding) to keep in an error document, byte for byte.

        encoding "text": the change record's JSON text; "kinesis-data": the `kinesis.data`
        value as received (invalid base64, or bytes that are not UTF-8); "base64": the base64
        of a line of an events file (or of an export) that was not UTF-8. An export's item is
        kept as its line in the export; `payload` is the change record made from it.
        """
        if self.source == EXPORT:
            return self.raw, self.raw_encoding
        if self.document is not None:
            return json_text(self.document), "text"
        payload = self.decoded()
        if payload is not None:
            try:
                return payload.decode("utf-8"), "text"
            except UnicodeDecodeError:
                return self.raw, "kinesis-data"
        return self.raw, self.raw_encoding


def json_text(value: Any) -> str:
    """JSON text of a value decoded from a Lambda event, whatever it holds.

    orjson refuses what Python's json (which decodes Lambda events) accepts: integers beyond
    64 bits and lone surrogates. Those fall back to json.dumps, which writes both (surrogates
    as \\u escapes) so the text still decodes to the same value; no record is lost to them.
    """
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return json.dumps(repr(value)[:100_000])  # not reachable from decoded JSON; keeps a trace


def _base64(data: str) -> bytes | None:
    """`data` decoded, or None when it is not valid base64.

    msgspec's decoder is 3x faster than binascii's strict mode and accepts a subset of it (no
    surplus padding) with the same bytes (a test holds them to that); binascii decides the rest.
    """
    try:
        return msgspec.convert(data, bytes)
    except msgspec.ValidationError:
        pass
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except ValueError:  # binascii.Error, or a str that is not ASCII
        return None


# Seconds since the epoch that datetime can hold (years 1..9999), with a day to spare either side.
_FIRST_SECOND, _LAST_SECOND = -62_135_596_800 + 86_400, 253_402_300_800 - 86_400


def _arrival(seconds: Any) -> float:
    if (type(seconds) is float or type(seconds) is int) and _FIRST_SECOND < seconds < _LAST_SECOND:
        return float(seconds)  # NaN fails the comparison
    return 0.0  # unknown: the epoch; only used to name objects


def decode_event(event: Any) -> list[StreamRecord]:
    """The records of a Lambda Kinesis or DynamoDB Streams event, in stream order."""
    if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list):
        raise EnvelopeError("not a Lambda stream event: expected an object with a 'Records' array")
    record = _record
    return [record(r, i) for i, r in enumerate(event["Records"])]


def _brief(value: Any) -> str:
    """A value named in a message: short strings quoted, anything else by its JSON type only."""
    return repr(value[:40]) if type(value) is str else f"a JSON {type(value).__name__}"


def _unreadable(r: Any, problem: str) -> StreamRecord:
    # No sequence number to report: if its error document cannot be written, the handler
    # fails the whole batch rather than lose it.
    return StreamRecord("unknown", "", "", 0.0, raw=json_text(r), raw_encoding="text", problem=problem)


def _record(r: Any, index: int) -> StreamRecord:
    # `type(x) is dict` first: isinstance() against the Mapping ABC costs ~0.5 µs per call.
    if type(r) is not dict and not isinstance(r, Mapping):
        return _unreadable(r, f"Records[{index}]: not an object")
    source = r.get("eventSource")
    if source == "aws:kinesis":
        k = r.get("kinesis")
        if (type(k) is not dict and not isinstance(k, Mapping)) or type(k.get("sequenceNumber")) is not str:
            return _unreadable(r, f"Records[{index}]: a Kinesis record needs kinesis.sequenceNumber")
        data = k.get("data")
        event_id = r.get("eventID")
        arn = r.get("eventSourceARN")
        if type(data) is str:  # the common case, positionally; decoded when parsed (decoded())
            return StreamRecord(
                "kinesis",
                event_id.partition(":")[0] if type(event_id) is str else "",
                k["sequenceNumber"],
                _arrival(k.get("approximateArrivalTimestamp")),
                None,
                data,
                stream=arn if type(arn) is str else "",
            )
        return StreamRecord(
            "kinesis",
            event_id.partition(":")[0] if type(event_id) is str else "",
            k["sequenceNumber"],
            _arrival(k.get("approximateArrivalTimestamp")),
            payload=None,
            raw=json_text(data),
            problem=NOT_BASE64,
            stream=arn if type(arn) is str else "",
        )
    if source == "aws:dynamodb":
        ddb = r.get("dynamodb")
        if not isinstance(ddb, Mapping) or type(ddb.get("SequenceNumber")) is not str:
            return _unreadable(r, f"Records[{index}]: a DynamoDB Streams record needs dynamodb.SequenceNumber")
        arn = r.get("eventSourceARN")
        arn = arn if type(arn) is str else ""
        # the shard of a DynamoDB Streams record is not in it; the stream is the best it has
        return StreamRecord(
            "dynamodb",
            arn,
            ddb["SequenceNumber"],
            _arrival(ddb.get("ApproximateCreationDateTime")),
            document=r,
            stream=arn,
        )
    return _unreadable(r, f"Records[{index}]: unsupported eventSource {_brief(source)}")


def read_lines(lines: Iterable[bytes], name: str) -> Iterator[list[StreamRecord]]:
    """Batches from a JSON-lines file of Lambda events (one event per line).

    A line that is not a stream event becomes one StreamRecord of source "line", so it ends
    in an error document like any other unreadable record instead of stopping the run. A UTF-8
    byte-order mark at the start of the file (editors on Windows write one) is not part of it.
    """
    for number, line in enumerate(lines, start=1):
        if number == 1:
            line = line.removeprefix(UTF8_BOM)
        if not line.strip():
            continue
        try:
            yield decode_event(orjson.loads(line))
        except (orjson.JSONDecodeError, EnvelopeError) as e:
            line = line.rstrip(b"\r\n")
            try:
                raw, encoding = line.decode("utf-8"), "text"
            except UnicodeDecodeError:
                raw, encoding = base64.b64encode(line).decode(), "base64"
            problem = f"{name} line {number}: not a Lambda stream event ({e})"
            yield [StreamRecord("line", name, f"line-{number}", 0.0, raw=raw, raw_encoding=encoding, problem=problem)]
