"""Python target: one module per record type (typed classes, decoder, partition date, scrub,
Avro and Arrow conversion) and a registry from `type` value to RecordSpec.

This module computes every expression the templates print; the templates only lay them out.
"""

from __future__ import annotations

import pprint
from dataclasses import dataclass

from ..added import ADDED
from ..history import fingerprint
from ..model import Field, Kind, Model, Record, RecordType, TypeRef
from ..templating import header, render
from ..typemap import INT_RANGES, arrow_field, field_mapping, python_hint, record_avro
from .python_fast import WireView, fast_lines, wire_view
from .python_kinds import (
    ENUM_BYTE_SYMBOLS,
    SCALARS,
    enum_index_const,
    exact_call,
    fill,
    int_range,
    item_helper,
    local,
    symbols_const,
)

RECORD_TEMPLATE = "python/record.py.j2"
REGISTRY_TEMPLATE = "python/registry.py.j2"


@dataclass(frozen=True)
class FieldView:
    name: str
    hint: str
    decode: tuple[str, ...]  # lines that set the field's local variable (image fields)
    fast: tuple[str, ...]  # the same from the msgspec Struct `s` of the fast path (python_fast.py)
    value: str  # expression passed to the class constructor
    avro: str  # expression of the field's Avro datum, given the object `o`
    arrow: str  # expression of the field's Arrow column, given objects `objs` and parent type `t`


@dataclass(frozen=True)
class ClassView:
    name: str
    doc: str
    root: bool
    fields: tuple[FieldView, ...]
    constants: tuple[tuple[str, str], ...]  # (name, expression) of module-level constants
    placeholder: str  # constructor arguments of the record that stands in under a null struct
    wire: WireView | None  # the msgspec Struct of its image attributes (None: built by the pipeline)


def decode_lines(f: Field, cls: str) -> tuple[str, ...]:
    """Lines that decode one image attribute into `f_<name>`: an inlined happy path for the
    common kinds, a helper call for the rest and for every error message."""
    var, path, req, kind = local(f), repr(f.path), str(f.wire_required), f.type.kind
    get = f"image.get({f.name!r})"
    row = SCALARS.get(kind)
    if row is not None:
        if not row.inline:
            return (f"{var} = {exact_call(f, f.type, cls, get)}",)
        (test,) = fill((row.inline,), f, f.type, cls)
        return (
            f"av = {get}",
            f"if type(av) is dict and {test} and len(av) == 1:",
            f"    {var} = {row.inline_value}",
            "else:",
            f"    {var} = {exact_call(f, f.type, cls, 'av')}",
        )
    match kind:
        case Kind.ARRAY:
            assert f.type.items is not None
            tag = '"SS"' if f.wire_set else '"L"'
            helper = item_helper(f, f.type.items, cls)
            return (f"{var} = w.items({get}, {path}, problems, {req}, {tag}, {helper})",)
        case Kind.RECORD:
            assert f.type.record is not None
            child = f"_decode_{f.type.record.class_name}"
            if not f.has_image_fields:
                return (built_line(f, "problems"),)
            fast_map = (  # inlined happy path: a well-formed {"M": {...}}
                f"av = {get}",
                'if type(av) is dict and type(m := av.get("M")) is dict and len(av) == 1:',
                f"    {var} = {child}(m, problems, change, settings)",
                "else:",
            )
            if f.optional or f.wire_required:
                return (
                    *fast_map,
                    f"    m = w.mapping(av, {path}, problems, {req})",
                    f"    {var} = None if m is None else {child}(m, problems, change, settings)",
                )
            return (  # present in every archived record, even when the image has no such map
                *fast_map,
                f"    m = w.mapping(av, {path}, problems, False)",
                f"    {var} = {child}(_EMPTY if m is None else m, problems, change, settings)",
            )
    raise ValueError(f"no decoder for {kind}")


def built_line(f: Field, problems: str) -> str:
    """The line building a record field that holds no image attribute (e.g. `cdc`)."""
    assert f.type.record is not None
    added = f.type.record.fields
    if all(x.type.kind is not Kind.RECORD for x in added):  # built in place: no call
        return f"{local(f)} = {f.type.record.class_name}({', '.join(added_value(x) for x in added)})"
    return f"{local(f)} = _decode_{f.type.record.class_name}(_EMPTY, {problems}, change, settings)"


def template_value(f: Field) -> str:
    # "{type}:{id}" -> f"{f_type}:{f_id}"; placeholders are root image fields (checked by the loader)
    text = f.argument.replace("{", "{f_")
    return "f" + repr(text)


def change_time(f: Field) -> str:
    """The change time as timestamp field `f` holds it. The change time has microseconds; a
    millisecond field holds what Avro and Parquet will store, so the record equals what is read back."""
    digits = SCALARS[f.type.kind].digits if f.type.kind in SCALARS else 0
    return f"w.truncate(change.change_time, {digits})" if 0 < digits < 6 else "change.change_time"


def added_value(f: Field) -> str:
    return ADDED[f.origin].python.format(change_time=change_time(f), argument=f.argument, template=template_value(f))


def avro_value(f: Field) -> str:
    get = f"o.{f.name}"
    if f.type.record is None:
        return get
    child = f"_avro_{f.type.record.class_name}"
    return f"None if {get} is None else {child}({get})" if f.optional else f"{child}({get})"


def arrow_column(f: Field, index: int) -> str:
    values = f"[o.{f.name} for o in objs]"
    child_type = f"t.field({index}).type"
    if f.type.record is None:
        return f"pa.array({values}, {child_type})"
    cls = f.type.record.class_name
    return f"struct_array({values}, {child_type}, _columns_{cls}, _NULL_{cls})"


def filler(f: Field, cls: str) -> str:
    """The field's value in the placeholder record that stands in under a null struct."""
    if f.optional:
        return "None"
    if f.type.record is not None:
        return f"_NULL_{f.type.record.class_name}"
    if f.type.kind is Kind.ARRAY:
        return "[]"
    (value,) = fill((SCALARS[f.type.kind].filler,), f, f.type, cls)
    return value


def docstring(text: str) -> str:
    """Schema text made safe inside a triple-quoted docstring: a quote or backslash in a `doc`
    would otherwise end the string early or start an escape."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def class_view(record: Record, rt: RecordType) -> ClassView:
    fields: list[FieldView] = []
    constants: list[tuple[str, str]] = []
    for i, f in enumerate(record.fields):
        if f.type.kind is Kind.ENUM or (f.type.items is not None and f.type.items.kind is Kind.ENUM):
            symbols = f.type.symbols or (f.type.items.symbols if f.type.items else ())
            constants.append((symbols_const(record.class_name, f), f"frozenset({list(symbols)!r})"))
        image = f.from_image or f.type.kind is Kind.RECORD
        decode = decode_lines(f, record.class_name) if image else ()
        built = built_line(f, "[]") if f.type.kind is Kind.RECORD and not f.has_image_fields else ""
        fields.append(
            FieldView(
                name=f.name,
                hint=python_hint(f),
                decode=decode,
                fast=fast_lines(f, record.class_name, built) if image else (),
                value=local(f) if image else added_value(f),
                avro=avro_value(f),
                arrow=arrow_column(f, i),
            )
        )
    doc = docstring(rt.doc) if record is rt.root else f"The `{record.name}` record of {rt.type_name}."
    placeholder = ", ".join(filler(f, record.class_name) for f in record.fields)
    root = record is rt.root
    return ClassView(record.class_name, doc, root, tuple(fields), tuple(constants), placeholder, wire_view(record, rt))


def guarded(path: str, root: RecordType) -> str:
    """Expression reading `rec.<path>`, None when an optional record on the way is absent."""
    parts = path.split(".")
    guards = []
    for i in range(1, len(parts)):
        f = root.field(".".join(parts[:i]))
        if f is not None and f.optional:
            guards.append("rec." + ".".join(parts[:i]) + " is not None")
    expr = "rec." + path
    return f"({expr} if {' and '.join(guards)} else None)" if guards else expr


def partition_lines(rt: RecordType) -> tuple[str, ...]:
    lines: list[str] = []
    for path in rt.partition_paths:
        f = rt.field(path)
        assert f is not None
        expr = guarded(path, rt)
        to_date = "v" if f.type.kind is Kind.DATE else "v.date()"
        lines.append(f"v = {expr}")
        if not f.optional and expr == f"rec.{path}":  # always present: the last path
            lines.append(f"return {to_date}")
            return tuple(lines)
        lines += ["if v is not None:", f"    return {to_date}"]
    if rt.partition_fallback:
        lines.append("return processing_time.astimezone(UTC).date()")
    else:
        lines.append(f'raise ValueError("{rt.type_name}: no partition date")  # unreachable: checked by the loader')
    return tuple(lines)


def scrub_lines(rt: RecordType) -> tuple[str, ...]:
    lines: list[str] = []
    for f in rt.walk():
        if not f.pii:
            continue
        value = guarded(f.path, rt)
        lines += [f"if {value} is not None:", f"    rec.{f.path} = REDACTED"]
    return tuple(lines) or ("pass",)


def field_info(f: Field) -> str:
    args = [f"{f.path!r}", f"FieldKind.{f.type.kind.name}", f"optional={f.optional}", f"origin={f.origin.value!r}"]
    if f.pii:
        args.append("pii=True")
    if f.from_image or f.has_image_fields:
        args.append(f"wire={field_mapping(f).wire!r}")
    t = f.type.items or f.type
    if f.type.items is not None:
        args.append(f"item_kind=FieldKind.{t.kind.name}")
    if t.symbols:
        args.append(f"symbols={t.symbols!r}")
    # for an array, the range, precision and scale of its items
    if t.kind in INT_RANGES:
        lo, hi = int_range(t.kind, f)
        args += [f"minimum={lo}", f"maximum={hi}"]
    if t.kind is Kind.DECIMAL:
        args += [f"precision={t.precision}", f"scale={t.scale}"]
    return f"FieldInfo({', '.join(args)})"


def render_record_type(rt: RecordType) -> str:
    classes = [class_view(r, rt) for r in rt.records()]
    return render(
        RECORD_TEMPLATE,
        header=header("#", [rt], [RECORD_TEMPLATE]),
        rt=rt,
        module_doc=docstring(rt.doc),
        classes=classes,
        root=classes[-1],
        partition=partition_lines(rt),
        scrub=scrub_lines(rt),
        fields=[field_info(f) for f in rt.walk()],
        avro_schema=pprint.pformat(record_avro(rt), indent=1, width=100, sort_dicts=False),
        fingerprint=fingerprint(record_avro(rt)),
        arrow_fields=[arrow_field(f) for f in rt.root.fields],
        avro_writers=[avro_writer_view(r, r is rt.root) for r in rt.records()],
        avro_enums=avro_enum_constants(rt),
    )


def render_python(model: Model) -> dict[str, str]:
    out = {f"python/{rt.type_name}.py": render_record_type(rt) for rt in model.types}
    retired = [RetiredView(rt.table, retired_module(rt)) for rt in model.retired]
    out |= {f"python/{r.module}.py": render_record_type(rt) for r, rt in zip(retired, model.retired, strict=True)}
    tables = sorted([(rt.table, rt.type_name) for rt in model.types] + [(r.table, r.module) for r in retired])
    out["python/__init__.py"] = render(
        REGISTRY_TEMPLATE,
        header=header("#", model.types, [REGISTRY_TEMPLATE]),
        types=model.types,
        retired=retired,
        tables=tables,
    )
    return out


@dataclass(frozen=True)
class RetiredView:
    table: str
    module: str


def retired_module(rt: RecordType) -> str:
    """The module of an older table version's spec (its files are read, never written)."""
    return f"retired_{rt.table}"


# --- Avro binary writers ---------------------------------------------------------------------------
# Each record class gets `_write_<Class>(o, out)` appending its Avro datum to a bytearray
# (runtime/support/avrowire.py holds the helpers and the container).


@dataclass(frozen=True)
class AvroWriterView:
    name: str
    cls: str
    lines: tuple[str, ...]


def avro_value_lines(t: TypeRef, v: str, optional: bool, cls: str, f: Field, depth: int = 0) -> list[str]:
    """Lines appending the Avro datum of expression `v` (a local name) of type `t` to `out`."""
    if optional:  # the union ["null", T]: branch index 0 or 1, zigzag-encoded
        inner = avro_value_lines(t, v, False, cls, f, depth)
        return [f"if {v} is None:", "    out.append(0)", "else:", "    out.append(2)"] + ["    " + x for x in inner]
    if t.kind is Kind.ENUM and len(t.symbols) > ENUM_BYTE_SYMBOLS:
        return [f"write_long(out, {enum_index_const(cls, f)}[{v}])"]
    if t.kind in SCALARS:
        return fill(SCALARS[t.kind].avro, f, t, cls, v=v)
    if t.kind is Kind.RECORD:
        assert t.record is not None
        return [f"_write_{t.record.class_name}({v}, out)"]
    if t.kind is Kind.ARRAY:
        assert t.items is not None
        x = f"x{depth}"
        item = avro_value_lines(t.items, x, False, cls, f, depth + 1)
        return (
            [f"if {v}:", f"    write_long(out, len({v}))", f"    for {x} in {v}:"]
            + ["        " + line for line in item]
            + ["out.append(0)"]
        )
    raise ValueError(f"no Avro writer for {t.kind}")


def avro_writer_view(record: Record, root: bool) -> AvroWriterView:
    lines: list[str] = []
    for f in record.fields:
        if f.optional or f.type.kind is Kind.ARRAY:  # read more than once: a local
            lines.append(f"v = o.{f.name}")
            lines += avro_value_lines(f.type, "v", f.optional, record.class_name, f)
        else:
            lines += avro_value_lines(f.type, f"o.{f.name}", False, record.class_name, f)
    name = "avro_write" if root else f"_write_{record.class_name}"
    return AvroWriterView(name, record.class_name, tuple(lines))


def avro_enum_constants(rt: RecordType) -> list[tuple[str, str]]:
    out = []
    for record in rt.records():
        for f in record.fields:
            t = f.type.items if f.type.kind is Kind.ARRAY else f.type
            if t is not None and t.kind is Kind.ENUM:
                small = len(t.symbols) <= ENUM_BYTE_SYMBOLS
                index = {s: 2 * i if small else i for i, s in enumerate(t.symbols)}
                out.append((enum_index_const(record.class_name, f), repr(index)))
    return out
