"""Archive one data file of a DynamoDB table export: the unit of work of `dmd backfill` (a local
process each) and of the backfill Lambda function (one Step Functions map item each).

Its items become StreamRecords (dmd.ingest.export) and are parsed exactly as the stream's; the
good ones are appended, per (type, partition date), to local files in the compactor's large-file
settings (dmd.lake.bigfile), each uploaded as a part when it reaches the target size; the bad ones
go to error documents, named as the stream names them (dmd.ingest.pipeline.error_key).

Memory is bounded whatever the file holds: at most `buffer_rows` parsed records wait to be
encoded (the largest waiting groups are appended first), and at most `MAX_OPEN_FILES` partition
files are open (the one appended to least recently is finished first).

Every key is derived from the export id, the data file, the partition and the part number
(dmd.lake.layout.backfill_key), and the parts follow from the file's content and the plan
(format, codec, target size, buffer), which the first run of an export records and every later
run must share. So a retried file writes the same objects again. A kill -9 at any line leaves
objects a rerun rewrites, and nothing is marked done before all of them, its error documents and
its touched marker (so `dmd compact` merges what stays small) are written: the done marker is the
file's last write. An object as big as the compactor leaves alone gets its identity index
(dmd.lake.identity) right after it, so the compactor never has to read it to index it.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from dmd.lake import identity, layout
from dmd.lake.bigfile import PartitionFile
from dmd.lake.compact import LEFT_ALONE
from dmd.lake.formats import FORMATS
from dmd.lake.state import Partition, touched_body
from dmd.lake.storage import Storage, StorageError
from dmd.support.records import RecordSpec

from .config import Settings
from .export import FILES, SUMMARY, DataFile, ExportError, Summary, read_files, read_summary, records, relative_key
from .parse import ArchiveError, Parsed, parse
from .pipeline import error_document, error_key, gc_paused

MIB = 1 << 20
DEFAULT_TARGET_BYTES = 128 * MIB  # the compactor's default target
DEFAULT_BUFFER_ROWS = 20_000  # parsed records waiting to be encoded, in all groups together
MAX_OPEN_FILES = 64
JSON = "application/json"


@dataclass(frozen=True)
class Plan:
    """What decides the objects of a data file: recorded by an export's first run; a later run
    with other values would write other keys beside the first run's, so it is refused."""

    format: str
    codec: str
    prefix: str
    errors_prefix: str
    source_system_id: str
    target_bytes: int
    buffer_rows: int

    @classmethod
    def of(cls, settings: Settings, target_bytes: int, buffer_rows: int) -> Plan:
        s = settings
        return cls(s.format, s.codec, s.prefix, s.errors_prefix, s.source_system_id, target_bytes, buffer_rows)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()


class PlanMismatch(ValueError):
    pass


def check_plan(storage: Storage, state_prefix: str, export_id: str, plan: Plan) -> None:
    """Record `plan` for the export, or check it against the one recorded."""
    key = layout.backfill_plan_key(state_prefix, export_id)
    if storage.put_if_absent(key, plan.to_json(), JSON):  # type: ignore[attr-defined]
        return
    recorded = json.loads(storage.get(key))
    differing = {k: (v, getattr(plan, k)) for k, v in recorded.items() if getattr(plan, k, v) != v}
    if differing:
        said = ", ".join(f"{k}: {old!r} then, {new!r} now" for k, (old, new) in sorted(differing.items()))
        raise PlanMismatch(
            f"export {export_id} was begun with other options ({said}); rerun with the same options, "
            f"or delete {key} and what the earlier run wrote to start over"
        )


@dataclass
class FileResult:
    data_file: str
    items: int = 0
    archived: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_documents: int = 0
    objects: int = 0
    bytes: int = 0
    done_before: bool = False

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_json(cls, body: bytes) -> FileResult:
        doc = json.loads(body)
        fields = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__ and k != "done_before"}
        return cls(**fields, done_before=True)


@dataclass
class Export:
    """An export's folder: `storage` holds it, `root` is its export prefix ('' or ending in '/')
    and `folder` its `AWSDynamoDB/{ExportId}/` below that."""

    storage: Any  # Storage with get_file (dmd.lake.storage.LargeObjects)
    root: str
    folder: str

    def summary(self) -> Summary:
        return read_summary(self._get(SUMMARY))

    def files(self) -> list[DataFile]:
        return read_files(self._get(FILES))

    def _get(self, name: str) -> bytes:
        try:
            return self.storage.get(self.root + self.folder + name)
        except StorageError as e:
            raise ExportError(f"cannot read the export's {name}: {e}") from None

    def key(self, data_file: DataFile) -> str:
        return self.root + relative_key(data_file.key)


def open_export(location: str, endpoint_url: str | None = None) -> Export:
    """EXPORT as `s3://bucket/[prefix/]AWSDynamoDB/{ExportId}/` or a local folder laid out alike."""
    from dmd.lake.storage import LocalStorage, open_storage

    marker = "AWSDynamoDB"
    if location.startswith("s3://"):
        bucket, _, path = location[5:].partition("/")
        parts = path.strip("/").split("/")
        storage: Any = open_storage(f"s3://{bucket}", endpoint_url)
    else:
        folder = Path(location).resolve()
        parts = list(folder.parts)
    if len(parts) < 2 or parts[-2] != marker:
        raise ExportError(f"{location}: not an export's folder (.../{marker}/<export-id>/, holding {SUMMARY})")
    if location.startswith("s3://"):
        root = "/".join(parts[:-2])
        return Export(storage, root + "/" if root else "", f"{marker}/{parts[-1]}/")
    return Export(LocalStorage(folder.parent.parent), "", f"{marker}/{parts[-1]}/")


@dataclass
class _Group:
    type_name: str
    day: date
    waiting: list[Parsed] = field(default_factory=list)
    file: PartitionFile | None = None
    part: int = 0
    used: int = 0  # when it was last appended to (a counter)


class _FileWriter:
    """The partition files of one data file, and what it wrote."""

    def __init__(
        self,
        summary: Summary,
        rel: str,
        storage: Storage,
        settings: Settings,
        plan: Plan,
        tmp: Path,
        result: FileResult,
    ) -> None:
        self.summary, self.rel, self.storage = summary, rel, storage
        self.settings, self.plan, self.tmp, self.result = settings, plan, tmp, result
        self.groups: dict[tuple[str, date], _Group] = {}
        self.waiting = 0
        self.open_files = 0
        self.clock = 0
        self.errors: list[ArchiveError] = []
        self.written: set[Partition] = set()
        self.error_keys: dict[str, int] = {}

    def add(self, parsed: Parsed) -> None:
        key = (parsed.spec.type_name, parsed.partition_date)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(*key)
        group.waiting.append(parsed)
        self.waiting += 1
        if self.waiting >= self.plan.buffer_rows:
            for g in sorted(self.groups.values(), key=lambda g: (-len(g.waiting), g.type_name, g.day)):
                if self.waiting <= self.plan.buffer_rows // 2:
                    break
                self._append(g)

    def _append(self, group: _Group, *, may_finish: bool = True) -> None:
        if not group.waiting:
            return
        self.clock += 1
        group.used = self.clock
        items, group.waiting = group.waiting, []
        self.waiting -= len(items)
        if group.file is None:
            if self.open_files >= MAX_OPEN_FILES:
                self._finish(min((g for g in self.groups.values() if g.file is not None), key=lambda g: g.used))
            self.open_files += 1
            group.part += 1
            name = f"{group.type_name}-{group.day}-{group.part}"
            group.file = PartitionFile(self.plan.format, items[0].spec, self.plan.codec, self.tmp / name, name)
        by_id = {id(p.record): p for p in items}
        for record, reason in group.file.append([p.record for p in items]):
            self.errors.append(ArchiveError(reason, (by_id[id(record)].source,), group.type_name))
        if may_finish and group.file.size() >= self.plan.target_bytes:
            self._finish(group)

    def _finish(self, group: _Group) -> None:
        """Upload the group's file (its waiting records appended first) as its current part."""
        self._append(group, may_finish=False)
        file, group.file = group.file, None
        if file is None:
            return
        self.open_files -= 1
        file.close()
        if file.rows:
            fmt = FORMATS[self.plan.format]
            context = self.summary.context
            key = layout.backfill_key(
                self.plan.prefix, fmt, group.type_name, group.day, context.time, context.export_id, self.rel, group.part
            )
            self.storage.put_file(key, file.path, fmt.content_type)  # type: ignore[attr-defined]
            size = file.path.stat().st_size
            if self.settings.state_prefix and size >= self.plan.target_bytes * LEFT_ALONE:
                # an object the compactor leaves alone: its identity index, so a merge checking
                # for twins in it need not read it (a rerun puts the same object and index)
                data = layout.parse_data_key(key, self.plan.prefix)
                assert data is not None
                index = identity.encode(size, bytes(file.hashes))
                self.storage.put(layout.identity_key(self.settings.state_prefix, data), index, identity.CONTENT_TYPE)
            self.result.objects += 1
            self.result.bytes += size
            self.result.archived[group.type_name] = self.result.archived.get(group.type_name, 0) + file.rows
            self.written.add(Partition(self.plan.format, group.type_name, group.day))
        file.path.unlink(missing_ok=True)

    def finish(self) -> None:
        for group in sorted(self.groups.values(), key=lambda g: (g.type_name, g.day)):
            self._finish(group)

    def write_errors(self) -> None:
        now = datetime.now(UTC)
        for error in self.errors:
            key = error_key(self.settings, error.sources)
            n = self.error_keys[key] = self.error_keys.get(key, 0) + 1
            if n > 1:
                key = error_key(self.settings, error.sources, n)
            self.storage.put(key, error_document(error, now), JSON)
            self.result.errors += len(error.sources)
            self.result.error_documents += 1
        self.errors = []


def _check_md5(path: Path, data_file: DataFile) -> None:
    """The file as the manifest describes it (a partial copy or a wrong file is refused)."""
    if not data_file.md5:
        return
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if base64.b64encode(digest.digest()).decode() != data_file.md5:
        raise ExportError(f"{data_file.key}: its content does not match the md5Checksum of {FILES}")


def backfill_file(
    export: Export,
    summary: Summary,
    data_file: DataFile,
    *,
    storage: Storage,
    settings: Settings,
    registry: Mapping[str, RecordSpec],
    plan: Plan,
) -> FileResult:
    """Archive one data file (or nothing, if its done marker says it was archived already)."""
    rel = relative_key(data_file.key)
    context = summary.context
    done_key = layout.backfill_done_key(settings.state_prefix, context.export_id, rel)
    try:
        return FileResult.from_json(storage.get(done_key))
    except (StorageError, ValueError, TypeError):
        pass  # not done (or unreadable: do it again, it writes the same keys)
    result = FileResult(rel)
    registry = dict(registry)
    record_settings = settings.record_settings
    with tempfile.TemporaryDirectory(prefix="dmd-backfill-") as tmp_dir:
        tmp = Path(tmp_dir)
        local = tmp / "data.json.gz"
        export.storage.get_file(export.key(data_file), local)
        _check_md5(local, data_file)
        writer = _FileWriter(summary, rel, storage, settings, plan, tmp, result)
        with gzip.open(local, "rb") as lines, gc_paused():
            for source in records(lines, context, rel):
                result.items += 1
                parsed = parse(source, registry, record_settings)
                if type(parsed) is Parsed:
                    writer.add(parsed)
                else:
                    writer.errors.append(parsed)  # type: ignore[arg-type]
                if len(writer.errors) >= 1000:
                    writer.write_errors()
        writer.finish()
        writer.write_errors()
    if writer.written and settings.state_prefix:
        oid = layout.object_id("backfill-touched", context.export_id, rel)
        storage.put(layout.touched_key(settings.state_prefix, context.time, oid), touched_body(writer.written), JSON)
    storage.put(done_key, result.to_json(), JSON)  # last: the file is archived
    return result
