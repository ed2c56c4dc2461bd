"""Where every object of the lake goes: the one home of the key layout.

    {prefix}/{format}/{type}/partition_date=YYYY-MM-DD/{stamp}-{id}.{extension}   data containers
    {errors_prefix}/{stamp}-{id}.json                                             error documents
    {errors_prefix}/replayed/{stamp}-{id}.json                                    replayed ones

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
REPLAYED = "replayed/"  # beside each replayed error document
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


def table_prefix(prefix: str, fmt: str, type_name: str) -> str:
    """The folder of one record type in one format: an Athena table's location below the root."""
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
    longest_type = "t" * MAX_TYPE_NAME
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
