"""The one intermediate model between schema files and every renderer.

Renderers read only these frozen dataclasses, never raw schema JSON, so a fact about a
record type (its partition date, its PII, its type mapping) is decided once, in the loader.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dmd.lake.layout import table_name

from .added import ADDED
from .kinds import TIMESTAMP_KINDS as TIMESTAMP_KINDS  # re-exported: the model's vocabulary
from .kinds import Kind


def _member_name(value: str) -> str:
    return value.upper().replace(".", "_").replace("-", "_")  # "cdc.change-time" -> CDC_CHANGE_TIME


# Where a field's value comes from: the DynamoDB image, or one of the `added` kinds, which the one
# table in added.py declares: Origin.IMAGE, Origin.IS_DELETED, ..., Origin.CDC_CHANGE_TIME, ...
Origin = StrEnum("Origin", [("IMAGE", "image"), *((_member_name(value), value) for value in ADDED)])


@dataclass(frozen=True)
class TypeRef:
    kind: Kind
    name: str = ""  # Avro name of an enum or record
    symbols: tuple[str, ...] = ()
    precision: int = 0
    scale: int = 0
    items: TypeRef | None = None
    record: Record | None = None


@dataclass(frozen=True)
class Field:
    name: str
    path: str  # dotted path from the record root, e.g. "date.requested"
    pointer: str  # JSON pointer of the field in its schema file
    type: TypeRef
    optional: bool
    doc: str
    origin: Origin = Origin.IMAGE
    pii: bool = False
    wire_set: bool = False  # array read from a DynamoDB string set (SS) instead of a list (L)
    minimum: int | None = None
    maximum: int | None = None
    argument: str = ""  # what an `added` kind needs (added.py): a template "{type}:{id}", a setting's name
    aliases: tuple[str, ...] = ()  # earlier names (Avro aliases): a reader resolves them to this field

    @property
    def from_image(self) -> bool:
        return self.origin is Origin.IMAGE

    @property
    def wire_required(self) -> bool:
        """Must the attribute be present in the DynamoDB image?

        A nested record that the pipeline completes (e.g. `date`, which holds `date.deleted`)
        is required on the wire only if it holds a required image attribute itself.
        """
        if self.optional:
            return False
        if self.type.record is not None:
            return any(f.wire_required for f in self.type.record.fields)
        return self.from_image

    @property
    def has_image_fields(self) -> bool:
        if self.type.record is not None:
            return any(f.has_image_fields for f in self.type.record.fields)
        return self.from_image


@dataclass(frozen=True)
class Record:
    name: str  # Avro name (without namespace)
    class_name: str  # Python class name, unique within its record type
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class RecordType:
    type_name: str  # the DynamoDB `type` value
    source: str  # schema file, relative to the schema folder's parent (e.g. "schemas/demand.json")
    source_sha256: str
    doc: str
    namespace: str
    root: Record
    partition_paths: tuple[str, ...]
    partition_fallback: bool  # fall back to processing time when every path is absent
    table_version: int = 1  # `dmd.tableVersion`: raised to start a new table after a breaking change

    @property
    def table(self) -> str:
        """The Athena table and lake folder its files go to (dmd.lake.layout.table_name)."""
        return table_name(self.type_name, self.table_version)

    @property
    def class_name(self) -> str:
        return self.root.class_name

    def walk(self) -> tuple[Field, ...]:
        """Every field, depth first, in schema order."""
        out: list[Field] = []

        def visit(record: Record) -> None:
            for f in record.fields:
                out.append(f)
                if f.type.kind is Kind.RECORD and f.type.record is not None:
                    visit(f.type.record)

        visit(self.root)
        return tuple(out)

    def field(self, path: str) -> Field | None:
        return next((f for f in self.walk() if f.path == path), None)

    def records(self) -> tuple[Record, ...]:
        """Nested records first, the root last: the order classes must be defined in."""
        out: list[Record] = []

        def visit(record: Record) -> None:
            for f in record.fields:
                if f.type.kind is Kind.RECORD and f.type.record is not None:
                    visit(f.type.record)
            out.append(record)

        visit(self.root)
        return tuple(out)

    @property
    def pii_paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.walk() if f.pii)


@dataclass(frozen=True)
class Model:
    types: tuple[RecordType, ...]  # sorted by type_name
    # The last version of each older table of a type (history.py): their files stay in the
    # archive, so their tables stay, and `{type}_all` reads them with the current one.
    retired: tuple[RecordType, ...] = ()

    def tables(self, rt: RecordType) -> tuple[RecordType, ...]:
        """Every table of `rt`'s type, oldest first, `rt` (the current one) last."""
        return (*(r for r in self.retired if r.type_name == rt.type_name), rt)

    def type(self, type_name: str) -> RecordType:
        return next(t for t in self.types if t.type_name == type_name)
