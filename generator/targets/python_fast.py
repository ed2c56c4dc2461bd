"""The fast path of the Python target: msgspec Structs mirroring each record's AttributeValue
JSON, and the lines of `decode_json(raw, change, settings)` that turn them into the record.

msgspec checks structure and type tags in C while it parses, so what is left in Python per
record is the conversions (integers, timestamps) and what the pipeline adds. The fast path
accepts a subset of what the exact decoder (`decode`) accepts and builds the identical
record from it; on anything else (a NULL attribute, a negative or exponent number, a
timestamp with an offset, and every error) it returns None, and the runtime decodes the
record again with the exact decoder, which names each bad field. Both paths share the
value expressions of `python.py` and the text helpers of `dmd.support.wire`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import Field, Kind, Record, RecordType
from ..typemap import mapping
from .python_kinds import SCALARS, fill, item_helper, local

# An attribute the fast path does not specialise (a list of numbers, say) is kept as the
# plain AttributeValue dict and handed to the exact helper.
GENERIC = "dict[str, Any]"


@dataclass(frozen=True)
class WireField:
    name: str
    annotation: str  # with "= UNSET" when the attribute may be absent


@dataclass(frozen=True)
class WireView:
    name: str  # the Struct of the record's image attributes
    map_name: str  # the Struct of `{"M": ...}` holding it, for a nested record
    fields: tuple[WireField, ...]
    nested: bool  # wrapped in `{"M": ...}` by its parent
    empty: str  # its map may be absent while the record is built: the all-absent instance ("": never)


def wire_class(record: Record) -> str:
    return f"_W_{record.class_name}"


def empty_struct(record: Record) -> str:
    return f"_EMPTY_{record.class_name}"


def map_class(record: Record) -> str:
    return f"_M_{record.class_name}"


def generic(f: Field) -> bool:
    if f.type.kind is Kind.ARRAY:
        assert f.type.items is not None
        return f.type.items.kind is not Kind.STRING
    return False


def wrapper(f: Field) -> str:
    kind = f.type.kind
    if kind is Kind.RECORD:
        assert f.type.record is not None
        return map_class(f.type.record)
    if kind is Kind.ARRAY:
        if generic(f):
            return GENERIC
        return "wt.SS" if f.wire_set else "wt.LS"
    return f"wt.{mapping(f.type).wire}"  # dmd.support.wiretypes: one Struct per AttributeValue tag


def absent_but_built(f: Field) -> bool:
    """A record field whose map may be absent from the image while the record is still built."""
    return f.type.kind is Kind.RECORD and not f.optional and not f.wire_required and f.has_image_fields


def wire_view(record: Record, rt: RecordType) -> WireView | None:
    """The Struct of a record's image attributes; None for a record built by the pipeline only."""
    root = record is rt.root
    fields = tuple(
        WireField(f.name, wrapper(f) if f.wire_required else f"{wrapper(f)} | UnsetType = UNSET")
        for f in record.fields
        if f.has_image_fields
    )
    if not fields and not root:
        return None
    empty = any(absent_but_built(f) and f.type.record is record for f in rt.walk())
    return WireView(wire_class(record), map_class(record), fields, not root, empty_struct(record) if empty else "")


def convert_lines(f: Field, a: str, cls: str) -> list[str]:
    """Lines setting the field's local from the present wrapper `a`, or returning None (take the
    exact path)."""
    var, kind = local(f), f.type.kind
    if kind in SCALARS:
        return fill(SCALARS[kind].fast, f, f.type, cls, var=var, a=a)
    match kind:
        case Kind.ARRAY if generic(f):
            assert f.type.items is not None
            tag = '"SS"' if f.wire_set else '"L"'
            helper = item_helper(f, f.type.items, cls)
            return [
                "p: list[str] = []",
                f"{var} = w.items({a}, {f.path!r}, p, True, {tag}, {helper})",
                "if p:",
                "    return None",
            ]
        case Kind.ARRAY:
            if f.wire_set:  # a set's members are distinct; the exact path reports duplicates
                return [f"{var} = {a}.SS", f"if len(set({var})) != len({var}):", "    return None"]
            return [f"{var} = [x.S for x in {a}.L]"]
        case Kind.RECORD:
            assert f.type.record is not None
            child = f"_fast_{f.type.record.class_name}"
            return [f"{var} = {child}({a}.M, change, settings)", f"if {var} is None:", "    return None"]
    raise ValueError(f"no fast decoder for {kind}")


def fast_lines(f: Field, cls: str, built: str) -> tuple[str, ...]:
    """Lines of `_fast_<Class>` that set the field's local from the Struct `s`. `built`: the line
    building a record that holds no image attribute (python.py spells it)."""
    if not f.has_image_fields:
        return (built,) if built else ()
    if f.wire_required:
        return tuple(convert_lines(f, f"s.{f.name}", cls))
    absent = "None"
    if absent_but_built(f):  # every attribute absent: the child cannot decline
        assert f.type.record is not None
        absent = f"_fast_{f.type.record.class_name}({empty_struct(f.type.record)}, change, settings)"
    return (
        f"a = s.{f.name}",
        "if a is UNSET:",
        f"    {local(f)} = {absent}",
        "else:",
        *("    " + line for line in convert_lines(f, "a", cls)),
    )
