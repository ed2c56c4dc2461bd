"""One batch: parse -> group by (type, partition date) -> encode -> deliver.

Every input record ends in exactly one place: a data container, an error document, or the
`failed` list (its delivery failed; the caller reports it for retry). Nothing is dropped.
"""

from __future__ import annotations

import gc
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from operator import attrgetter
from typing import Any

from dmd.lake import layout
from dmd.lake.errordoc import ErrorDocument, ErrorEntry
from dmd.lake.formats import FORMATS
from dmd.lake.state import Partition, touched_body
from dmd.lake.storage import Storage, StorageError
from dmd.support.records import RecordSpec

from .config import Settings
from .envelope import StreamRecord
from .parse import ArchiveError, Parsed, parse

MAX_PARALLEL_PUTS = 8


@dataclass(frozen=True, slots=True)
class Delivered:
    key: str
    location: str
    records: int
    type_name: str = ""  # "" for an error document
    partition_date: date | None = None
    sources: tuple[StreamRecord, ...] = ()  # the records it holds (replay moves their documents)
    size: int = 0  # bytes written
    oldest_change: datetime | None = None  # change time of its first record in stream order (metrics)
    error_type: str = ""  # an error document's record type, when the error names a registered one


@dataclass(frozen=True, slots=True)
class Failed:
    key: str
    reason: str  # the storage error; never a record value
    sources: tuple[StreamRecord, ...]
    cause: str = ""  # the AWS error code or OS error, in a few words
    permanent: bool = False  # no retry can help until the configuration or the lake changes
    type_name: str = ""  # the record type of a data container or an error document, if known


@dataclass(frozen=True)
class BatchResult:
    records_in: int
    data: tuple[Delivered, ...]
    errors: tuple[Delivered, ...]
    failed: tuple[Failed, ...]

    @property
    def delivered_by_type(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for d in self.data:
            counts[d.type_name] += d.records
        return dict(sorted(counts.items()))

    @property
    def error_records(self) -> int:
        return sum(d.records for d in self.errors)

    @property
    def failed_records(self) -> int:
        return sum(len(f.sources) for f in self.failed)

    def failed_sequence_numbers(self) -> list[str]:
        """Sequence numbers to report as batchItemFailures, unique, in stream order (a shard's
        sequence numbers grow; Lambda resumes from the lowest one reported)."""
        seen = {s.sequence_number: s for f in self.failed for s in f.sources}
        return [s.sequence_number for s in sorted(seen.values(), key=_seq_key)]


@dataclass(frozen=True, slots=True)
class _Put:
    key: str
    body: bytes
    content_type: str
    sources: tuple[StreamRecord, ...]
    type_name: str = ""
    partition_date: date | None = None
    oldest_change: datetime | None = None
    error_type: str = ""


def _arrived(s: StreamRecord) -> float:
    return s.arrived


def _seq_key(s: StreamRecord) -> tuple[int, str]:
    return len(s.sequence_number), s.sequence_number  # decimal strings of varying length


def _positions(sources: Sequence[StreamRecord]) -> list[str]:
    """Per stream and shard: first and last sequence number and count; records without a
    sequence number (a file's lines, a record missing one) by their content, which is all that
    tells them apart."""
    by_shard: dict[tuple[str, str], list[StreamRecord]] = {}
    for s in sources:
        by_shard.setdefault((s.stream, s.shard), []).append(s)
    out = []
    for stream, shard in sorted(by_shard):
        items = sorted(by_shard[(stream, shard)], key=_seq_key)
        out += [stream, shard, items[0].sequence_number, items[-1].sequence_number, str(len(items))]
    unnumbered = sorted(_content_digest(s) for s in sources if not s.sequence_number)
    return out + unnumbered


def _content_digest(s: StreamRecord) -> str:
    return hashlib.sha256(s.original()[0].encode("utf-8", "surrogatepass")).hexdigest()


def data_key(settings: Settings, table: str, day: date, sources: Sequence[StreamRecord]) -> str:
    first = min(sources, key=_arrived).arrival
    oid = layout.object_id(settings.format, table, day.isoformat(), *_positions(sources))
    return layout.data_key(settings.prefix, FORMATS[settings.format], table, day, first, oid)


def error_key(settings: Settings, sources: Sequence[StreamRecord], occurrence: int = 1) -> str:
    """Named by where the records came from and what they are, so a retry rewrites its own
    document while two different records never share one (the same position can hold two
    contents: lines of two files of one name, one sequence number in two bad records)."""
    first = min(sources, key=_arrived).arrival
    parts = _positions(sources) + [_content_digest(s) for s in sources if s.sequence_number]
    if occurrence > 1:  # the same record twice in a batch: two records, two documents
        parts.append(str(occurrence))
    return layout.error_key(settings.errors_prefix, first, layout.object_id("error", *parts))


def error_document(error: ArchiveError, now: datetime) -> bytes:
    """The seed's `{timestamp, error: {message}, events: [original...]}`, plus where each
    event came from and how its text is kept, so `dmd replay` can re-drive it."""
    entries = []
    for s in error.sources:
        text, encoding = s.original()
        entries.append(ErrorEntry(text, s.source, s.shard, s.sequence_number, encoding, s.stream))
    return ErrorDocument(now, error.message, tuple(entries)).to_json()


def _encode_group(
    settings: Settings, spec: RecordSpec, items: list[Parsed]
) -> tuple[bytes | None, list[Parsed], list[ArchiveError]]:
    """Encode a group; if the encoder rejects it, isolate the records it rejects one by one
    so a single bad record never costs its group."""
    fmt = FORMATS[settings.format]
    records = [p.record for p in items]
    try:
        return fmt.encode(spec, records, settings.codec), items, []
    except Exception:
        pass
    good: list[Parsed] = []
    bad: list[ArchiveError] = []
    for p in items:
        try:
            fmt.encode(spec, [p.record], settings.codec)
            good.append(p)
        except Exception as e:
            message = f"{spec.type_name}: cannot encode as {settings.format}: {e}"
            bad.append(ArchiveError(message, (p.source,), spec.type_name))
    if not good:
        return None, [], bad
    return fmt.encode(spec, [p.record for p in good], settings.codec), good, bad


def _by_type(groups: Mapping[tuple[str, date], list[Parsed]]) -> dict[str, list[date]]:
    """The partition dates of each type, in the order the groups were formed."""
    out: dict[str, list[date]] = {}
    for type_name, day in groups:
        out.setdefault(type_name, []).append(day)
    return out


def _encode_type(
    settings: Settings, groups: list[list[Parsed]]
) -> list[tuple[bytes | None, list[Parsed], list[ArchiveError]]]:
    """Encode the groups of one type together (see encode_groups); if that fails, group by
    group, isolating the records the encoder rejects."""
    spec = groups[0][0].spec
    try:
        bodies = FORMATS[settings.format].encode_groups(spec, [[p.record for p in g] for g in groups], settings.codec)
    except Exception:
        return [_encode_group(settings, spec, g) for g in groups]
    return [(body, g, []) for body, g in zip(bodies, groups, strict=True)]


@cache
def _pool() -> Any:
    from concurrent.futures import ThreadPoolExecutor  # imported on the first parallel puts

    return ThreadPoolExecutor(max_workers=MAX_PARALLEL_PUTS, thread_name_prefix="dmd-put")


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a batch is processed.

    A batch allocates tens of thousands of short-lived, acyclic objects (parsed JSON, records),
    which reference counting frees; meanwhile the collector would traverse everything the batch
    holds again and again (~20% of the parse time of a 10,000-record batch).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def parse_batch(
    sources: Sequence[StreamRecord], *, registry: Mapping[str, RecordSpec], settings: Settings
) -> tuple[dict[tuple[str, date], list[Parsed]], list[ArchiveError]]:
    """Parse every record; the good ones grouped by (type, partition date), in stream order."""
    groups: dict[tuple[str, date], list[Parsed]] = {}
    errors: list[ArchiveError] = []
    record_settings = settings.record_settings
    registry = dict(registry)  # a plain dict: .get() on the registry's MappingProxy is slower
    with gc_paused():
        for source in sources:
            result = parse(source, registry, record_settings)
            if type(result) is Parsed:
                key = (result.spec.type_name, result.partition_date)
                group = groups.get(key)
                if group is None:
                    groups[key] = [result]
                else:
                    group.append(result)
            else:
                errors.append(result)  # type: ignore[arg-type]
    return groups, errors


def process_batch(
    sources: Sequence[StreamRecord],
    *,
    registry: Mapping[str, RecordSpec],
    settings: Settings,
    storage: Storage,
    now: datetime | None = None,
) -> BatchResult:
    with gc_paused():
        return _process_batch(sources, registry, settings, storage, now or datetime.now(UTC))


def _process_batch(
    sources: Sequence[StreamRecord],
    registry: Mapping[str, RecordSpec],
    settings: Settings,
    storage: Storage,
    now: datetime,
) -> BatchResult:
    groups, errors = parse_batch(sources, registry=registry, settings=settings)
    puts: list[_Put] = []
    content_type = FORMATS[settings.format].content_type
    for type_name, days in _by_type(groups).items():
        for day, (body, good, bad) in zip(
            days, _encode_type(settings, [groups[(type_name, d)] for d in days]), strict=True
        ):
            errors.extend(bad)
            if body is not None:
                group_sources = tuple(p.source for p in good)
                key = data_key(settings, good[0].spec.table, day, group_sources)  # the type's current table
                oldest = _change_time_of(good[0].spec)  # stream order: a shard's first is its oldest
                changed = oldest(good[0].record) if oldest is not None else None
                puts.append(_Put(key, body, content_type, group_sources, type_name, day, changed))
    occurrences: Counter[str] = Counter()
    for error in errors:
        key = error_key(settings, error.sources)
        occurrences[key] += 1
        if occurrences[key] > 1:
            key = error_key(settings, error.sources, occurrences[key])
        puts.append(
            _Put(key, error_document(error, now), "application/json", error.sources, error_type=error.type_name)
        )

    unmarked: tuple[Failed, ...] = ()
    marker = _touched_marker(settings, puts)
    if marker is not None:
        # Put before any data, so no data is written that the compactor cannot find. If it
        # fails, no data is written and the data puts are reported for retry (error documents,
        # which the compactor never touches, go ahead).
        outcome = _deliver(storage, marker)
        if isinstance(outcome, Failed):
            unmarked = tuple(
                Failed(p.key, outcome.reason, p.sources, outcome.cause, outcome.permanent, p.type_name)
                for p in puts
                if p.type_name
            )
            puts = [p for p in puts if not p.type_name]

    # Puts to S3 wait on the network: run them in parallel. A store that answers at once says
    # so (`max_parallel_puts = 1`), and skips the thread hand-offs.
    parallel = getattr(storage, "max_parallel_puts", MAX_PARALLEL_PUTS) > 1
    outcomes = (
        list(_pool().map(lambda p: _deliver(storage, p), puts))
        if parallel and len(puts) > 1
        else [_deliver(storage, p) for p in puts]
    )
    data = tuple(o for o in outcomes if isinstance(o, Delivered) and o.type_name)
    error_docs = tuple(o for o in outcomes if isinstance(o, Delivered) and not o.type_name)
    failed = unmarked + tuple(o for o in outcomes if isinstance(o, Failed))
    return BatchResult(len(sources), data, error_docs, failed)


def _touched_marker(settings: Settings, puts: Sequence[_Put]) -> _Put | None:
    """One small object per batch naming the (format, type, date) partitions it writes; its key
    is derived from the batch's data, so a retried batch rewrites the same marker."""
    if not settings.state_prefix:
        return None
    data = [p for p in puts if p.type_name]
    if not data:
        return None
    partitions = {Partition(settings.format, p.type_name, p.partition_date) for p in data if p.partition_date}
    all_sources = [s for p in data for s in p.sources]
    first = min(all_sources, key=_arrived).arrival
    key = layout.touched_key(settings.state_prefix, first, layout.object_id("touched", *(p.key for p in data)))
    return _Put(key, touched_body(partitions), "application/json", ())


def _deliver(storage: Storage, put: _Put) -> Delivered | Failed:
    try:
        location = storage.put(put.key, put.body, put.content_type)
    except StorageError as e:
        return Failed(put.key, str(e), put.sources, e.cause, e.permanent, put.type_name or put.error_type)
    return Delivered(
        put.key,
        location,
        len(put.sources),
        put.type_name,
        put.partition_date,
        put.sources,
        len(put.body),
        put.oldest_change,
        put.error_type,
    )


@cache
def _change_time_of(spec: RecordSpec) -> Callable[[Any], datetime] | None:
    """A getter of the record's change time (the field the schema adds as `cdc.change-time`)."""
    path = next((f.path for f in spec.fields if f.origin == "cdc.change-time"), None)
    return attrgetter(path) if path else None


def summary(result: BatchResult) -> dict[str, Any]:
    """Counts and keys for logs: never a record value."""
    return {
        "records_in": result.records_in,
        "delivered": result.delivered_by_type,
        "error_records": result.error_records,
        "failed_records": result.failed_records,
        "objects": [d.key for d in result.data],
        "error_objects": [d.key for d in result.errors],
        "failed_objects": [{"key": f.key, "records": len(f.sources), "reason": f.reason} for f in result.failed],
    }
