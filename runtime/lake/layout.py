"""Where every object of the lake goes: the one home of the key layout.

    {prefix}/{format}/{type}/partition_date=YYYY-MM-DD/{stamp}-{id}.{extension}   data containers
    {errors_prefix}/{stamp}-{id}.json                                             error documents
    {errors_prefix}/replayed/{stamp}-{id}.json                                    replayed ones

and the compactor's state, under its own prefix (outside the data prefix, so Athena never reads it):

    {state_prefix}/touched/{stamp}-{id}.json                          partitions one batch wrote
    {state_prefix}/journal/{format}/{type}/{YYYY-MM-DD}/{name}.json   one open merge (sources -> target)
    {state_prefix}/leases/{format}/{type}/{YYYY-MM-DD}/{generation}   who compacts a partition (S3)
    {state_prefix}/leases/{format}/{type}/{YYYY-MM-DD}.lock           the same, locally (a file lock)
    {state_prefix}/settled/{format}/{type}/{YYYY-MM-DD}.json          a fan-out worker's last full compaction
    {state_prefix}/backfill/{export-id}/plan.json                     the options a backfill began with
    {state_prefix}/backfill/{export-id}/done/{id}.json                one export data file archived

A backfill (`dmd backfill`) writes ordinary data containers, named by the export's time and an
id derived from the export id, the data file, the partition and the part number
(`backfill_key`), so a rerun or a retried data file writes the same objects again.

A merged object is an ordinary data container, `{stamp}-{id}` named after its sources
(`merged_key`), so a rerun after a crash writes the same key again.

`stamp` is the UTC time of the object's first record's arrival, to the second
(YYYY-MM-DD-HH-mm-ss), so names sort by arrival; `id` is uuid-shaped and derived from what the
object holds, so a retried batch rewrites the same keys instead of adding objects.

The Lambda function writes these keys, `dmd replay` and `dmd query` read them, and the generator
builds the Athena table locations from `table_prefix`; nothing else spells a key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime

from .formats import FORMATS, LakeFormat

MAX_KEY_BYTES = 1024  # S3's limit on a key's UTF-8 length
MAX_TYPE_NAME = 63  # the metaschema's limit on a record type's name
PARTITION_KEY = "partition_date"  # Hive-style folder name; Athena's partition column
REPLAYED = "replayed/"
DEFAULT_STATE_PREFIX = "_dmd-state"  # a hidden name at the lake root: not data to Athena/Hive
TOUCHED = "touched/"
JOURNAL = "journal/"
LEASES = "leases/"
BACKFILL = "backfill/"
SETTLED = "settled/"
IDENTITIES = "identities/"
_GENERATION_DIGITS = 10  # beside each replayed error document
ERROR_EXTENSION = "json"
_STAMP_LENGTH = 19  # YYYY-MM-DD-HH-mm-ss


def stamp(when: datetime) -> str:
    t = when.astimezone(UTC)  # an f-string: strftime costs ~10x more, once per object
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}-{t.hour:02d}-{t.minute:02d}-{t.second:02d}"


def stamp_of(key: str) -> datetime | None:
    """The stamp at the start of a key's file name, or None if it has none."""
    try:
        return datetime.strptime(key.rpartition("/")[2][:_STAMP_LENGTH], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def object_id(*parts: str) -> str:
    """A uuid-shaped id derived from `parts` (the same text as str(uuid.UUID(bytes=...)))."""
    h = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


MAX_TABLE_VERSION = 99  # the metaschema's limit on `dmd.tableVersion`


def table_name(type_name: str, version: int = 1) -> str:
    """The table (and lake folder) of one table version of a record type: the type's name, then
    `{type}_v2`, ... for each new table a breaking schema change started (docs/schema-evolution.md);
    the older tables keep their files where they are."""
    return type_name if version == 1 else f"{type_name}_v{version}"


def table_prefix(prefix: str, fmt: str, type_name: str) -> str:
    """The folder of one table (a record type's, or one of its table versions: `table_name`) in
    one format: an Athena table's location below the root."""
    return f"{prefix}/{fmt}/{type_name}/"


def partition_prefix(prefix: str, fmt: str, type_name: str, day: date | str) -> str:
    day_text = day if isinstance(day, str) else day.isoformat()
    return f"{table_prefix(prefix, fmt, type_name)}{PARTITION_KEY}={day_text}/"


def data_key(prefix: str, fmt: LakeFormat, type_name: str, day: date, first_arrival: datetime, oid: str) -> str:
    return f"{partition_prefix(prefix, fmt.name, type_name, day)}{stamp(first_arrival)}-{oid}.{fmt.extension}"


def error_key(errors_prefix: str, first_arrival: datetime, oid: str) -> str:
    return f"{errors_prefix}/{stamp(first_arrival)}-{oid}.{ERROR_EXTENSION}"


def longest_key_bytes(prefix: str, errors_prefix: str) -> int:
    """The UTF-8 length of the longest key the layout can make under these prefixes (the longest
    type name the metaschema allows, the longest format), to hold against MAX_KEY_BYTES at start
    rather than fail on a put."""
    when, oid, day = datetime(2000, 1, 1, tzinfo=UTC), object_id(), date(2000, 1, 1)
    longest_type = table_name("t" * MAX_TYPE_NAME, MAX_TABLE_VERSION)
    data = max(len(data_key(prefix, f, longest_type, day, when, oid).encode()) for f in FORMATS.values())
    errors = len(replayed_key(error_key(errors_prefix, when, oid)).encode())
    return max(data, errors)


def folder(key: str) -> str:
    """The folder-like prefix of a key ('' or ending in '/')."""
    return key.rpartition("/")[0] + "/" if "/" in key else ""


def replayed_key(key: str) -> str:
    """Where a replayed error document is moved: `replayed/` beside it (errors/x.json ->
    errors/replayed/x.json), so it stays under the error prefix's expiry and access policy."""
    return f"{folder(key)}{REPLAYED}{key.rpartition('/')[2]}"


def is_error_document(key: str) -> bool:
    return key.endswith("." + ERROR_EXTENSION)


def is_replayed(key: str) -> bool:
    return ("/" + folder(key)).endswith("/" + REPLAYED)


def is_hidden(key: str) -> bool:
    """Files whose names start with `_` or `.` are not data to Athena/Hive (nor to `dmd query`):
    temporary files and state live under such names."""
    return key.rpartition("/")[2].startswith(("_", "."))


@dataclass(frozen=True)
class DataKey:
    """A data container's key, taken apart."""

    prefix: str
    format: LakeFormat
    type_name: str
    day: date
    name: str  # {stamp}-{id}.{extension}

    @property
    def partition(self) -> str:
        return partition_prefix(self.prefix, self.format.name, self.type_name, self.day)

    @property
    def key(self) -> str:
        return self.partition + self.name


def parse_data_key(key: str, prefix: str) -> DataKey | None:
    """`key` taken apart if it is a data container under `prefix`, else None (another object,
    a hidden or temporary file, or a name this layout never writes)."""
    if not key.startswith(prefix + "/") or is_hidden(key):
        return None
    parts = key[len(prefix) + 1 :].split("/")
    if len(parts) != 4:
        return None
    fmt_name, type_name, partition, name = parts
    fmt = FORMATS.get(fmt_name)
    key_name, _, day_text = partition.partition("=")
    if fmt is None or key_name != PARTITION_KEY or not name.endswith("." + fmt.extension):
        return None
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        return None
    if day.isoformat() != day_text:  # fromisoformat also reads 20240101 and other spellings
        return None
    return DataKey(prefix, fmt, type_name, day, name)


def merged_key(partition: DataKey, source_keys: list[str]) -> str:
    """The merged object of `source_keys` (data keys of one partition): named by the first
    source's stamp (so it sorts by arrival among the others) and an id derived from every source
    key, so the same plan always writes the same key."""
    keys = sorted(source_keys)
    first = keys[0].rpartition("/")[2][:_STAMP_LENGTH]
    oid = object_id("compact", *keys)
    return f"{partition.partition}{first}-{oid}.{partition.format.extension}"


def _partition_path(fmt: str, type_name: str, day: date | str) -> str:
    day_text = day if isinstance(day, str) else day.isoformat()
    return f"{fmt}/{type_name}/{day_text}"


def touched_prefix(state_prefix: str) -> str:
    return f"{state_prefix}/{TOUCHED}"


def touched_key(state_prefix: str, first_arrival: datetime, oid: str) -> str:
    return f"{touched_prefix(state_prefix)}{stamp(first_arrival)}-{oid}.json"


def journal_prefix(state_prefix: str) -> str:
    return f"{state_prefix}/{JOURNAL}"


def journal_key(state_prefix: str, target: DataKey) -> str:
    """The journal entry of the merge that writes `target`."""
    stem = target.name.rpartition(".")[0]
    return (
        f"{journal_prefix(state_prefix)}{_partition_path(target.format.name, target.type_name, target.day)}/{stem}.json"
    )


def lease_prefix(state_prefix: str, fmt: str, type_name: str, day: date) -> str:
    """Folder of one partition's lease generations (S3)."""
    return f"{state_prefix}/{LEASES}{_partition_path(fmt, type_name, day)}/"


def lease_key(state_prefix: str, fmt: str, type_name: str, day: date, generation: int) -> str:
    return f"{lease_prefix(state_prefix, fmt, type_name, day)}{generation:0{_GENERATION_DIGITS}d}"


def lease_generation(key: str) -> int | None:
    name = key.rpartition("/")[2]
    return int(name) if name.isdigit() and len(name) == _GENERATION_DIGITS else None


def lock_key(state_prefix: str, fmt: str, type_name: str, day: date) -> str:
    """A local lake's lock file of one partition."""
    return f"{state_prefix}/{LEASES}{_partition_path(fmt, type_name, day)}.lock"


def settled_key(state_prefix: str, fmt: str, type_name: str, day: date) -> str:
    """When a fan-out worker last compacted a partition in full (dmd.lake.fanout)."""
    return f"{state_prefix}/{SETTLED}{_partition_path(fmt, type_name, day)}.json"


def identity_prefix(state_prefix: str, fmt: str, type_name: str, day: date) -> str:
    """Folder of the identity indexes of one partition's big objects (dmd.lake.identity)."""
    return f"{state_prefix}/{IDENTITIES}{_partition_path(fmt, type_name, day)}/"


def identity_key(state_prefix: str, data: DataKey) -> str:
    """The identity index of data object `data`."""
    return f"{identity_prefix(state_prefix, data.format.name, data.type_name, data.day)}{data.name}.ids"


def is_state(key: str, state_prefix: str) -> bool:
    return bool(state_prefix) and key.startswith(state_prefix + "/")


def backfill_key(
    prefix: str,
    fmt: LakeFormat,
    type_name: str,
    day: date,
    export_time: datetime,
    export_id: str,
    data_file: str,
    part: int,
) -> str:
    """Part `part` (from 1) of the rows of (type, day) that one data file of an export holds."""
    oid = object_id("backfill", export_id, data_file, fmt.name, type_name, day.isoformat(), str(part))
    return data_key(prefix, fmt, type_name, day, export_time, oid)


def backfill_prefix(state_prefix: str, export_id: str) -> str:
    return f"{state_prefix}/{BACKFILL}{export_id}/"


def backfill_plan_key(state_prefix: str, export_id: str) -> str:
    return f"{backfill_prefix(state_prefix, export_id)}plan.json"


def backfill_done_key(state_prefix: str, export_id: str, data_file: str) -> str:
    """Written after every object of the data file: the file is not processed again."""
    return f"{backfill_prefix(state_prefix, export_id)}done/{object_id('done', data_file)}.json"
