"""StreamRecord -> Parsed (a typed, validated, enriched record with its partition date) or
ArchiveError (the reason, naming field and cause, plus the original record)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import msgspec
import orjson

from dmd.support.records import Change, DecodeError, RecordSpec
from dmd.support.wiretypes import TypeOf

from .envelope import (
    DEFAULT_PRECISION,
    EPOCH,
    EXPORT,
    IMAGE_OF,
    NOT_BASE64,
    SNAPSHOT,
    UNITS,
    StreamRecord,
    change_time,
    ttl_expired,
)


class Parsed(msgspec.Struct, gc=False):  # built once per record, in C; treat as read-only
    spec: RecordSpec
    record: Any
    partition_date: date
    source: StreamRecord


@dataclass(frozen=True, slots=True)
class ArchiveError:
    message: str
    sources: tuple[StreamRecord, ...]
    type_name: str = ""  # the registered record type the records claim, once known (for metrics)


# --- fast path ------------------------------------------------------------------------------
# A Kinesis record's JSON text decoded by msgspec into Structs: only the attributes used are
# materialised, the images stay raw text until the record type's own decoder reads them. It
# accepts a subset of what the exact path below accepts (Kinesis, an operation and a precision
# from the envelope's tables, an integer change time, every value of the expected JSON type)
# and gives the same result; anything else returns None and the exact path decides. One
# difference, on purpose: a number beyond a double (1E400) in an attribute nobody reads is
# valid JSON to msgspec but not to orjson; the record is archived.

_NO_IMAGE = msgspec.Raw(b"")


# The envelope's tables as Literal types: msgspec admits only their keys, in C, and hands back
# the tables' own strings (hashes cached), so the lookups below cost no hashing.
class _Stream(msgspec.Struct, gc=False):
    ApproximateCreationDateTime: int
    ApproximateCreationDateTimePrecision: Literal[tuple(UNITS)] = DEFAULT_PRECISION  # type: ignore[valid-type]
    NewImage: msgspec.Raw = _NO_IMAGE
    OldImage: msgspec.Raw = _NO_IMAGE


class _ChangeRecord(msgspec.Struct, gc=False):
    eventName: Literal[tuple(IMAGE_OF)]  # type: ignore[valid-type]
    dynamodb: _Stream
    eventID: str = ""
    userIdentity: dict[str, Any] | None = None


_CHANGE_RECORD = msgspec.json.Decoder(_ChangeRecord)
_TYPE_OF = msgspec.json.Decoder(TypeOf)
_UNREADABLE = (msgspec.DecodeError, ValueError, RecursionError)  # ValueError: not UTF-8


def parse_fast(
    source: StreamRecord, registry: Mapping[str, RecordSpec], settings: Mapping[str, str], payload: bytes | None = None
) -> Parsed | None:
    if (source.source != "kinesis" and source.source != EXPORT) or source.problem:
        return None
    if payload is None:
        payload = source.decoded()
        if payload is None:
            return None
    if not payload.isascii():  # msgspec skips what it does not read without checking its UTF-8
        try:
            payload.decode()
        except UnicodeDecodeError:
            return None
    try:
        doc = _CHANGE_RECORD.decode(payload)
    except _UNREADABLE:
        return None
    operation = doc.eventName
    if operation == SNAPSHOT and source.source != EXPORT:
        return None
    ddb = doc.dynamodb
    # change_time()'s integer case, inlined: the call alone costs ~1.5% of the parse time.
    try:
        when = EPOCH + UNITS[ddb.ApproximateCreationDateTimePrecision].step * ddb.ApproximateCreationDateTime
    except OverflowError:
        return None
    image = getattr(ddb, IMAGE_OF[operation])
    if not image:
        return None
    try:
        spec = registry.get(_TYPE_OF.decode(image).type.S)
    except _UNREADABLE:
        return None
    if spec is None or spec.decode_json is None:
        return None
    user = doc.userIdentity
    ttl = user is not None and ttl_expired(user)  # most changes have no userIdentity: no call
    change = Change(operation, ttl, source.sequence_number, when, doc.eventID)
    record = spec.decode_json(image, change, settings)
    if record is None:
        return None
    return Parsed(spec, record, spec.partition_date(record, when), source)


# --- exact path -------------------------------------------------------------------------------


def parse(
    source: StreamRecord, registry: Mapping[str, RecordSpec], settings: Mapping[str, str]
) -> Parsed | ArchiveError:
    if source.problem:
        return ArchiveError(source.problem, (source,))
    if source.document is not None:
        return parse_exact(source, registry, settings)
    payload = source.decoded()
    if payload is None:
        return ArchiveError(NOT_BASE64, (source,))
    parsed = parse_fast(source, registry, settings, payload)
    if parsed is not None:
        return parsed
    return parse_exact(source, registry, settings, payload)


def parse_exact(
    source: StreamRecord, registry: Mapping[str, RecordSpec], settings: Mapping[str, str], payload: bytes | None = None
) -> Parsed | ArchiveError:
    """Parsed JSON, checked value by value; every error message comes from here."""
    if source.problem:
        return ArchiveError(source.problem, (source,))
    doc: Any = source.document
    if doc is None:
        if payload is None:
            payload = source.decoded()
            if payload is None:
                return ArchiveError(NOT_BASE64, (source,))
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as e:
            return ArchiveError(f"record: not valid JSON ({e})", (source,))
    if type(doc) is not dict:
        return ArchiveError(f"record: expected a JSON object, got {type(doc).__name__}", (source,))
    operation = doc.get("eventName")
    image_name = IMAGE_OF.get(operation) if type(operation) is str else None
    if image_name is None:
        shown = repr(operation[:40]) if type(operation) is str else f"a JSON {type(operation).__name__}"
        stream_operations = ", ".join(op for op in IMAGE_OF if op != SNAPSHOT)
        return ArchiveError(f"eventName: {shown} is not one of {stream_operations}", (source,))
    if operation == SNAPSHOT and source.source != EXPORT:
        return ArchiveError(f"eventName: {SNAPSHOT!r} marks items of a table export, not stream records", (source,))
    ddb = doc.get("dynamodb")
    if type(ddb) is not dict:
        return ArchiveError("dynamodb: missing or not an object", (source,))
    image = ddb.get(image_name)
    # where the image is, as its record has it: an export's line holds it as `Item` (a full
    # export) or NewImage/OldImage (an incremental one), not inside a `dynamodb` object
    where = f"dynamodb.{image_name}" if source.source != EXPORT else "Item" if operation == SNAPSHOT else image_name
    if type(image) is not dict:
        return ArchiveError(f"{where}: missing (the stream must carry item images)", (source,))
    type_av = image.get("type")
    type_name = type_av.get("S") if type(type_av) is dict else None
    spec = registry.get(type_name) if type(type_name) is str else None
    if spec is None:
        registered = ", ".join(sorted(registry))
        if type(type_name) is str:
            reason = f"{type_name[:40]!r} is not a registered record type ({registered})"
        else:  # absent, or not a string attribute: no value to name
            reason = f"missing or not a string ('S') attribute; the registered record types are {registered}"
        return ArchiveError(f"{where}.type: {reason}", (source,))
    precision = ddb.get("ApproximateCreationDateTimePrecision", DEFAULT_PRECISION)
    when = change_time(ddb.get("ApproximateCreationDateTime"), precision, source.source)
    if type(when) is str:
        return ArchiveError(when, (source,), type_name)
    ttl = ttl_expired(doc.get("userIdentity"))
    event_id = doc.get("eventID")
    change = Change(operation, ttl, source.sequence_number, when, event_id if type(event_id) is str else "")
    try:
        record = spec.decode(image, change, settings)
    except DecodeError as e:
        return ArchiveError(f"invalid {type_name} record in {where}: {e}", (source,), type_name)
    return Parsed(spec, record, spec.partition_date(record, when), source)
