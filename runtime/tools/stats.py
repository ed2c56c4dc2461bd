"""`dmd stats`: a health report of a lake, local or in S3.

Per record type and partition day: rows, objects, bytes and rows per object (many small objects
make Athena slow and costly: the compactor's job); error documents grouped by cause; the oldest
error document not yet replayed; and freshness (how long ago the newest object arrived).

Keys are taken apart by dmd.lake.layout only. Row counts come from each container's metadata,
without decoding a row: a Parquet file's footer, an Avro container's block headers. Objects
are read whole (the Storage interface has no ranged reads), one at a time.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from dmd.lake import layout
from dmd.lake.errordoc import ErrorDocument, InvalidErrorDocument
from dmd.lake.storage import Storage, StorageError

# A quoted value in an error message, possibly cut short by the message's "…" (see
# dmd.support.wire._show): replaced so messages group by cause, and no value reaches the report.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*(?:'|…)|\"(?:[^\"\\]|\\.)*(?:\"|…)")
_POSITION = re.compile(r"\b(line|column|char|position|byte) \d+")


def cause_of(message: str) -> str:
    """An error message with quoted values and parser positions blanked: the cause it names."""
    return _POSITION.sub(r"\1 N", _QUOTED.sub("'…'", message)) or "(no message)"


@dataclass
class DayStats:
    type_name: str
    day: date
    rows: int = 0
    objects: int = 0
    bytes: int = 0
    newest_arrival: datetime | None = None  # the newest object's stamp (its first record's arrival)

    @property
    def rows_per_object(self) -> float:
        return self.rows / self.objects if self.objects else 0.0


@dataclass
class TypeStats:
    type_name: str
    days: int
    rows: int
    objects: int
    bytes: int
    first_day: date
    last_day: date
    newest_arrival: datetime | None

    @property
    def rows_per_object(self) -> float:
        return self.rows / self.objects if self.objects else 0.0


@dataclass
class ErrorCause:
    cause: str
    documents: int = 0
    records: int = 0
    oldest: datetime | None = None


@dataclass
class LakeStats:
    location: str
    now: datetime
    days: list[DayStats] = field(default_factory=list)  # sorted by type, then day
    causes: list[ErrorCause] = field(default_factory=list)  # unreplayed documents, most records first
    error_documents: int = 0  # not replayed
    error_records: int = 0
    replayed_documents: int = 0
    oldest_unreplayed: tuple[str, datetime] | None = None  # key and stamp
    unreadable: list[str] = field(default_factory=list)  # keys that are not what their name says

    def by_type(self) -> list[TypeStats]:
        out = []
        for type_name in sorted({d.type_name for d in self.days}):
            days = [d for d in self.days if d.type_name == type_name]
            arrivals = [d.newest_arrival for d in days if d.newest_arrival is not None]
            out.append(
                TypeStats(
                    type_name,
                    len(days),
                    sum(d.rows for d in days),
                    sum(d.objects for d in days),
                    sum(d.bytes for d in days),
                    min(d.day for d in days),
                    max(d.day for d in days),
                    max(arrivals) if arrivals else None,
                )
            )
        return out

    def by_day(self) -> list[tuple[date, int, int]]:
        """(day, rows, objects) over every type, every day from the first to the last (a day
        without objects shows as a gap, not as nothing)."""
        rows: Counter[date] = Counter()
        objects: Counter[date] = Counter()
        for d in self.days:
            rows[d.day] += d.rows
            objects[d.day] += d.objects
        if not rows:
            return []
        first, last = min(rows), max(rows)
        every = (first + timedelta(days=i) for i in range((last - first).days + 1))
        return [(day, rows[day], objects[day]) for day in every]

    @property
    def newest_arrival(self) -> datetime | None:
        arrivals = [d.newest_arrival for d in self.days if d.newest_arrival is not None]
        return max(arrivals) if arrivals else None


def rows_in(body: bytes, fmt: str) -> int:
    """A container's row count from its metadata, without decoding rows."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_metadata(io.BytesIO(body)).num_rows
    if fmt == "avro":
        import fastavro

        return sum(block.num_records for block in fastavro.block_reader(io.BytesIO(body)))
    raise ValueError(f"no row count for format {fmt!r}")


def collect(
    storage: Storage,
    location: str,
    prefix: str = "archive",
    errors_prefix: str = "errors",
    now: datetime | None = None,
    progress: Callable[[Iterable[str]], Iterable[str]] = lambda keys: keys,
) -> LakeStats:
    stats = LakeStats(location, now or datetime.now(UTC))
    days: dict[tuple[str, date], DayStats] = {}
    for key in progress(storage.list(prefix + "/")):
        parsed = layout.parse_data_key(key, prefix)
        if parsed is None:
            continue  # hidden, temporary or state files: not data
        body = storage.get(key)
        try:
            rows = rows_in(body, parsed.format.name)
        except (ValueError, OSError, EOFError, StorageError):
            stats.unreadable.append(key)
            continue
        day = days.get((parsed.type_name, parsed.day))
        if day is None:
            day = days[(parsed.type_name, parsed.day)] = DayStats(parsed.type_name, parsed.day)
        day.rows += rows
        day.objects += 1
        day.bytes += len(body)
        arrived = layout.stamp_of(key)
        if arrived is not None and (day.newest_arrival is None or arrived > day.newest_arrival):
            day.newest_arrival = arrived
    stats.days = [days[k] for k in sorted(days)]
    _collect_errors(stats, storage, errors_prefix, progress)
    return stats


def _collect_errors(
    stats: LakeStats, storage: Storage, errors_prefix: str, progress: Callable[[Iterable[str]], Iterable[str]]
) -> None:
    causes: dict[str, ErrorCause] = {}
    for key in progress(storage.list(errors_prefix + "/")):
        if not layout.is_error_document(key) or layout.is_hidden(key):
            continue
        if layout.is_replayed(key):
            stats.replayed_documents += 1
            continue
        try:
            doc = ErrorDocument.from_json(storage.get(key))
        except (InvalidErrorDocument, StorageError):
            stats.unreadable.append(key)
            continue
        stamp = layout.stamp_of(key)
        cause = causes.setdefault(cause_of(doc.message), ErrorCause(cause_of(doc.message)))
        cause.documents += 1
        cause.records += len(doc.entries)
        if stamp is not None:
            cause.oldest = stamp if cause.oldest is None else min(cause.oldest, stamp)
            if stats.oldest_unreplayed is None or stamp < stats.oldest_unreplayed[1]:
                stats.oldest_unreplayed = (key, stamp)
        stats.error_documents += 1
        stats.error_records += len(doc.entries)
    stats.causes = sorted(causes.values(), key=lambda c: (-c.records, c.cause))


# --- the terminal report -------------------------------------------------------------------------


def age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "-"
    seconds = max((now - then).total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    line = "  ".join
    out = [line(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    out.append(line("-" * w for w in widths))
    for r in rows:
        out.append(line(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return out


def text(stats: LakeStats) -> str:
    now = stats.now
    out = [f"lake {stats.location} at {now.isoformat(timespec='seconds')}", ""]
    types = stats.by_type()
    if not types:
        out.append("no data containers")
    else:
        out += _table(
            ["type", "days", "rows", "objects", "bytes", "rows/object", "first day", "last day", "newest object"],
            [
                [
                    t.type_name,
                    str(t.days),
                    f"{t.rows:,}",
                    f"{t.objects:,}",
                    size(t.bytes),
                    f"{t.rows_per_object:.1f}",
                    t.first_day.isoformat(),
                    t.last_day.isoformat(),
                    f"{age(now, t.newest_arrival)} ago",
                ]
                for t in types
            ],
        )
        out += ["", "per type and partition day:"]
        out += _table(
            ["type", "day", "rows", "objects", "bytes", "rows/object"],
            [
                [
                    d.type_name,
                    d.day.isoformat(),
                    f"{d.rows:,}",
                    f"{d.objects:,}",
                    size(d.bytes),
                    f"{d.rows_per_object:.1f}",
                ]
                for d in stats.days
            ],
        )
    out += ["", f"freshness: newest object arrived {age(now, stats.newest_arrival)} ago", ""]
    out.append(
        f"error documents: {stats.error_documents:,} not replayed ({stats.error_records:,} records), "
        f"{stats.replayed_documents:,} replayed"
    )
    if stats.oldest_unreplayed:
        key, when = stats.oldest_unreplayed
        out.append(f"oldest not replayed: {key} ({age(now, when)} old)")
    if stats.causes:
        out += _table(
            ["cause", "documents", "records", "oldest"],
            [
                [c.cause, f"{c.documents:,}", f"{c.records:,}", c.oldest.isoformat() if c.oldest else "-"]
                for c in stats.causes
            ],
        )
    if stats.unreadable:
        out += ["", f"UNREADABLE: {len(stats.unreadable)} objects, e.g. {stats.unreadable[0]}"]
    return "\n".join(out)
