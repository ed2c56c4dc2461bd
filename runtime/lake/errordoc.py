"""The error document: what the Lambda function writes for records it could not archive, and
what `dmd replay` reads back. One type, written and read here.

    {"timestamp": "...Z",                 when the batch was processed
     "error": {"message": "..."},          names the field and the reason, never a value
     "events": ["original text", ...],     the seed's format: each record as it arrived
     "records": [{"source", "shardId", "sequenceNumber", "encoding", "eventSourceARN"}, ...]}

`encoding` says how an event's text is kept: "kinesis-data" (the base64 `kinesis.data` as
received), "text" (a JSON document or line as text) or "base64" (bytes that were not UTF-8).
An item of a table export (`dmd backfill`) is kept as its line of the export's data file, with the
export named in `eventSourceARN` (dmd.ingest.export.ExportContext).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

ENCODINGS = ("kinesis-data", "text", "base64")


class InvalidErrorDocument(ValueError):
    """A document that is not an error document (tampered, truncated, another file)."""


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    text: str  # the record as it arrived, kept as `encoding` says
    source: str  # "kinesis", "dynamodb", "line", "unknown" or "export" (an item of a table export)
    shard: str
    sequence_number: str
    encoding: str
    stream: str = ""  # the event source ARN; documents written before it was kept have none


@dataclass(frozen=True, slots=True)
class ErrorDocument:
    timestamp: datetime
    message: str
    entries: tuple[ErrorEntry, ...]

    def to_json(self) -> bytes:
        doc = {
            "timestamp": self.timestamp.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "error": {"message": self.message},
            "events": [e.text for e in self.entries],
            "records": [
                {
                    "source": e.source,
                    "shardId": e.shard,
                    "sequenceNumber": e.sequence_number,
                    "encoding": e.encoding,
                    "eventSourceARN": e.stream,
                }
                for e in self.entries
            ],
        }
        try:
            return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
        except orjson.JSONEncodeError:  # a lone surrogate quoted in the message (from an inline record)
            return json.dumps(doc, indent=2, ensure_ascii=True).encode()

    @classmethod
    def from_json(cls, body: bytes) -> ErrorDocument:
        """Raises InvalidErrorDocument naming what is wrong (never quoting a record)."""
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError) as e:  # RecursionError: JSON nested beyond the parser's depth
            raise InvalidErrorDocument(f"not JSON ({type(e).__name__})") from None
        if not isinstance(doc, dict):
            raise InvalidErrorDocument(f"a JSON {type(doc).__name__}, not an object")
        events, records = doc.get("events"), doc.get("records")
        if not isinstance(events, list) or not isinstance(records, list) or len(events) != len(records):
            raise InvalidErrorDocument("'events' and 'records' are not two lists of the same length")
        error = doc.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        entries = tuple(_entry(i, text, meta) for i, (text, meta) in enumerate(zip(events, records, strict=True)))
        return cls(_timestamp(doc.get("timestamp")), message if isinstance(message, str) else "", entries)


def _entry(index: int, text: object, meta: object) -> ErrorEntry:
    if type(text) is not str:
        raise InvalidErrorDocument(f"events[{index}] is not a string")
    if not isinstance(meta, dict):
        raise InvalidErrorDocument(f"records[{index}] is not an object")
    fields = {}
    for name, default in (
        ("source", "kinesis"),
        ("shardId", ""),
        ("sequenceNumber", ""),
        ("encoding", "text"),
        ("eventSourceARN", ""),
    ):
        value = meta.get(name, default)
        if type(value) is not str:
            raise InvalidErrorDocument(f"records[{index}].{name} is not a string")
        fields[name] = value
    if fields["encoding"] not in ENCODINGS:
        raise InvalidErrorDocument(f"records[{index}].encoding is not one of {', '.join(ENCODINGS)}")
    return ErrorEntry(
        text,
        fields["source"],
        fields["shardId"],
        fields["sequenceNumber"],
        fields["encoding"],
        fields["eventSourceARN"],
    )


def _timestamp(value: object) -> datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.fromtimestamp(0, UTC)  # not needed to replay: the records carry what matters
