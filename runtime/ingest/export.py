"""A DynamoDB table export (full or incremental, DynamoDB JSON) read as StreamRecords, so its
items go through the very parsing, validation, PII rules and encoders of the stream.

The layout AWS writes (DynamoDB developer guide, "DynamoDB table export output format"):

    {export-prefix}/AWSDynamoDB/{ExportId}/manifest-summary.json   one JSON object
    {export-prefix}/AWSDynamoDB/{ExportId}/manifest-files.json     JSON lines: itemCount, md5Checksum,
                                                                   etag, dataFileS3Key (a bucket key)
    {export-prefix}/AWSDynamoDB/{ExportId}/data/*.json.gz          a full export's data files
    {export-prefix}/AWSDynamoDB/data/*.json.gz                     an incremental export's

Data files are gzipped JSON lines. A full export's line is `{"Item": {...}}`; an incremental
export's is `{"Metadata": {"WriteTimestampMicros": {"N": "..."}}, "Keys": {...}, "NewImage":
{...}, "OldImage": {...}}` with the images its view type (NEW_AND_OLD_IMAGES or NEW_IMAGE) keeps.

Each item becomes the change record the stream would carry for it (`payload`), its item image
spliced in byte for byte: a full export's item as a SNAPSHOT at the export time; an incremental
export's as the change it describes at its write time (no NewImage: a REMOVE of the OldImage,
PII redacted as for any REMOVE). An error document keeps the export's line itself (`raw`), and
the record's `stream` names the export (`ExportContext.text`), which is all `dmd replay` needs to
make the same record again.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import orjson

from .envelope import EPOCH, EXPORT, SNAPSHOT, StreamRecord

SUMMARY = "manifest-summary.json"
FILES = "manifest-files.json"
ROOT_FOLDER = "AWSDynamoDB/"  # every key of an export has it; what precedes it is the export prefix
FULL, INCREMENTAL = "FULL_EXPORT", "INCREMENTAL_EXPORT"
NEW_AND_OLD_IMAGES, NEW_IMAGE = "NEW_AND_OLD_IMAGES", "NEW_IMAGE"
_CONTEXT = "dynamodb-export"  # the first field of ExportContext.text


class ExportError(ValueError):
    """The export cannot be read at all (a manifest missing or malformed, an ION export)."""


@dataclass(frozen=True, slots=True)
class ExportContext:
    """What turns one line of a data file into a change record, besides the line."""

    kind: str  # FULL or INCREMENTAL
    time: datetime  # the export time: a full export's items are as they were then
    view: str  # an incremental export's view type
    arn: str  # the export's ARN: with the data file and the line, an item's identity

    @property
    def export_id(self) -> str:
        return self.arn.rpartition("/")[2]

    @property
    def text(self) -> str:
        stamp = self.time.isoformat(timespec="microseconds").replace("+00:00", "Z")
        return "|".join((_CONTEXT, self.kind, stamp, self.view, self.arn))

    @classmethod
    def from_text(cls, text: str) -> ExportContext:
        parts = text.split("|", 4)
        if len(parts) != 5 or parts[0] != _CONTEXT:
            raise ExportError(f"not an export context: {text[:80]!r}")
        return cls(parts[1], _time(parts[2], "export time"), parts[3], parts[4])


@dataclass(frozen=True, slots=True)
class DataFile:
    key: str  # dataFileS3Key as the manifest has it
    items: int
    md5: str

    @property
    def name(self) -> str:
        return self.key.rpartition("/")[2]


@dataclass(frozen=True)
class Summary:
    context: ExportContext
    item_count: int
    files_key: str  # manifestFilesS3Key


def _time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise ExportError(f"{SUMMARY}: {name} missing")
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ExportError(f"{SUMMARY}: {name} {value[:40]!r} is not an ISO-8601 time") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def read_summary(body: bytes) -> Summary:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ExportError(f"{SUMMARY}: not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise ExportError(f"{SUMMARY}: not a JSON object")
    output = doc.get("outputFormat", "DYNAMODB_JSON")
    if output == "ION":
        raise ExportError(
            "this export is in Amazon Ion format, which dmd backfill does not read; export the table again "
            "with --export-format DYNAMODB_JSON"
        )
    if output != "DYNAMODB_JSON":
        raise ExportError(f"{SUMMARY}: outputFormat {str(output)[:40]!r} is not DYNAMODB_JSON")
    kind = doc.get("exportType", FULL)
    if kind not in (FULL, INCREMENTAL):
        raise ExportError(f"{SUMMARY}: exportType {str(kind)[:40]!r} is not {FULL} or {INCREMENTAL}")
    arn = doc.get("exportArn")
    if not isinstance(arn, str) or "/export/" not in arn:
        raise ExportError(f"{SUMMARY}: exportArn missing or not an export ARN")
    # An incremental export has no single point in time; its window's end stands in where a
    # time is needed for the whole export (object names).
    when = doc.get("exportTime") or doc.get("exportToTime") or doc.get("startTime")
    view = doc.get("outputView") or (NEW_AND_OLD_IMAGES if kind == INCREMENTAL else "")
    if kind == INCREMENTAL and view not in (NEW_AND_OLD_IMAGES, NEW_IMAGE):
        raise ExportError(f"{SUMMARY}: outputView {str(view)[:40]!r} is not {NEW_AND_OLD_IMAGES} or {NEW_IMAGE}")
    files_key = doc.get("manifestFilesS3Key")
    count = doc.get("itemCount")
    return Summary(
        ExportContext(kind, _time(when, "exportTime"), str(view), arn),
        count if type(count) is int else 0,
        files_key if isinstance(files_key, str) else "",
    )


def read_files(body: bytes) -> list[DataFile]:
    out = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as e:
            raise ExportError(f"{FILES} line {number}: not JSON ({e})") from None
        key = doc.get("dataFileS3Key") if isinstance(doc, dict) else None
        if not isinstance(key, str) or ROOT_FOLDER not in key:
            raise ExportError(f"{FILES} line {number}: dataFileS3Key missing or not under {ROOT_FOLDER}")
        items = doc.get("itemCount")
        md5 = doc.get("md5Checksum")
        out.append(DataFile(key, items if type(items) is int else 0, md5 if isinstance(md5, str) else ""))
    return out


def relative_key(key: str) -> str:
    """A manifest's key from its `AWSDynamoDB/` on: where it lies below the export prefix,
    whether the manifest wrote the prefix or not, and wherever the export was copied to."""
    return key[key.index(ROOT_FOLDER) :]


# --- lines -> StreamRecords ------------------------------------------------------------------------


class _Number(msgspec.Struct, gc=False):
    N: str


class _Metadata(msgspec.Struct, gc=False):
    WriteTimestampMicros: _Number | int


_NONE = msgspec.Raw(b"")


class _Line(msgspec.Struct, gc=False):
    Item: msgspec.Raw = _NONE
    Metadata: _Metadata | None = None
    NewImage: msgspec.Raw = _NONE
    OldImage: msgspec.Raw = _NONE
    Keys: msgspec.Raw = _NONE


_LINE = msgspec.json.Decoder(_Line)


def _micros(t: datetime) -> int:
    d = t - EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def records(lines: Iterable[bytes], context: ExportContext, data_file: str) -> Iterator[StreamRecord]:
    """The StreamRecord of each item of a data file (its lines, gunzipped), in file order.

    `data_file` is its key below the export prefix (`relative_key`), the record's `shard`.
    """
    name = data_file.rpartition("/")[2]
    arrived = context.time.timestamp()
    head = b'{"eventID":' + orjson.dumps(context.export_id) + b',"eventName":"'
    export_micros = str(_micros(context.time)).encode()
    stream = context.text
    for number, line in enumerate(lines, start=1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        seq = f"{name}:{number}"
        try:
            raw, encoding = line.decode("utf-8"), "text"
        except UnicodeDecodeError:
            raw, encoding = base64.b64encode(line).decode(), "base64"
        payload, problem = change_record(line, context, head, export_micros)
        if problem:
            problem = f"{data_file} line {number}: {problem}"
        yield StreamRecord(EXPORT, data_file, seq, arrived, payload, raw, encoding, problem=problem, stream=stream)


def change_record(line: bytes, context: ExportContext, head: bytes, export_micros: bytes) -> tuple[bytes | None, str]:
    """(the change record's JSON, "") or (None, why the line is no export item)."""
    try:
        doc = _LINE.decode(line)
    except (msgspec.DecodeError, ValueError, RecursionError) as e:
        return None, f"not an item of a DynamoDB JSON export ({e})"
    if context.kind == FULL:
        if not doc.Item:
            return None, "a full export's line has no Item"
        operation, image, when = SNAPSHOT, ("NewImage", doc.Item), export_micros
    else:
        if doc.Metadata is None:
            return None, "an incremental export's line has no Metadata.WriteTimestampMicros"
        stamp = doc.Metadata.WriteTimestampMicros
        when_text = stamp if type(stamp) is int else stamp.N  # type: ignore[union-attr]
        if type(when_text) is str and not when_text.isdigit():
            return None, "Metadata.WriteTimestampMicros is not a whole number"
        when = str(when_text).encode()
        if doc.NewImage:
            # NEW_IMAGE exports never carry the old image: a new image alone may be an update.
            insert = not doc.OldImage and context.view == NEW_AND_OLD_IMAGES
            operation, image = ("INSERT" if insert else "MODIFY"), ("NewImage", doc.NewImage)
        elif doc.OldImage:
            operation, image = "REMOVE", ("OldImage", doc.OldImage)
        else:
            return None, (
                "a delete that carries only the item's keys (a NEW_IMAGE export): its record type and "
                "fields are unknown; export with the NEW_AND_OLD_IMAGES view to archive deletes"
            )
    body = (
        head
        + operation.encode()
        + b'","dynamodb":{"ApproximateCreationDateTime":'
        + when
        + b',"ApproximateCreationDateTimePrecision":"MICROSECOND","'
        + image[0].encode()
        + b'":'
        + bytes(image[1])
        + b"}}"
    )
    return body, ""


def rebuild(text: str, encoding: str, data_file: str, seq: str, stream: str) -> StreamRecord:
    """The StreamRecord of an error document's export entry, as `records` made it."""
    context = ExportContext.from_text(stream)
    line = base64.b64decode(text) if encoding == "base64" else text.encode("utf-8", "surrogatepass")
    head = b'{"eventID":' + orjson.dumps(context.export_id) + b',"eventName":"'
    payload, problem = change_record(line, context, head, str(_micros(context.time)).encode())
    number = seq.rpartition(":")[2]
    if problem:
        problem = f"{data_file} line {number}: {problem}"
    return StreamRecord(
        EXPORT, data_file, seq, context.time.timestamp(), payload, text, encoding, problem=problem, stream=stream
    )
