"""Load schema files into the one model, reporting every fault as `file:JSON-pointer: reason`.

Three passes per file, all faults of a pass reported together:
1. the JSON Schema meta-schema (structure and annotation shapes),
2. semantics (partition-date paths exist and are timestamps, PII fields are strings, ...),
3. fastavro (the Avro part must be a valid Avro schema for any Avro tool); last, because its
   messages name no place in the file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import keyword
import re
from importlib import resources
from pathlib import Path
from typing import Any

import fastavro
import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from .added import ADDED, REQUIRED_ADDED, annotate_metaschema
from .kinds import TIMESTAMP_KINDS
from .model import Field, Kind, Model, Origin, Record, RecordType, TypeRef
from .typemap import INT_RANGES, scalar_kind

# Settings the runtime can supply to `"added": "config"` fields.
CONFIG_KEYS = frozenset({"source_system_id"})
# Names every generated record module binds at module level (imports, constants, functions of
# templates/python/record.py.j2); a record class of the same name would shadow one of them.
# tests/generator/test_malformed_schemas.py checks this list against the generated modules.
GENERATED_MODULE_NAMES = frozenset(
    {
        "AVRO_SCHEMA", "Any", "Change", "Decimal", "DecodeError", "FIELDS", "FieldInfo", "FieldKind", "Final",
        "Literal", "Mapping", "REDACTED", "RecordSpec", "SPEC", "Sequence", "TYPE_CHECKING", "TYPE_NAME", "UTC",
        "_EMPTY", "annotations", "arrow_schema", "cache", "date", "datetime", "decode", "pa", "partial",
        "partition_date", "scrub", "struct_array", "to_arrow", "to_avro", "w",
        "ROWS_VIA_DICTS", "avro_write", "days", "table_from_rows", "to_arrow_columns", "write_decimal", "write_long",
        "write_micros", "write_millis", "msgspec", "Struct", "UNSET", "UnsetType", "wt", "_IMAGE", "decode_json",
    }
)  # fmt: skip
TEMPLATE_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


class SchemaError(Exception):
    """One or more faults, each `file:JSON-pointer: reason`."""

    def __init__(self, faults: list[str]) -> None:
        super().__init__("\n".join(faults))
        self.faults = faults


def metaschema() -> dict[str, Any]:
    """generator/metaschema.json, with the `added` kinds of added.py filled in."""
    text = resources.files(__package__).joinpath("metaschema.json").read_text(encoding="utf-8")
    return annotate_metaschema(json.loads(text))


def _metaschema_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(metaschema())


def pointer(*parts: str | int) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def load_model(schema_dir: Path) -> Model:
    """Every `*.json` in `schema_dir`, as one model sorted by type name; raises SchemaError."""
    faults: list[str] = []
    types: list[RecordType] = []
    files = sorted(schema_dir.glob("*.json"))
    if not files:
        raise SchemaError([f"{schema_dir}:: no schema files (*.json) found"])
    for path in files:
        try:
            types.append(load_record_type(path, f"{schema_dir.name}/{path.name}"))
        except SchemaError as e:
            faults.extend(e.faults)
    seen: dict[str, str] = {}
    for rt in types:
        if rt.type_name in seen:
            faults.append(
                f"{rt.source}:/dmd/recordType: record type {rt.type_name!r} is already defined by {seen[rt.type_name]}"
            )
        seen.setdefault(rt.type_name, rt.source)
    if faults:
        raise SchemaError(faults)
    return Model(tuple(sorted(types, key=lambda t: t.type_name)))


def load_record_type(path: Path, label: str) -> RecordType:
    raw = path.read_bytes()
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SchemaError([f"{label}:: not valid JSON: {e}"]) from None
    if not isinstance(doc, dict):
        got = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(doc), "a number")
        raise SchemaError([f"{label}:: a schema file holds one JSON object (an Avro record schema), not {got}"])
    return record_type_from_doc(doc, label, path.stem, hashlib.sha256(raw).hexdigest())


def record_type_from_doc(
    doc: dict[str, Any], label: str, stem: str, sha256: str = "", past: bool = False
) -> RecordType:
    """A parsed schema document (a file's, or with `past` an earlier version's from the history)
    as a RecordType."""
    meta_faults = sorted(
        {_meta_fault(label, e) for e in _metaschema_validator().iter_errors(doc)},
        key=lambda line: line.split(": ", 1)[0],
    )
    if meta_faults:
        raise SchemaError(meta_faults)

    # Semantic checks before fastavro: they name the JSON pointer of a fault (e.g. a decimal
    # scale above its precision, a name defined twice), where fastavro's message names none.
    builder = _Builder(label, doc, past)
    rt = builder.build(sha256, stem)
    if builder.faults:
        raise SchemaError(builder.faults)
    try:
        fastavro.parse_schema(copy.deepcopy(doc), _write_hint=False)
    except Exception as e:  # fastavro raises several exception types for invalid schemas
        raise SchemaError([f"{label}:: not a valid Avro schema: {e}"]) from None
    return rt


# A reason echoes the offending value; a whole record schema is not a useful echo.
MAX_REASON = 240


def _meta_fault(label: str, e: ValidationError) -> str:
    leaf = _leaf(e)
    reason = leaf.message if len(leaf.message) <= MAX_REASON else leaf.message[: MAX_REASON - 1] + "…"
    return f"{label}:{pointer(*leaf.absolute_path)}: {reason}"


def _leaf(e: ValidationError) -> ValidationError:
    """The error an author means, under anyOf/oneOf: `type` is "string, or a list of types, or an
    object", and failing the branches of the wrong JSON type ("... is not of type 'string'") says
    nothing. Follow the branches whose JSON type fits, down to the deepest error."""
    while e.context:
        fitting = [c for c in e.context if not (c.validator == "type" and not c.relative_path)]
        if not fitting:
            return best_match(e.context)
        e = max(fitting, key=lambda c: len(c.absolute_path))
    return e


class _Builder:
    """Turns one meta-schema-valid document into a RecordType, collecting semantic faults."""

    def __init__(self, label: str, doc: dict[str, Any], past: bool = False) -> None:
        self.label = label
        self.doc = doc
        self.past = past  # an earlier version from the history: added kinds as they were then
        self.faults: list[str] = []
        self.root_name = doc["name"]
        self.named: dict[str, str] = {}  # Avro name of each record and enum -> pointer of its definition

    def fault(self, ptr: str, reason: str) -> None:
        self.faults.append(f"{self.label}:{ptr}: {reason}")

    def define(self, name: str, ptr: str) -> None:
        """Avro names a record or enum once per schema (and the generated classes follow it)."""
        if name in self.named:
            self.fault(ptr + "/name", f"Avro name {name!r} is already defined at {self.named[name]}")
        self.named.setdefault(name, ptr + "/name")

    def build(self, sha256: str, stem: str) -> RecordType:
        doc = self.doc
        ann = doc["dmd"]
        type_name = ann["recordType"]
        if type_name != stem:
            self.fault("/dmd/recordType", f"record type {type_name!r} does not match the file name {stem}.json")
        root = self.record(doc, "", "", self.root_name)
        partition = ann["partitionDate"]
        rt = RecordType(
            type_name=type_name,
            source=self.label,
            source_sha256=sha256,
            doc=doc.get("doc", ""),
            namespace=doc.get("namespace", f"dmd.{type_name}"),
            root=root,
            partition_paths=tuple(partition["paths"]),
            partition_fallback=partition.get("fallback") == "processing-time",
            table_version=ann.get("tableVersion", 1),
        )
        self.check_record_type(rt)
        return rt

    # --- structure -----------------------------------------------------------------------------

    def record(self, node: dict[str, Any], ptr: str, path: str, class_name: str) -> Record:
        self.define(node["name"], ptr)
        if class_name in GENERATED_MODULE_NAMES:
            self.fault(
                ptr + "/name", f"the record's Python class {class_name} would shadow a name of the generated module"
            )
        names: set[str] = set()
        fields: list[Field] = []
        for i, f in enumerate(node["fields"]):
            fptr = f"{ptr}/fields/{i}"
            if f["name"] in names:
                self.fault(fptr + "/name", f"duplicate field name {f['name']!r}")
            names.add(f["name"])
            field = self.field(f, fptr, f"{path}.{f['name']}" if path else f["name"])
            if field is not None:
                fields.append(field)
        return Record(name=node["name"], class_name=class_name, fields=tuple(fields))

    def field(self, f: dict[str, Any], ptr: str, path: str) -> Field | None:
        avro = f["type"]
        optional = False
        if isinstance(avro, list):
            if len(avro) != 2 or avro[0] != "null" or avro[1] == "null":
                self.fault(ptr + "/type", 'only the union ["null", T] (an optional T) is supported')
                return None
            optional, avro = True, avro[1]
            if f.get("default", ...) is not None:
                self.fault(ptr, 'an optional field needs "default": null')
        elif "default" in f:
            self.fault(ptr + "/default", "defaults are only allowed as null on optional fields")
        t = self.type(avro, ptr + ("/type/1" if optional else "/type"), path)
        if t is None:
            return None
        ann = f.get("dmd", {})
        origin = Origin(ann.get("added", "image"))
        field = Field(
            name=f["name"],
            path=path,
            pointer=ptr,
            type=t,
            optional=optional,
            doc=f.get("doc", ""),
            origin=origin,
            pii=ann.get("pii", False),
            wire_set=ann.get("wire") == "SS",
            minimum=ann.get("minimum"),
            maximum=ann.get("maximum"),
            argument=ann.get(ADDED[origin].argument, "") if origin in ADDED else "",
            aliases=tuple(f.get("aliases", ())),
        )
        self.check_field(field)
        return field

    def type(self, avro: Any, ptr: str, path: str) -> TypeRef | None:
        kind = scalar_kind(avro)
        if kind is not None:
            return TypeRef(kind)
        if avro in ("float", "double") or (isinstance(avro, dict) and avro.get("type") in ("float", "double")):
            self.fault(ptr, "floating point is not allowed: use int/long, or an Avro decimal for money")
            return None
        if not isinstance(avro, dict):
            self.fault(
                ptr,
                f"unsupported type {json.dumps(avro)}: use string, boolean, int, long, "
                "decimal, timestamp-millis/micros, date, enum, array or record (defined inline)",
            )
            return None
        match avro.get("type"), avro.get("logicalType"):
            case "bytes", "decimal":
                if avro["scale"] > avro["precision"]:
                    self.fault(ptr + "/scale", "decimal scale must not exceed its precision")
                return TypeRef(Kind.DECIMAL, precision=avro["precision"], scale=avro["scale"])
            case "enum", _:
                self.define(avro["name"], ptr)
                return TypeRef(Kind.ENUM, name=avro["name"], symbols=tuple(avro["symbols"]))
            case "array", _:
                items = self.type(avro["items"], ptr + "/items", path)
                if items is None:
                    return None
                if items.kind in (Kind.ARRAY, Kind.RECORD):
                    self.fault(ptr + "/items", "arrays of arrays or records are not supported")
                    return None
                return TypeRef(Kind.ARRAY, items=items)
            case "record", _:
                class_name = self.root_name + avro["name"]
                return TypeRef(Kind.RECORD, name=avro["name"], record=self.record(avro, ptr, path, class_name))
        self.fault(ptr, f"unsupported type {json.dumps(avro)[:80]}")
        return None

    # --- semantics -----------------------------------------------------------------------------

    def check_field(self, f: Field) -> None:
        ptr = f.pointer + "/dmd"
        kind = f.type.kind
        if keyword.iskeyword(f.name):
            self.fault(f.pointer + "/name", f"{f.name!r} is a Python keyword and cannot be a field name")
        elif f.name.startswith("__"):
            self.fault(f.pointer + "/name", f"{f.name!r}: Python mangles names starting with '__' in a class")
        if f.pii:
            if kind is not Kind.STRING:
                self.fault(ptr + "/pii", "only string fields can be PII (they are replaced by '[redacted]')")
            if not f.from_image:
                self.fault(ptr + "/pii", "a field the pipeline adds cannot be PII")
        if f.wire_set and not (kind is Kind.ARRAY and f.type.items and f.type.items.kind is Kind.STRING):
            self.fault(ptr + "/wire", "a string set (SS) must be an array of strings")
        if f.minimum is not None or f.maximum is not None:
            if kind not in INT_RANGES:
                self.fault(ptr, "minimum/maximum apply to int and long fields only")
            else:
                lo, hi = INT_RANGES[kind]
                for key, value in (("minimum", f.minimum), ("maximum", f.maximum)):
                    if value is not None and not lo <= value <= hi:
                        self.fault(f"{ptr}/{key}", f"{value} is outside the range of Avro {kind}")
                if f.minimum is not None and f.maximum is not None and f.minimum > f.maximum:
                    self.fault(ptr, f"minimum {f.minimum} is greater than maximum {f.maximum}")
        added = ADDED.get(f.origin)
        if added is not None and not added.fits(f, self.past):
            self.fault(f.pointer + "/type", f"a field with added {f.origin.value!r} must be {added.shape}")
        if f.origin is Origin.CONFIG and f.argument not in CONFIG_KEYS:
            self.fault(ptr + "/config", f"unknown setting {f.argument!r}; known: {', '.join(sorted(CONFIG_KEYS))}")

    def check_record_type(self, rt: RecordType) -> None:
        fields = rt.walk()
        by_path = {f.path: f for f in fields}
        type_field = by_path.get("type")
        if type_field is None or type_field.type.kind is not Kind.STRING or type_field.optional:
            self.fault("/fields", "a record type needs a required string field `type` (the DynamoDB `type`)")
        for origin in REQUIRED_ADDED:
            count = sum(1 for f in fields if f.origin == origin)
            if count != 1:
                self.fault("/fields", f'needs exactly one field with "added": "{origin}", found {count}')
        for f in fields:
            parent = by_path.get(f.path.rpartition(".")[0])
            if not f.from_image and f.type.kind is not Kind.RECORD and parent is not None and parent.optional:
                self.fault(f.pointer, "a field the pipeline adds cannot sit inside an optional record")
            if f.origin is Origin.TEMPLATE:
                if "." in f.path:
                    self.fault(f.pointer, "a template field must be a top-level field")
                outside = TEMPLATE_PLACEHOLDER.sub("", f.argument)
                if "{" in outside or "}" in outside:
                    self.fault(
                        f.pointer + "/dmd/template",
                        f"{f.argument!r} has a brace outside a placeholder; placeholders are {{field}}",
                    )
                for name in TEMPLATE_PLACEHOLDER.findall(f.argument):
                    ref = by_path.get(name)
                    if (
                        ref is None
                        or "." in name
                        or not ref.from_image
                        or ref.optional
                        or ref.type.kind not in _TEMPLATE_KINDS
                    ):
                        self.fault(
                            f.pointer + "/dmd/template",
                            f"placeholder {{{name}}} must name a required top-level string or integer image field",
                        )
        paths = rt.partition_paths
        for i, p in enumerate(paths):
            ptr = f"/dmd/partitionDate/paths/{i}"
            ref = by_path.get(p)
            if ref is None:
                self.fault(ptr, f"no field at path {p!r}")
            elif ref.type.kind not in TIMESTAMP_KINDS and ref.type.kind is not Kind.DATE:
                kind = ref.type.kind.value
                article = "an" if kind[0] in "aeiou" else "a"
                self.fault(ptr, f"field {p!r} is {article} {kind}, not a timestamp or date")
            elif not (ref.from_image or ref.origin is Origin.CDC_CHANGE_TIME):
                self.fault(ptr, f"field {p!r} is added by the pipeline; partition by an image field")
        last = by_path.get(paths[-1])
        if last is not None and not rt.partition_fallback and not _always_present(last, by_path):
            self.fault(
                "/dmd/partitionDate",
                f'the last path {paths[-1]!r} may be absent: make it required or add "fallback": "processing-time"',
            )


_TEMPLATE_KINDS = frozenset({Kind.STRING, Kind.INT, Kind.LONG, Kind.ENUM})


def _always_present(f: Field, by_path: dict[str, Field]) -> bool:
    """A field is always present if it and every record around it are required."""
    parts = f.path.split(".")
    return all(not by_path[".".join(parts[: i + 1])].optional for i in range(len(parts)))
