"""`dmd replay`: re-drive error documents through the current schemas.

After a schema or data fix, the records kept in error documents are rebuilt as the stream
records they were (from each document's `events` and `records`, respecting `encoding`) and
processed again, exactly as the Lambda function would: records that now parse are archived,
the rest land in error documents again.

A replayed document is moved aside, to `replayed/` beside it (`{errors_prefix}/x.json` ->
`{errors_prefix}/replayed/x.json`, so the prefix's lifecycle expiry and access policy keep
covering it), and only after every record from it was stored. It is never
deleted before: the copy is written first, then the original removed. Keys are deterministic,
so running replay twice is harmless: a moved document is not read again, a document whose
records still fail is rewritten in place under the same key, and an interrupted move (copy
written, original not yet removed) is finished on the next run without processing it again.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dmd.ingest import export
from dmd.ingest.config import Settings
from dmd.ingest.envelope import EPOCH, EXPORT, NOT_BASE64, StreamRecord, decode_event, read_lines
from dmd.ingest.pipeline import process_batch
from dmd.lake import layout
from dmd.lake.errordoc import ErrorDocument, ErrorEntry, InvalidErrorDocument
from dmd.lake.storage import LocalStorage, S3Policy, Storage, StorageError, open_storage
from dmd.support.records import RecordSpec


@dataclass(frozen=True)
class Source:
    """Where error documents are read from: a storage and a key prefix ('' or ending in '/'),
    or one document (`single`)."""

    storage: Storage
    prefix: str
    same_as_lake: bool  # the lake's storage: a rewritten error document may share a key
    single: str = ""

    def keys(self) -> tuple[list[str], set[str]]:
        """(error documents to replay, documents already moved aside)."""
        if self.single:
            aside = layout.replayed_key(self.single)
            return [self.single], {aside} & set(self.storage.list(layout.folder(self.single)))
        documents, replayed = [], set()
        for key in self.storage.list(self.prefix):
            if not layout.is_error_document(key):
                continue
            if layout.is_replayed(key):
                replayed.add(key)
            else:
                documents.append(key)
        return documents, replayed


@dataclass
class DocumentOutcome:
    key: str
    records: int = 0
    archived: int = 0
    errors: int = 0
    not_stored: int = 0
    moved_to: str = ""
    note: str = ""  # why it was not moved, or "rewritten in place"


@dataclass
class ReplayReport:
    documents: list[DocumentOutcome] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(d.records for d in self.documents)

    @property
    def archived(self) -> int:
        return sum(d.archived for d in self.documents)

    @property
    def still_failing(self) -> int:
        return sum(d.errors for d in self.documents)

    @property
    def not_stored(self) -> int:
        return sum(d.not_stored for d in self.documents)

    @property
    def moved(self) -> int:
        return sum(1 for d in self.documents if d.moved_to)

    @property
    def kept(self) -> list[DocumentOutcome]:
        return [d for d in self.documents if not d.moved_to and d.note != "rewritten in place"]

    def text(self, location: str) -> str:
        lines = [
            f"replayed {len(self.documents)} error documents ({self.records} records) into {location}",
            f"  {'archived':<16} {self.archived:>8}",
            f"  {'still failing':<16} {self.still_failing:>8} (in error documents again)",
            f"  {'moved aside':<16} {self.moved:>8} documents (to {layout.REPLAYED} beside them)",
        ]
        if self.not_stored:
            lines.append(f"  {'NOT STORED':<16} {self.not_stored:>8} records (storage failures; run replay again)")
        for d in self.kept:
            lines.append(f"  kept {d.key}: {d.note}")
        return "\n".join(lines)


def locate(source: str, lake: str, lake_storage: Storage, endpoint_url: str | None, policy: S3Policy | None) -> Source:
    """SOURCE inside the lake uses the lake's storage (keys relative to it); otherwise its own."""
    if source.startswith("s3://") != lake.startswith("s3://"):
        inside = None
    elif source.startswith("s3://"):
        root = lake.rstrip("/") + "/"
        inside = source[len(root) :] if (source.rstrip("/") + "/").startswith(root) else None
    else:
        root_path, source_path = Path(lake).resolve(), Path(source).resolve()
        inside = source_path.relative_to(root_path).as_posix() if source_path.is_relative_to(root_path) else None
        if inside == ".":
            inside = ""
    if inside is not None:
        if source.startswith("s3://") or not Path(source).is_file():
            return Source(lake_storage, inside.rstrip("/") + "/" if inside.strip("/") else "", True)
        return Source(lake_storage, "", True, single=inside)
    if source.startswith("s3://"):
        bucket, _, prefix = source[5:].partition("/")
        storage = open_storage(f"s3://{bucket}", endpoint_url, policy)
        return Source(storage, prefix.rstrip("/") + "/" if prefix.strip("/") else "", False)
    path = Path(source)
    if path.is_file():
        return Source(LocalStorage(path.parent), "", False, single=path.name)
    return Source(LocalStorage(path), "", False)


def rebuild(doc: ErrorDocument, key: str) -> list[StreamRecord]:
    """The stream records an error document keeps, as the envelope decoder made them. The stamp
    in its name is its first record's arrival, to the second; keeping it keeps the keys of what
    the replay writes deterministic."""
    arrival = layout.stamp_of(key)
    arrived = arrival.timestamp() if arrival else EPOCH.timestamp()
    return [r for entry in doc.entries for r in _rebuild_one(entry, arrived)]


def _rebuild_one(entry: ErrorEntry, arrived: float) -> list[StreamRecord]:
    text, source, encoding = entry.text, entry.source, entry.encoding
    shard, seq, stream = entry.shard, entry.sequence_number, entry.stream
    if source == EXPORT:  # an item of a table export (dmd backfill), kept as its line
        return [export.rebuild(text, encoding, shard, seq, stream)]
    if source == "line":  # a line of an events file that was not a stream event
        line = base64.b64decode(text) if encoding == "base64" else text.encode("utf-8", "surrogatepass")
        return [r for batch in read_lines([line], shard) for r in batch]
    if source == "unknown":  # a Lambda record the envelope could not read: read it again
        try:
            record = json.loads(text)
        except ValueError:
            record = text
        return decode_event({"Records": [record]})
    if source == "dynamodb" and encoding == "text":
        try:
            document = json.loads(text)  # Python's json, as Lambda decodes events
        except ValueError:
            document = None
        if isinstance(document, dict):
            ddb = document.get("dynamodb")
            if isinstance(ddb, dict) and ddb.get("SequenceNumber") == seq:
                return [dataclasses.replace(decode_event({"Records": [document]})[0], shard=shard, stream=stream)]
        payload = text.encode("utf-8", "surrogatepass")
        return [StreamRecord("dynamodb", shard, seq, arrived, payload, text, "text", stream=stream)]
    if encoding == "kinesis-data":  # `kinesis.data` as received: decode it again
        try:
            payload = binascii.a2b_base64(text, strict_mode=True)
        except ValueError:
            payload = None
        problem = "" if payload is not None else NOT_BASE64
        return [StreamRecord("kinesis", shard, seq, arrived, payload=payload, raw=text, problem=problem, stream=stream)]
    payload = text.encode("utf-8", "surrogatepass")
    raw = base64.b64encode(payload).decode()
    return [StreamRecord("kinesis", shard, seq, arrived, payload=payload, raw=raw, stream=stream)]


@dataclass
class _Loaded:
    key: str
    body: bytes
    sources: list[StreamRecord]


def replay(
    source: Source,
    *,
    lake_storage: Storage,
    registry: Mapping[str, RecordSpec],
    settings: Settings,
) -> ReplayReport:
    """Each document is processed as a batch of its own, then moved: what it writes depends on
    that document only, so a run killed anywhere and run again rewrites the same keys instead of
    archiving a record twice (chunks of several documents would be composed differently once
    some documents had been moved)."""
    report = ReplayReport()
    keys, already = source.keys()
    for key in keys:
        outcome = DocumentOutcome(key)
        try:
            body = source.storage.get(key)
            aside = layout.replayed_key(key)
            if aside in already and source.storage.get(aside) == body:
                # copied aside by an interrupted run, after its records were stored: finish the move
                _remove(source, key, outcome, aside)
                report.documents.append(outcome)
                continue
            sources = rebuild(ErrorDocument.from_json(body), key)
        except InvalidErrorDocument as e:  # says what is wrong without quoting a record
            outcome.note = f"not replayed: {e}"
            report.documents.append(outcome)
            continue
        except (StorageError, ValueError, binascii.Error) as e:
            outcome.note = f"not replayed: {type(e).__name__}"  # no content: it may quote records
            report.documents.append(outcome)
            continue
        report.documents.append(_replay_document(_Loaded(key, body, sources), source, lake_storage, registry, settings))
    return report


def _replay_document(
    d: _Loaded,
    source: Source,
    lake_storage: Storage,
    registry: Mapping[str, RecordSpec],
    settings: Settings,
) -> DocumentOutcome:
    result = process_batch(d.sources, registry=registry, settings=settings, storage=lake_storage)
    outcome = DocumentOutcome(d.key, records=len(d.sources))
    outcome.archived = sum(x.records for x in result.data)
    outcome.errors = sum(x.records for x in result.errors)
    outcome.not_stored = result.failed_records
    if outcome.not_stored:
        outcome.note = f"{outcome.not_stored} records not stored; kept for the next run"
    elif source.same_as_lake and d.key in {x.key for x in result.errors}:
        outcome.note = "rewritten in place"  # its records still fail: the new document has its key
    else:
        _move(source, d, outcome)
    return outcome


def _move(source: Source, d: _Loaded, outcome: DocumentOutcome) -> None:
    aside = layout.replayed_key(d.key)
    try:
        source.storage.put(aside, d.body, "application/json")
    except StorageError:
        outcome.note = "its records are stored, but the copy aside failed; kept (a rerun moves it)"
        return
    _remove(source, d.key, outcome, aside)


def _remove(source: Source, key: str, outcome: DocumentOutcome, aside: str) -> None:
    try:
        source.storage.delete(key)
    except StorageError:
        outcome.note = f"copied to {aside} but not removed; a rerun finishes the move"
        return
    outcome.moved_to = aside
