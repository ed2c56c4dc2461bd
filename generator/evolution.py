"""Classify every change between the schema files and the history (history.py) before anything is
generated: the tables generated next must still read every file of the archive.

Three readers judge each change (docs/schema-evolution.md has the table of verdicts):
- avro: the Avro table reads each file with the file's writer schema resolved against the new
  one. Apache avro's checker (`avro.compatibility`) decides, against EVERY earlier version of
  the table (Confluent's BACKWARD_TRANSITIVE); it ignores logical types, so a change of a
  decimal's scale or a timestamp's unit, which resolution would silently misread, is refused here.
- parquet: Athena reads Parquet columns by name; a column's type may change only as Athena's
  "compatible data types" allow (of ours: int -> bigint).
- pipeline: the annotations the archive depends on: partition-date paths (what a partition
  means), PII flags (older REMOVE rows were redacted), ranges, `added` kinds.

Each refusal says how to make the change compatibly, or to start a new table version
(`"tableVersion"` in the schema's `dmd`): new files then go to a table of their own, the older
tables stay, and a `{type}_all` view reads them together (docs/schema-evolution.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from dmd.lake.formats import PARQUET

from .history import History, Version, current
from .loader import record_type_from_doc
from .model import Field, Kind, Model, Record, RecordType
from .targets.catalog import ATHENA_READS_AS
from .typemap import athena_type, record_avro

AVRO_PROMOTIONS = frozenset({(Kind.INT, Kind.LONG)})  # the Avro specification's, among our kinds


@dataclass(frozen=True)
class Change:
    """One change to one field (or to the type), with what each reader makes of it."""

    type_name: str
    field: str  # dotted path, "" for the type itself
    kind: str  # the row of docs/schema-evolution.md, e.g. "widen int to long"
    detail: str = ""
    problems: tuple[str, ...] = ()  # "avro: ...", "parquet: ...", "pipeline: ..."
    instead: str = ""
    note: str = ""  # what an accepted change means for older rows

    @property
    def accepted(self) -> bool:
        return not self.problems

    @property
    def where(self) -> str:
        return f"{self.type_name}.{self.field}" if self.field else self.type_name

    def line(self) -> str:
        what = f"{self.where}: {self.kind}" + (f" ({self.detail})" if self.detail else "")
        if self.accepted:
            return what + (f"; {self.note}" if self.note else "")
        return f"{what}: {'; '.join(self.problems)}; instead: {self.instead}"


@dataclass
class Verdict:
    accepted: list[Change] = field(default_factory=list)
    refused: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def report(self) -> str:
        lines = [f"refused: {c.line()}" for c in self.refused]
        lines += [f"accepted: {c.line()}" for c in self.accepted]
        return "\n".join(lines + self.notes)


class EvolutionError(Exception):
    """Schema changes the archive cannot take; nothing was generated."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.report())
        self.verdict = verdict


def classify(
    model: Model, schemas: dict[str, dict[str, Any]], history: History, allow_pii_removal: Iterable[str] = ()
) -> Verdict:
    """Every change of each type's schema file against the versions of its table in `history`.

    Problems are found against every earlier version; the accepted changes listed are those since
    the latest. `allow_pii_removal` holds `type.field` paths whose PII flag may be dropped.
    """
    allowed = frozenset(allow_pii_removal)
    verdict = Verdict()
    for rt in model.types:
        versions = history.get(rt.type_name, ())
        now = current(rt, schemas[rt.type_name])
        if not versions or versions[-1].schema == now.schema:
            continue
        if rt.table_version != max(v.table_version for v in versions):
            change = new_table(rt, versions)
            (verdict.accepted if change.accepted else verdict.refused).append(change)
            continue
        seen: set[tuple[str, str, str]] = set()  # a problem found against a later version is not repeated
        for i, old in enumerate(reversed([v for v in versions if v.table == rt.table])):
            for c in changes(old, rt, allowed):
                if not c.accepted and (c.field, c.kind, c.detail) not in seen:
                    seen.add((c.field, c.kind, c.detail))
                    verdict.refused.append(c)
                elif c.accepted and i == 0:
                    verdict.accepted.append(c)
    for type_name in sorted(set(history) - {rt.type_name for rt in model.types}):
        verdict.notes.append(
            f"note: {type_name} has no schema file any more: no table is generated for it; "
            f"its history and its files in the archive stay"
        )
    return verdict


def new_table(rt: RecordType, versions: tuple[Version, ...]) -> Change:
    """A raised `dmd.tableVersion`: the type's files go to a new table from now on; no check
    against the older tables, whose files are read by their own tables."""
    last = versions[-1]
    if rt.table_version > max(v.table_version for v in versions):
        return Change(
            rt.type_name,
            "",
            "start a new table version",
            f"{last.table} -> {rt.table}",
            note=f"new files go to {rt.table}; {last.table} keeps its files and its table, "
            f"and the view {rt.type_name}_all reads both",
        )
    return Change(
        rt.type_name,
        "",
        "go back to an older table version",
        f"{last.table} -> {rt.table}",
        ("pipeline: a table version, once left, keeps only the files written to it so far",),
        f'set "tableVersion" above {max(v.table_version for v in versions)}',
    )


def old_record_type(v: Version) -> RecordType:
    return record_type_from_doc(v.schema, f"generated/{v.path}#/schema", v.type_name, past=True)


def changes(old: Version, rt: RecordType, allow_pii_removal: frozenset[str] = frozenset()) -> list[Change]:
    """The changes from version `old` to `rt`, each judged by the three readers."""
    before = old_record_type(old)
    out: list[Change] = []
    avro_bad = _avro_incompatible_paths(rt, old)
    _diff_records(before.root, rt.root, rt.type_name, old, out, avro_bad)
    out += _annotation_changes(before, rt, old, allow_pii_removal)
    covered = {c.field for c in out if not c.accepted}
    for path, messages in sorted(avro_bad.items()):  # anything the checker refuses that no rule above named
        if not any(path == p or path.startswith(p + ".") for p in covered):
            out.append(
                Change(
                    rt.type_name,
                    path,
                    "change Avro cannot resolve",
                    "",
                    (f"avro: {messages} against version {old.version}",),
                    "undo the change; add what you need as a new optional field",
                )
            )
    new_table = f'or start a new table: "tableVersion": {rt.table_version + 1} in the schema\'s "dmd"'
    return [
        c if c.accepted or c.kind == "remove a field's PII flag" else replace(c, instead=f"{c.instead}, {new_table}")
        for c in out
    ]


# --- Avro: Apache avro's checker --------------------------------------------------------------------


def _avro_incompatible_paths(rt: RecordType, old: Version) -> dict[str, str]:
    """Field path -> the checker's incompatibilities, reading `old`'s files with the new schema."""
    import avro.schema
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

    def check(reader_json: dict[str, Any]) -> Any:
        reader = avro.schema.parse(json.dumps(reader_json))
        result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
        return None if result.compatibility is SchemaCompatibilityType.compatible else result

    def rules(result: Any) -> str:
        return ", ".join(sorted({i.value for i in result.incompatibilities}))

    writer = avro.schema.parse(json.dumps(old.avro))
    reader_json = record_avro(rt)
    whole = check(reader_json)
    if whole is None:
        return {}
    # The checker's findings are sets (rules, locations) for the whole schema; checked one field at
    # a time (every type is defined inline, so one field is a schema of its own), each field gets its own.
    out: dict[str, str] = {}
    for f in reader_json["fields"]:
        one = {**reader_json, "fields": [f]}
        result = check(one)
        if result is not None:
            for location in result.locations:  # a union's mismatch is located at the record: the field's
                out[_path_at(one, location) or f["name"]] = rules(result)
    return out or {"": rules(whole)}


def _path_at(schema: dict[str, Any], pointer: str) -> str:
    """The dotted field path a checker location (a JSON pointer into the reader schema) is in."""
    parts = [p for p in pointer.split("/") if p]
    names: list[str] = []
    node: Any = schema
    i = 0
    while i < len(parts):
        if isinstance(node, dict) and parts[i] == "fields" and i + 1 < len(parts) and parts[i + 1].isdigit():
            f = node["fields"][int(parts[i + 1])]
            names.append(f["name"])
            node, i = f, i + 2
        elif isinstance(node, dict) and parts[i] in node:
            node, i = node[parts[i]], i + 1
        elif isinstance(node, list) and parts[i].isdigit() and int(parts[i]) < len(node):
            node, i = node[int(parts[i])], i + 1
        else:
            break
    return ".".join(names)


# --- fields ----------------------------------------------------------------------------------------


def _describe(f: Field) -> str:
    t = f.type
    text = {Kind.DECIMAL: f"decimal({t.precision},{t.scale})", Kind.ARRAY: f"array<{t.items.kind if t.items else ''}>"}
    return ("optional " if f.optional else "") + text.get(t.kind, str(t.kind))


def _diff_records(
    old: Record, new: Record, type_name: str, version: Version, out: list[Change], avro_bad: dict[str, str]
) -> None:
    old_by_name = {f.name: f for f in old.fields}
    new_by_name = {f.name: f for f in new.fields}
    renamed = {alias: f for f in new.fields for alias in f.aliases if alias in old_by_name and alias not in new_by_name}

    def avro_problem(path: str, rule: str) -> tuple[str, ...]:
        return _avro_problem(avro_bad, path, rule, version)

    for name, f in old_by_name.items():
        if name in new_by_name or name in renamed:
            continue
        out.append(
            Change(
                type_name,
                f.path,
                f"remove {'an optional' if f.optional else 'a required'} field",
                _describe(f),
                avro_problem(f.path, "the new schema must still read it"),
                "keep the field (it is only read where present)",
                note="older rows keep its values in their files; the tables no longer show them",
            )
        )
    for name, f in new_by_name.items():
        before = old_by_name.get(name)
        if before is None:
            old_name = next((a for a, g in renamed.items() if g is f), None)
            if old_name is not None:
                before = old_by_name[old_name]
                out.append(
                    Change(
                        type_name,
                        f.path,
                        "rename with an Avro alias",
                        f"{old_name} -> {name}",
                        (
                            *avro_problem(f.path, "resolution by alias failed"),
                            f"parquet: Athena reads Parquet columns by name: older files' `{old_name}` "
                            f"would read as null under `{name}`",
                        ),
                        f"keep `{old_name}` and document the better name, or add `{name}` as a new optional "
                        "field and write both for a while",
                    )
                )
                _diff_field(before, f, type_name, version, out, avro_bad)
                continue
            required = not f.optional
            out.append(
                Change(
                    type_name,
                    f.path,
                    f"add {'a required' if required else 'an optional'} field",
                    _describe(f),
                    avro_problem(
                        f.path,
                        f"files written with version {version.version} have no `{name}` and a required field "
                        "has no default",
                    ),
                    'make it optional: ["null", T] with "default": null',
                    note="older rows read it as null",
                )
            )
            continue
        _diff_field(before, f, type_name, version, out, avro_bad)


def _avro_problem(avro_bad: dict[str, str], path: str, rule: str, version: Version) -> tuple[str, ...]:
    """The checker's verdict on `path` (or a field inside it), with the rule it broke."""
    bad = [p for p in avro_bad if p == path or p.startswith(path + ".")]
    return (f"avro: {rule} ({avro_bad[bad[0]]}, against version {version.version})",) if bad else ()


def _diff_field(
    old: Field, new: Field, type_name: str, version: Version, out: list[Change], avro_bad: dict[str, str]
) -> None:
    path = new.path

    def avro_problem(path: str, rule: str) -> tuple[str, ...]:
        return _avro_problem(avro_bad, path, rule, version)

    ot, nt = old.type, new.type
    if old.optional and not new.optional:
        out.append(
            Change(
                type_name,
                path,
                "make an optional field required",
                _describe(new),
                avro_problem(path, "null values already written have no branch in the new type"),
                "keep it optional",
            )
        )
    elif new.optional and not old.optional:
        out.append(Change(type_name, path, "make a required field optional", _describe(new)))
    if ot.kind is Kind.RECORD and nt.kind is Kind.RECORD and ot.record and nt.record:
        _diff_records(ot.record, nt.record, type_name, version, out, avro_bad)
        return
    if ot.kind is Kind.ENUM and nt.kind is Kind.ENUM:
        added = [s for s in nt.symbols if s not in ot.symbols]
        removed = [s for s in ot.symbols if s not in nt.symbols]
        if added:
            out.append(Change(type_name, path, "add an enum symbol", ", ".join(added)))
        if removed:
            out.append(
                Change(
                    type_name,
                    path,
                    "remove an enum symbol",
                    ", ".join(removed),
                    avro_problem(path, "older files hold the symbol and the new enum cannot read it"),
                    "keep the symbol and document it as retired",
                )
            )
        return
    if ot.kind is Kind.ARRAY and nt.kind is Kind.ARRAY and ot.items and nt.items:
        if ot.items != nt.items:
            problems = avro_problem(path, "the new item type cannot read the old items")
            problems += _logical_problem(ot.items, nt.items, version)
            if athena_type(ot, PARQUET) != athena_type(nt, PARQUET):
                problems += (
                    "parquet: Athena's compatible types apply to columns, not to an array's items: "
                    f"{athena_type(ot, PARQUET)} cannot be read as {athena_type(nt, PARQUET)}",
                )
            out.append(
                Change(
                    type_name,
                    path,
                    "change an array's item type",
                    f"{athena_type(ot, PARQUET)} -> {athena_type(nt, PARQUET)}",
                    problems,
                    "keep the item type; add a new optional field with the new one",
                )
            )
        return
    if ot == nt:
        return
    detail = f"{_describe(old).removeprefix('optional ')} -> {_describe(new).removeprefix('optional ')}"
    if ot.kind is Kind.DECIMAL and nt.kind is Kind.DECIMAL:
        kind = "change a decimal's precision or scale"
    elif (ot.kind, nt.kind) in AVRO_PROMOTIONS:
        kind = "widen int to long"
    else:
        kind = "change a field's type"
    problems = avro_problem(path, "the new type cannot read the old values") + _logical_problem(ot, nt, version)
    before, after = athena_type(ot, PARQUET), athena_type(nt, PARQUET)
    if before != after and (before, after) not in ATHENA_READS_AS:
        problems += (
            f"parquet: Athena cannot read a Parquet column written as {before} as {after} "
            "(its compatible data types: int -> bigint only)",
        )
    instead = "keep the type; add a new optional field of the new type and write both for a while"
    out.append(Change(type_name, path, kind, detail, problems, instead))


def _logical_problem(old: Any, new: Any, version: Version) -> tuple[str, ...]:
    """Avro resolution compares base types only: the same bytes under another logical type (a
    decimal's scale, a timestamp's unit, a date read as an int) would be misread, not refused."""
    from .typemap import mapping

    def base(t: Any) -> Any:
        a = mapping(t).avro
        return a.get("type") if isinstance(a, dict) else a

    if old.kind is new.kind and old.kind is not Kind.DECIMAL:
        return ()
    if base(old) != base(new) or old.kind is Kind.ENUM or new.kind is Kind.ENUM:
        return ()  # another base type: the checker judges it
    # A decimal widened at the same scale: the same unscaled bytes, room for them: read as written.
    if (
        old.kind is Kind.DECIMAL
        and new.kind is Kind.DECIMAL
        and old.scale == new.scale
        and new.precision >= old.precision
    ):
        return ()
    return (
        f"avro: Avro resolution ignores logical types: values written with version {version.version} as "
        f"{mapping(old).athena} would be read as {mapping(new).athena}, not refused",
    )


# --- the pipeline's annotations ---------------------------------------------------------------------


def _annotation_changes(old: RecordType, new: RecordType, version: Version, allow: frozenset[str]) -> list[Change]:
    t = new.type_name
    out: list[Change] = []
    if old.partition_paths != new.partition_paths or old.partition_fallback != new.partition_fallback:
        out.append(
            Change(
                t,
                "",
                "change the partition-date paths",
                f"{', '.join(old.partition_paths)} -> {', '.join(new.partition_paths)}",
                (
                    "pipeline: older partitions were cut by the old paths, so a filter on partition_date would "
                    "mean two things in one table",
                ),
                "keep the paths; add the other date as a field and filter on it",
            )
        )
    old_fields = {f.path: f for f in old.walk()}
    for f in new.walk():
        before = old_fields.get(f.path)
        if before is None:
            continue
        if before.pii and not f.pii:
            key = f"{t}.{f.path}"
            problems = (
                () if key in allow else ("pipeline: older REMOVE rows were redacted and newer ones would not be",)
            )
            out.append(
                Change(
                    t,
                    f.path,
                    "remove a field's PII flag",
                    "acknowledged with --allow-pii-removal" if key in allow else "",
                    problems,
                    f"keep `pii`, or acknowledge it: dmd generate --allow-pii-removal {key}",
                )
            )
        elif f.pii and not before.pii:
            out.append(Change(t, f.path, "add a field's PII flag", note="REMOVE rows archived before stay unredacted"))
        if (before.minimum, before.maximum) != (f.minimum, f.maximum) and f.type.kind in (Kind.INT, Kind.LONG):
            narrower = _narrower(before.minimum, f.minimum, min) or _narrower(before.maximum, f.maximum, max)
            detail = f"[{before.minimum}, {before.maximum}] -> [{f.minimum}, {f.maximum}]"
            out.append(
                Change(
                    t,
                    f.path,
                    "narrow a range" if narrower else "widen a range",
                    detail,
                    ("pipeline: older rows may hold values outside the new range",) if narrower else (),
                    "keep the old bounds (a value outside them goes to an error document either way)",
                )
            )
        if (before.origin, before.argument) != (f.origin, f.argument):
            out.append(
                Change(
                    t,
                    f.path,
                    "change what the pipeline adds to a field",
                    f"{before.origin.value} {before.argument} -> {f.origin.value} {f.argument}".strip(),
                    ("pipeline: older rows hold the old value under the same column",),
                    "keep the field as it is; add a new field for the new value",
                )
            )
    return out


def _narrower(before: int | None, after: int | None, outer: Any) -> bool:
    """Does the new bound cut off values the old one allowed (`outer`: min for a minimum)?"""
    if after is None:
        return False
    if before is None:
        return True
    return outer(before, after) != after
