"""The contract between the runtime and the generated record modules.

Each generated module exposes one `RecordSpec`; the runtime never needs to know a record
type's fields, only this interface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from msgspec import Struct

if TYPE_CHECKING:  # pyarrow is imported only by Parquet runs
    import pyarrow as pa

REDACTED = "[redacted]"
OPERATIONS = ("INSERT", "MODIFY", "REMOVE")


class Change(Struct, gc=False):  # a msgspec Struct: built once per record, in C; treat as read-only
    """What the stream says about one change, besides the item image."""

    operation: str  # INSERT | MODIFY | REMOVE
    ttl_expired: bool
    sequence_number: str
    change_time: datetime  # aware, UTC
    event_id: str

    @property
    def removed(self) -> bool:
        return self.operation == "REMOVE"


class DecodeError(ValueError):
    """An image that does not fit its schema; each problem is `field.path: reason`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class FieldKind(StrEnum):
    """The kind of a field's type; the generator's model uses this enum too (generator/kinds.py).
    A StrEnum, so a kind also compares equal to its value ("timestamp-millis")."""

    STRING = "string"
    BOOLEAN = "boolean"
    INT = "int"
    LONG = "long"
    DECIMAL = "decimal"
    TIMESTAMP_MILLIS = "timestamp-millis"
    TIMESTAMP_MICROS = "timestamp-micros"
    DATE = "date"
    ENUM = "enum"
    ARRAY = "array"
    RECORD = "record"


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of a record type, as the schema declares it (for sampling, docs and tests)."""

    path: str
    kind: FieldKind
    optional: bool
    origin: str  # "image" or what the pipeline adds ("is-deleted", "cdc.operation", ...)
    pii: bool = False
    wire: str = ""  # DynamoDB tag: S, N, BOOL, L, SS, M
    item_kind: FieldKind | None = None  # for arrays
    symbols: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    precision: int = 0
    scale: int = 0

    def __post_init__(self) -> None:
        # Callers that still pass a kind's text get the member (and an unknown kind fails here).
        object.__setattr__(self, "kind", FieldKind(self.kind))
        object.__setattr__(self, "item_kind", FieldKind(self.item_kind) if self.item_kind else None)


@dataclass(frozen=True, slots=True, eq=False)  # hashed by identity: one per type, cache key
class RecordSpec:
    """Everything the runtime needs to archive one record type."""

    type_name: str
    record_class: type
    # decode(image, change, settings) -> record; raises DecodeError naming every bad field
    decode: Callable[[Mapping[str, Any], Change, Mapping[str, str]], Any]
    # partition_date(record, processing_time) -> the calendar date of the record's partition
    partition_date: Callable[[Any, datetime], date]
    scrub: Callable[[Any], None]  # replace every PII value by REDACTED, in place
    to_avro: Callable[[Any], dict[str, Any]]
    to_arrow: Callable[[Sequence[Any]], pa.Table]
    arrow_schema: Callable[[], pa.Schema]
    avro_schema: Mapping[str, Any]
    fields: tuple[FieldInfo, ...]
    # avro_write(record, out) appends the record's Avro binary datum to `out`
    avro_write: Callable[[Any, bytearray], None] | None = None
    # decode_json(image JSON text, change, settings) -> record, or None when the image is not
    # on the fast path (then `decode` of the parsed image decides, naming every bad field)
    decode_json: Callable[[bytes, Change, Mapping[str, str]], Any | None] | None = None
    # The SHA-256 fingerprint of `avro_schema`'s Parsing Canonical Form (hex): every container
    # records it (dmd.lake.formats.FINGERPRINT_KEY), so a file names the schema version it holds
    fingerprint: str = ""
    # The table (and lake folder) its containers go to: the type's name, or `{type}_v2`, ... once
    # a breaking schema change started a new table version (dmd.lake.layout.table_name)
    table: str = ""

    def __post_init__(self) -> None:
        if not self.table:
            object.__setattr__(self, "table", self.type_name)
