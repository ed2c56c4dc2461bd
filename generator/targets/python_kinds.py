"""The one table of scalar kinds for the Python target: for each kind, every piece of generated
code that depends on it (exact decoder, fast path, Avro writer, placeholder value).

Code is spelled as `str.format` templates over the names `code_names()` computes for a field,
so a row reads like the code it generates. A new scalar kind is a member of Kind (kinds.py) and
of the runtime's FieldKind, a row in typemap.SCALARS (its Python, Avro, Arrow, Athena and wire
types), a row here, and its decoders in dmd.support.wire (and a writer in avrowire if Avro needs one).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import Field, Kind, TypeRef
from ..typemap import INT_RANGES, mapping

# Lines that end a fast-path conversion that returned None: the record takes the exact path.
DECLINE_NONE = ("if {var} is None:", "    return None")
# A string's Avro datum, inlined: a helper call per string costs more than its bytes.
STRING_AVRO = (
    "b = {v}.encode()",
    "if len(b) < 64:",
    "    out.append(len(b) << 1)",
    "else:",
    "    write_long(out, len(b))",
    "out += b",
)


@dataclass(frozen=True)
class Scalar:
    # Exact decoder: `helper(av, path, problems, required, *args)` in dmd.support.wire (`w`), its
    # further arguments named by `args` (a list's elements get `partial(helper, name=value)`).
    helper: str
    args: tuple[str, ...]
    # Fast path (python_fast.py): lines setting {var} from the msgspec wrapper {a}, or returning
    # None when the value is not on the fast path.
    fast: tuple[str, ...]
    # Lines appending the Avro binary datum of {v} to the bytearray `out`.
    avro: tuple[str, ...]
    # The value under a null struct: Arrow still builds the child columns there, and a
    # non-nullable child column must hold no nulls, or Parquet refuses the file.
    filler: str
    # The exact decoder's inlined happy path (the common kinds): a condition on the attribute
    # `av` that binds `v`, and the value it gives; "": always call the helper.
    inline: str = ""
    inline_value: str = "v"
    digits: int = 0  # timestamps: fraction digits kept exactly


# int and long differ only in their range ({lo}, {hi}, {int_check}: code_names).
INTEGER = Scalar(
    "w.integer",
    ("lo", "hi"),
    fast=("v = {a}.{tag}", "if not ({int_check}):", "    return None", "{var} = n"),
    avro=("write_long(out, {v})",),
    filler="0",
    inline='type(v := av.get("{tag}")) is str and {int_check}',
    inline_value="n",
)

SCALARS: dict[Kind, Scalar] = {
    Kind.STRING: Scalar(
        "w.string",
        (),
        fast=("{var} = {a}.{tag}",),
        avro=STRING_AVRO,
        filler='""',
        inline='type(v := av.get("{tag}")) is str',
    ),
    Kind.ENUM: Scalar(
        "w.enum",
        ("symbols",),
        fast=("{var} = {a}.{tag}", "if {var} not in {symbols}:", "    return None"),
        avro=("out.append({index}[{v}])",),  # see ENUM_BYTE_SYMBOLS
        filler="{first_symbol}",
        inline='type(v := av.get("{tag}")) is str and v in {symbols}',
    ),
    Kind.BOOLEAN: Scalar(
        "w.boolean",
        (),
        fast=("{var} = {a}.{tag}",),
        avro=("out.append(1 if {v} else 0)",),
        filler="False",
        inline='type(v := av.get("{tag}")) is bool',
    ),
    Kind.INT: INTEGER,
    Kind.LONG: INTEGER,
    Kind.DECIMAL: Scalar(
        "w.decimal",
        ("precision", "scale"),
        fast=("{var} = w.decimal_text({a}.{tag}, {precision}, {scale})", *DECLINE_NONE),
        avro=("write_decimal(out, {v}, {scale})",),
        filler="Decimal(0)",
    ),
    Kind.DATE: Scalar(
        "w.calendar_date",
        (),
        fast=("{var} = w.date_text({a}.{tag})", *DECLINE_NONE),
        avro=("write_long(out, days({v}))",),
        filler="date(1970, 1, 1)",
    ),
    Kind.TIMESTAMP_MILLIS: Scalar(
        "w.timestamp",
        ("digits",),
        fast=("{var} = w.timestamp_text({a}.{tag})", *DECLINE_NONE),
        avro=("write_millis(out, {v})",),
        filler="datetime(1970, 1, 1, tzinfo=UTC)",
        digits=3,
    ),
    Kind.TIMESTAMP_MICROS: Scalar(
        "w.timestamp",
        ("digits",),
        fast=("{var} = w.timestamp_text({a}.{tag})", *DECLINE_NONE),
        avro=("write_micros(out, {v})",),
        filler="datetime(1970, 1, 1, tzinfo=UTC)",
        digits=6,
    ),
}

# An enum's index constant holds each symbol's zigzag-encoded index while every index fits one
# byte (up to 63 symbols), appended as is; a longer enum holds plain indexes, written as longs.
ENUM_BYTE_SYMBOLS = 63


def local(f: Field) -> str:
    return f"f_{f.name}"


def symbols_const(cls: str, f: Field) -> str:
    # Case kept: fields `kind` and `Kind` of one record need two constants.
    return f"_{cls}_{f.name}_SYMBOLS"


def enum_index_const(cls: str, f: Field) -> str:
    return f"_{cls}_{f.name}_AVRO_INDEX"


def int_range(kind: Kind, f: Field) -> tuple[int, int]:
    """The values an integer field (or a list's integer items) may hold."""
    lo, hi = INT_RANGES[kind]
    return (lo if f.minimum is None else f.minimum), (hi if f.maximum is None else f.maximum)


def int_check(f: Field, t: TypeRef, v: str) -> str:
    """Condition on the text `v` of an integer: plain digits within its range. It binds `n` to
    the value, so both decoders convert each number once."""
    lo, hi = int_range(t.kind, f)
    digits = len(str(INT_RANGES[t.kind][1])) - 1  # the longest run of digits that surely fits
    return f"{v}.isdigit() and {v}.isascii() and len({v}) <= {digits} and {lo} <= (n := int({v})) <= {hi}"


def code_names(f: Field, t: TypeRef, cls: str) -> dict[str, object]:
    """The names a row's templates use, for field `f` (of class `cls`) or its list items `t`."""
    names: dict[str, object] = {"var": local(f), "tag": mapping(t).wire, "digits": SCALARS[t.kind].digits}
    if t.kind in INT_RANGES:
        names["lo"], names["hi"] = int_range(t.kind, f)
        names["int_check"] = int_check(f, t, "v")
    if t.kind is Kind.DECIMAL:
        names["precision"], names["scale"] = t.precision, t.scale
    if t.kind is Kind.ENUM:
        names["symbols"], names["index"] = symbols_const(cls, f), enum_index_const(cls, f)
        names["first_symbol"] = repr(t.symbols[0])
    return names


def scalar(t: TypeRef) -> Scalar:
    row = SCALARS.get(t.kind)
    if row is None:
        raise ValueError(f"{t.kind} is not a scalar kind")
    return row


def exact_call(f: Field, t: TypeRef, cls: str, av: str) -> str:
    """The exact decoder's call on the attribute expression `av` of field `f`."""
    row, names = scalar(t), code_names(f, t, cls)
    args = "".join(f", {names[a]}" for a in row.args)
    return f"{row.helper}({av}, {f.path!r}, problems, {f.wire_required}{args})"


def item_helper(f: Field, t: TypeRef, cls: str) -> str:
    """The exact decoder of one element `t` of list field `f`, as `helper(av, path, problems, required)`."""
    row, names = scalar(t), code_names(f, t, cls)
    if not row.args:
        return row.helper
    return f"partial({row.helper}, {', '.join(f'{a}={names[a]}' for a in row.args)})"


def fill(lines: tuple[str, ...], f: Field, t: TypeRef, cls: str, **more: str) -> list[str]:
    """A row's template lines for field `f` of scalar type `t`."""
    names = code_names(f, t, cls) | more
    return [line.format(**names) for line in lines]
