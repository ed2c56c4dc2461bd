"""Compaction: merge the small data containers of each (format, type, partition date) into
objects near a target size, dropping duplicates of the same change.

Finding work. The writer leaves one marker per batch under `{state_prefix}/touched/` naming the
partitions it wrote, before it writes them. A run lists only those markers (its cost grows with
the batches since the last run, not with the bucket), compacts those partitions and deletes a
marker once its batch's objects are all old enough to have been merged (`consumable`) and every
partition it names was compacted in full. `scan_all` lists the whole data prefix instead, to
bootstrap a lake written before markers existed; `partitions` compacts just those (a fan-out
worker's message, dmd.lake.fanout).

Per partition, under its lease (state.acquire), a run first finishes or undoes every open
journal entry, then lists the partition once: only objects listed then are merged, so objects
a writer adds meanwhile are left for a later run. Objects younger than `min_age` or at least
`LEFT_ALONE` of the target size are left alone; the rest, in key order (keys start with the
arrival stamp), are cut into groups of at most `target_size` bytes, each merged into one object.
A group's rows whose change is already in one of the partition's big objects (a retry arriving
after that object was made) are dropped: after merging, the kept sequence numbers' hashes are
compared with the big objects' identity indexes (dmd.lake.identity) and, if an object may hold
one of them, its identity columns are read and the group merged again without the rows of the
changes found there. Big objects are only read: never a source, never in the journal; a merged
object big enough to be left alone gets its index once its journal entry is `verified`.

One merge, crash-safe at every step:
  1. journal entry `planned` (sources -> target) is put;
  2. the target is written (a deterministic key: a rerun writes the same one);
  3. it is read back: its row count and the digest of its sequence numbers must be the ones
     written, else it is deleted and the sources stay;
  4. journal entry `verified`;
  5. the sources are deleted, then the journal entry.
A run finds what a killed one left: `planned` -> the target is deleted (undone); `verified` ->
the target is checked again and the remaining sources deleted (finished). Between 2 and 5
readers may see a row twice (from the target and its source), never miss one.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from . import identity, layout, merge
from .formats import FORMATS
from .state import PLANNED, VERIFIED, JournalEntry, Lease, Partition, acquire, owner_id, read_touched
from .storage import ObjectInfo, Storage, StorageError

MIB = 1 << 20
LEFT_ALONE = 0.75  # of the target size: objects this big are not merged again
GIVE_UP_AFTER = 5  # partitions failing one after the other with storage errors: S3 is down, stop
JSON = "application/json"


@dataclass(frozen=True)
class Options:
    prefix: str = "archive"
    state_prefix: str = layout.DEFAULT_STATE_PREFIX
    formats: frozenset[str] | None = None  # None: every format
    types: frozenset[str] | None = None  # None: every type
    first_day: date | None = None
    last_day: date | None = None
    min_age: float = 3600.0  # seconds since an object was written
    target_size: int = 128 * MIB
    budget: float | None = None  # seconds: no new merge starts after this
    dry_run: bool = False
    scan_all: bool = False  # list the data prefix instead of the touched markers
    codec: str | None = None  # None: Avro keeps the sources' codec, Parquet writes snappy
    lease_seconds: float = 900.0  # S3 leases expire after this (a killed run blocks no longer)
    # A marker is consumed only once this old: the batch that wrote it may still be putting data
    # (a Lambda batch runs at most 15 minutes).
    marker_grace: float = 900.0
    partitions: frozenset[Partition] | None = None  # exactly these: no markers, no journal scan

    def wants(self, p: Partition) -> bool:
        return (
            (self.formats is None or p.format in self.formats)
            and (self.types is None or p.type_name in self.types)
            and (self.first_day is None or p.day >= self.first_day)
            and (self.last_day is None or p.day <= self.last_day)
        )


@dataclass
class MergeReport:
    partition: Partition
    target: str
    sources: list[str]
    rows: int = 0
    dropped: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    excluded: list[tuple[str, str]] = field(default_factory=list)
    # big objects of the partition whose rows could not be compared with the merge's (unreadable)
    unchecked: list[tuple[str, str]] = field(default_factory=list)
    error: str = ""
    # seconds from the merged object's put to the last source's deletion: while readers may
    # see the merged rows twice (in the merged object and in a source not deleted yet)
    window: float = 0.0


@dataclass
class Report:
    dry_run: bool = False
    partitions: int = 0  # partitions looked at
    merges: list[MergeReport] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # journal entries finished or undone
    stuck: list[str] = field(default_factory=list)  # journal entries that need an operator
    busy: list[str] = field(default_factory=list)  # partitions another compactor holds
    deferred: list[str] = field(default_factory=list)  # partitions left for the next run (budget)
    errors: list[str] = field(default_factory=list)  # partitions a storage error stopped: rerun
    markers_read: int = 0
    markers_consumed: int = 0
    queued: int = 0  # partitions sent to the fan-out queue (dmd.lake.fanout.plan)
    oldest_marker: float | None = None  # when the oldest marker not consumed was written (epoch s)
    seconds: float = 0.0

    @property
    def done(self) -> list[MergeReport]:
        return [m for m in self.merges if not m.error]

    @property
    def failed(self) -> list[MergeReport]:
        return [m for m in self.merges if m.error]

    @property
    def ok(self) -> bool:
        """Nothing failed and nothing needs an operator (busy or deferred partitions wait)."""
        return not (self.failed or self.stuck or self.errors)

    def to_dict(self) -> dict[str, Any]:
        done = self.done
        return {
            "dry_run": self.dry_run,
            "partitions": self.partitions,
            "merges": len(done),
            "objects_merged": sum(len(m.sources) - len(m.excluded) for m in done),
            "objects_written": len(done),
            "rows": sum(m.rows for m in done),
            "duplicates_dropped": sum(m.dropped for m in done),
            "bytes_in": sum(m.bytes_in for m in done),
            "bytes_out": sum(m.bytes_out for m in done),
            "failed": [{"target": m.target, "error": m.error} for m in self.failed],
            "excluded": [{"key": k, "reason": r} for m in done for k, r in m.excluded],
            "unchecked": [{"key": k, "reason": r} for k, r in sorted({u for m in done for u in m.unchecked})],
            "recovered": self.recovered,
            "stuck": self.stuck,
            "busy": self.busy,
            "deferred": self.deferred,
            "errors": self.errors,
            "markers_read": self.markers_read,
            "markers_consumed": self.markers_consumed,
            "queued": self.queued,
            "oldest_marker": self.oldest_marker,
            "seconds": round(self.seconds, 3),
            "duplicate_window_max_seconds": round(max((m.window for m in done), default=0.0), 3),
            "merge_list": [
                {"target": m.target, "sources": m.sources, "rows": m.rows, "dropped": m.dropped} for m in done
            ],
        }

    def text(self) -> str:
        d = self.to_dict()
        verb = "would merge" if self.dry_run else "merged"
        lines = [
            f"{d['partitions']} partitions looked at; {verb} {d['objects_merged']} objects into "
            f"{d['objects_written']} in {d['seconds']:.1f} s"
        ]
        if not self.dry_run:
            lines.append(
                f"  {d['rows']} rows kept, {d['duplicates_dropped']} duplicates dropped; "
                f"{d['bytes_in']} bytes -> {d['bytes_out']} bytes; "
                f"longest duplicate window {d['duplicate_window_max_seconds']:.3f} s"
            )
        for m in self.merges:
            mark = "FAILED " if m.error else ""
            lines.append(f"  {mark}{m.partition}: {len(m.sources)} objects -> {m.target.rpartition('/')[2]}")
            if m.error:
                lines.append(f"    {m.error}")
        unchecked = [f"{u['key']}: {u['reason']}" for u in d["unchecked"]]
        for name, items in (
            ("big objects not checked for twins of merged rows (unreadable)", unchecked),
            ("recovered from the journal", self.recovered),
            ("STUCK (see the journal entry)", self.stuck),
            ("busy (another compactor holds them)", self.busy),
            ("left for the next run (budget)", self.deferred),
            ("FAILED (storage errors; run again)", self.errors),
        ):
            if items:
                lines.append(f"  {name}: {len(items)}")
                lines += [f"    {item}" for item in items[:20]]
        lines.append(f"  touched markers: {self.markers_read} read, {self.markers_consumed} consumed")
        return "\n".join(lines)


def consumable(marker_written: float, horizon: float, options: Options) -> bool:
    """Whether a compaction that took every object written up to `horizon` (its start minus
    min-age: older objects were all merge candidates) covered the batch of a marker written at
    `marker_written`: that batch put its objects within `marker_grace` after its marker."""
    return marker_written + options.marker_grace <= horizon


def plan(infos: Iterable[ObjectInfo], options: Options, now: float) -> list[list[ObjectInfo]]:
    """Groups of one partition's objects to merge, in key order; a group of one is no merge."""
    limit = options.target_size * LEFT_ALONE
    candidates = [i for i in infos if i.size < limit and i.modified <= now - options.min_age]
    groups: list[list[ObjectInfo]] = []
    current: list[ObjectInfo] = []
    size = 0
    for info in candidates:
        if current and size + info.size > options.target_size:
            groups.append(current)
            current, size = [], 0
        current.append(info)
        size += info.size
    if current:
        groups.append(current)
    return [g for g in groups if len(g) > 1]


class Compactor:
    def __init__(self, storage: Storage, options: Options) -> None:
        self.storage: Any = storage
        self.options = options
        self.owner = owner_id()
        self.parallel = getattr(storage, "max_parallel_puts", 8) > 1 and not hasattr(storage, "lock")
        self.report = Report(dry_run=options.dry_run)
        self.settled: set[Partition] = set()  # partitions done in full by `run`
        self._indexed: set[str] = set()  # identity indexes present in the partition in hand

    # --- a run ---------------------------------------------------------------------------------

    def run(self) -> Report:
        started = time.monotonic()
        o = self.options
        now = time.time()
        markers: dict[str, tuple[float, set[Partition]]] = {}
        try:
            if o.partitions is not None:
                work = set(o.partitions)
            else:
                journal = journal_partitions(self.storage, o.state_prefix)
                if o.scan_all:
                    work = self._scan_partitions()
                else:
                    markers = self._read_markers()
                    work = set().union(*(parts for _, parts in markers.values()))
                work = {p for p in work if o.wants(p)} | journal
        except StorageError as e:
            self.report.errors.append(f"finding work: {e}")
            return self.report
        self.settled = self._compact(work, started, now)
        left = [written for written, _ in markers.values()]
        if not o.dry_run:
            left = []
            for key, (written, partitions) in markers.items():
                if not (consumable(written, now - o.min_age, o) and partitions <= self.settled):
                    left.append(written)
                    continue
                try:
                    self.storage.delete(key)
                except StorageError as e:
                    self.report.errors.append(f"{key}: {e}")
                    left.append(written)
                    continue
                self.report.markers_consumed += 1
        self.report.oldest_marker = min(left, default=None)
        self.report.seconds = time.monotonic() - started
        return self.report

    def _compact(self, work: set[Partition], started: float, now: float) -> set[Partition]:
        """Compact `work`; the partitions done in full (every merge candidate merged)."""
        settled: set[Partition] = set()
        failing = 0
        for p in sorted(work, key=lambda p: (p.format, p.type_name, p.day)):
            if self._over_budget(started) or failing >= GIVE_UP_AFTER:
                self.report.deferred.append(str(p))
                continue
            self.report.partitions += 1
            try:
                if self._partition(p, started, now):
                    settled.add(p)
                failing = 0
            except StorageError as e:  # what is open is in the journal: the next run goes on
                self.report.errors.append(f"{p}: {e}")
                failing += 1
        return settled

    def _over_budget(self, started: float) -> bool:
        return self.options.budget is not None and time.monotonic() - started >= self.options.budget

    def _read_markers(self) -> dict[str, tuple[float, set[Partition]]]:
        """Each touched marker: when it was written, and its partitions."""
        return read_markers(self.storage, self.options.state_prefix, self.report)

    def _scan_partitions(self) -> set[Partition]:
        found = set()
        for key in self.storage.list(self.options.prefix + "/"):
            k = layout.parse_data_key(key, self.options.prefix)
            if k is not None:
                found.add(Partition(k.format.name, k.type_name, k.day))
        return found

    # --- one partition ---------------------------------------------------------------------------

    def _partition(self, p: Partition, started: float, now: float) -> bool:
        """Compact one partition; True if every merge candidate (each object at least min-age
        old) was merged: a marker whose batch is older than that is then done with."""
        o = self.options
        lease = None
        if not o.dry_run:
            lease = acquire(self.storage, o.state_prefix, p, self.owner, o.lease_seconds)
            if lease is None:
                self.report.busy.append(str(p))
                return False
        try:
            if lease is not None and not self._recover(p, lease):
                return False
            fmt = FORMATS[p.format]
            folder = layout.partition_prefix(o.prefix, p.format, p.type_name, p.day)
            infos = [i for i in self.storage.list_info(folder) if layout.parse_data_key(i.key, o.prefix)]
            infos = [i for i in infos if i.key.endswith("." + fmt.extension)]
            groups = plan(infos, o, now)
            big = [i for i in infos if i.size >= o.target_size * LEFT_ALONE]
            if groups and not o.dry_run:
                self._indexed = self._indexes(p, infos)
            settled = True
            for group in groups:
                if self._over_budget(started):
                    self.report.deferred.append(str(p))
                    return False
                settled = self._merge(p, group, lease, big) and settled
            return settled
        finally:
            if lease is not None:
                with contextlib.suppress(StorageError):  # an S3 lease then expires by itself
                    lease.release()

    def _target(self, p: Partition, sources: list[str]) -> tuple[str, layout.DataKey]:
        first = layout.parse_data_key(sources[0], self.options.prefix)
        assert first is not None
        target = layout.merged_key(first, sources)
        parsed = layout.parse_data_key(target, self.options.prefix)
        assert parsed is not None
        return target, parsed

    def _twins(
        self, p: Partition, big: list[ObjectInfo], hashes: bytes, tmp: Path, report: MergeReport
    ) -> frozenset[merge.Identity]:
        """The changes in the partition's big objects whose sequence number hashes to one of
        `hashes` (a merge's kept rows): each object's identity index is compared, and only an
        object with a hash in common is read (its identity columns)."""
        found: set[merge.Identity] = set()
        for info in big:
            try:
                common = identity.common(self._index(p, info, tmp), hashes)
                if common:
                    found.update(self._identities(p, info, tmp, common))
            except merge.MergeError as e:
                report.unchecked.append((info.key, str(e)))
        return frozenset(found)

    def _identities(self, p: Partition, info: ObjectInfo, tmp: Path, common: frozenset[bytes]) -> set[merge.Identity]:
        """The changes of object `info` whose sequence number hashes to one of `common`."""
        return {i for chunk in self._read(p, info, tmp) for i in chunk if identity.seq_hash(i[0]) in common}

    def _index(self, p: Partition, info: ObjectInfo, tmp: Path) -> bytes:
        """A big object's identity index: the stored one if it is of this object, else built
        from the object (its sequence numbers read) and stored for the next merges."""
        data = layout.parse_data_key(info.key, self.options.prefix)
        assert data is not None
        key = layout.identity_key(self.options.state_prefix, data)
        if key in self._indexed:
            hashes = identity.decode(self.storage.get(key), info.size)
            if hashes is not None:
                return hashes
        hashes = b"".join(identity.hashes_of(seq for seq, _ in chunk) for chunk in self._read(p, info, tmp))
        self._put_index(key, info.size, hashes)
        return hashes

    def _read(self, p: Partition, info: ObjectInfo, tmp: Path) -> Iterator[list[merge.Identity]]:
        """The change identities of big object `info`, a block or batch at a time, from a copy in
        `tmp`; a MergeError if nothing can decode it (its twins cannot be found)."""
        path = tmp / "big"
        self.storage.get_file(info.key, path)
        try:
            yield from merge.identities(p.format, path)
        except Exception as e:
            raise merge.MergeError(f"cannot read its change identities: {e}") from e
        finally:
            path.unlink()

    def _put_index(self, key: str, size: int, hashes: bytes) -> None:
        self.storage.put(key, identity.encode(size, hashes), identity.CONTENT_TYPE)
        self._indexed.add(key)

    def _indexes(self, p: Partition, infos: list[ObjectInfo]) -> set[str]:
        """The partition's identity indexes of objects in `infos`; those of objects gone (a
        lifecycle rule, an operator deleted them) are deleted."""
        o = self.options

        def index_keys(infos: Iterable[ObjectInfo]) -> set[str]:
            keys = [layout.parse_data_key(i.key, o.prefix) for i in infos]
            return {layout.identity_key(o.state_prefix, k) for k in keys if k is not None}

        listed = index_keys(infos)
        found = set(self.storage.list(layout.identity_prefix(o.state_prefix, p.format, p.type_name, p.day)))
        if found - listed:
            # An index is put after its object: one whose object was put after `infos` was
            # listed (a backfill's) has that object in a listing taken now. Only the rest are gone.
            now = index_keys(self.storage.list_info(layout.partition_prefix(o.prefix, p.format, p.type_name, p.day)))
            for key in sorted(found - listed - now):
                self.storage.delete(key)
        return found & listed

    def _merge(self, p: Partition, group: list[ObjectInfo], lease: Lease | None, big: list[ObjectInfo]) -> bool:
        o = self.options
        sources = [i.key for i in group]
        target, target_key = self._target(p, sources)
        report = MergeReport(p, target, sources, bytes_in=sum(i.size for i in group))
        self.report.merges.append(report)
        if o.dry_run:
            return True
        storage = self.storage
        journal = layout.journal_key(o.state_prefix, target_key)
        verified = False
        try:
            storage.put(journal, JournalEntry(PLANNED, target, tuple(sources)).to_json(), JSON)
            with tempfile.TemporaryDirectory(prefix="dmd-compact-") as tmp:
                out = Path(tmp) / "merged"
                sync = hashlib.sha256(target.encode()).digest()[:16]
                sizes = [i.size for i in group]
                merged = merge.merge(p.format, storage, sources, sizes, out, o.codec, sync, self.parallel)
                settled = self._twins(p, big, merged.hashes, Path(tmp), report) if merged.consumed else frozenset()
                if settled:  # rare (a retry after its twin was merged): merged again without them
                    merged = merge.merge(p.format, storage, sources, sizes, out, o.codec, sync, self.parallel, settled)
                report.excluded = merged.excluded
                report.rows, report.dropped = merged.rows, merged.dropped
                if not merged.consumed:
                    raise merge.MergeError("no source could be read")
                put_at = time.monotonic()
                storage.put_file(target, out, FORMATS[p.format].content_type)
                out.unlink()
                back = Path(tmp) / "back"
                storage.get_file(target, back)
                report.bytes_out = back.stat().st_size
                rows, digest = merge.verify(p.format, back)
                if (rows, digest) != (merged.rows, merged.digest):
                    raise merge.MergeError(
                        f"{target} read back holds {rows} rows (digest {digest[:12]}), not the {merged.rows} written"
                    )
            entry = JournalEntry(VERIFIED, target, tuple(merged.consumed), merged.rows, merged.digest, merged.dropped)
            storage.put(journal, entry.to_json(), JSON)
            verified = True
            report.sources = list(merged.consumed)
            if report.bytes_out >= o.target_size * LEFT_ALONE:  # left alone from now on: indexed
                self._put_index(layout.identity_key(o.state_prefix, target_key), report.bytes_out, merged.hashes)
                big.append(ObjectInfo(target, report.bytes_out, time.time()))
            if lease is not None and not lease.valid(margin=min(60.0, o.lease_seconds / 4)):
                raise merge.MergeError("the partition's lease expired: the next run deletes the sources")
            for key in merged.consumed:
                storage.delete(key)
            report.window = time.monotonic() - put_at
            storage.delete(journal)
        except (StorageError, merge.MergeError, OSError) as e:
            report.error = str(e)
            if not verified:
                self._undo(target, journal)
            return False
        return True

    def _undo(self, target: str, journal: str) -> None:
        try:
            self.storage.delete(target)
            self.storage.delete(journal)
        except StorageError:
            pass  # the journal entry stays `planned`: the next run deletes the target

    def _recover(self, p: Partition, lease: Lease) -> bool:
        """Finish or undo the partition's open journal entries; False if one is stuck."""
        o = self.options
        folder = f"{layout.journal_prefix(o.state_prefix)}{p.format}/{p.type_name}/{p.day.isoformat()}/"
        ok = True
        for key in self.storage.list(folder):
            try:
                entry = JournalEntry.from_json(self.storage.get(key))
            except (StorageError, ValueError, KeyError) as e:
                self.report.stuck.append(f"{key}: unreadable journal entry: {e}")
                ok = False
                continue
            outcome = self._resolve(p, key, entry)
            if outcome.startswith("stuck"):
                self.report.stuck.append(f"{key}: {outcome}")
                ok = False
            else:
                self.report.recovered.append(f"{entry.target}: {outcome}")
        return ok

    def _resolve(self, p: Partition, journal: str, entry: JournalEntry) -> str:
        storage = self.storage
        present = set(storage.list(layout.partition_prefix(self.options.prefix, p.format, p.type_name, p.day)))
        if entry.state == VERIFIED and entry.target in present:
            with tempfile.TemporaryDirectory(prefix="dmd-compact-") as tmp:
                back = Path(tmp) / "back"
                storage.get_file(entry.target, back)
                try:
                    checked = merge.verify(p.format, back)
                except Exception:
                    checked = (-1, "")
            if checked == (entry.rows, entry.digest):
                for key in entry.sources:
                    if key in present:
                        storage.delete(key)
                storage.delete(journal)
                return "finished (remaining sources deleted)"
        if entry.state == VERIFIED and not all(k in present for k in entry.sources):
            return "stuck: the verified target is missing or changed and some sources are gone"
        storage.delete(entry.target)
        storage.delete(journal)
        return "undone (target deleted, sources kept)"


def read_markers(storage: Any, state_prefix: str, report: Report) -> dict[str, tuple[float, set[Partition]]]:
    """Each touched marker under `state_prefix` (`storage` lists with times: LargeObjects): when
    it was written, and its partitions."""
    out: dict[str, tuple[float, set[Partition]]] = {}
    for info in storage.list_info(layout.touched_prefix(state_prefix)):
        try:
            partitions = read_touched(storage.get(info.key))
        except StorageError:
            continue  # consumed by another compactor meanwhile
        except (ValueError, KeyError, TypeError):
            continue  # not a marker this layout writes: left alone
        report.markers_read += 1
        out[info.key] = (info.modified, partitions)
    return out


def journal_partitions(storage: Storage, state_prefix: str) -> set[Partition]:
    """The partitions with an open journal entry (a merge a killed run left)."""
    found = set()
    folder = layout.journal_prefix(state_prefix)
    for key in storage.list(folder):
        parts = key[len(folder) :].split("/")
        if len(parts) == 4:
            try:
                found.add(Partition(parts[0], parts[1], date.fromisoformat(parts[2])))
            except ValueError:
                continue
    return found


def compact(storage: Storage, options: Options) -> Report:
    return Compactor(storage, options).run()
