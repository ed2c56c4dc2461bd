"""Hypothesis strategies for VALID DynamoDB images of a generated record type, built from the
module's FIELDS (what the schema declares), with the exact value each attribute must decode to.

An image is drawn together with its `intended` tree: for every image field, the Python value a
correct decoder returns (int for int/long, Decimal at the field's scale, aware UTC datetime, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from dmd.support.records import FieldInfo

ABSENT = object()  # the attribute is not in the image


@dataclass
class Node:
    info: FieldInfo
    children: list[Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.info.path.rpartition(".")[2]

    @property
    def has_image_fields(self) -> bool:
        if self.info.kind == "record":
            return any(c.has_image_fields for c in self.children)
        return self.info.origin == "image"

    @property
    def wire_required(self) -> bool:
        if self.info.optional:
            return False
        if self.info.kind == "record":
            return any(c.wire_required for c in self.children)
        return self.info.origin == "image"


def tree(fields: tuple[FieldInfo, ...]) -> list[Node]:
    """The top-level fields, each with its nested fields (FIELDS is depth first, parents first)."""
    nodes: dict[str, Node] = {}
    roots: list[Node] = []
    for info in fields:
        node = nodes[info.path] = Node(info)
        parent = info.path.rpartition(".")[0]
        (nodes[parent].children if parent else roots).append(node)
    return roots


# --- numbers: one exact value, many spellings ---------------------------------------------------

MAX_BOTO_DIGITS = 38  # boto3's DYNAMODB_CONTEXT precision; more significant digits raise Rounded


def plain(d: Decimal) -> str:
    return format(d, "f")


@st.composite
def spelling(draw: st.DrawFn, d: Decimal) -> str:
    """A DynamoDB `N` string whose exact value is d: plain, leading zeros, trailing zeros,
    exponent forms (`1E+2`), `-0`, and 39-significant-digit forms that boto3 cannot take."""
    how = draw(st.sampled_from(["plain", "leading", "trailing", "exponent", "normalized", "39-digits", "minus-zero"]))
    text = plain(d)
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    if how == "leading":
        return sign + "0" * draw(st.integers(1, 3)) + digits
    if how == "trailing":
        return text + ("" if "." in text else ".") + "0" * draw(st.integers(1, 4))
    if how == "exponent":
        shift = draw(st.integers(-6, 6))
        e = draw(st.sampled_from(["E", "e"]))
        exp = f"{shift:+d}" if shift < 0 or draw(st.booleans()) else str(shift)
        return plain(d.scaleb(-shift)) + e + exp
    if how == "normalized":
        return str(d.normalize())  # 100 -> "1E+2", 12.50 -> "12.5"
    if how == "39-digits":
        significant = len(d.as_tuple().digits)
        if significant >= MAX_BOTO_DIGITS + 1:
            return text
        pad = MAX_BOTO_DIGITS + 1 - significant
        return text + ("" if "." in text else ".") + "0" * pad
    if how == "minus-zero" and d == 0:
        return draw(st.sampled_from(["-0", "-0.00", "-0E+3", "0E-5"]))
    return text


def significant_digits(text: str) -> int:
    return len(Decimal(text).as_tuple().digits)


# --- timestamps ---------------------------------------------------------------------------------

MOMENTS = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2199, 12, 30)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC)
)


def iso(d: datetime, fraction: str, zone: str) -> str:
    return f"{d.year:04d}-{d:%m-%dT%H:%M:%S}{fraction}{zone}"


@st.composite
def timestamp_text(draw: st.DrawFn, moment: datetime) -> str:
    """An ISO-8601 spelling of a millisecond UTC moment: Z or an offset, 0-9 fraction digits."""
    offset = draw(st.sampled_from([None, 0, 330, -300, 840, -720, 45]))
    local = moment if offset is None else moment + timedelta(minutes=offset)
    if offset is None:
        zone = "Z"
    else:
        hours, minutes = divmod(abs(offset), 60)
        zone = f"{'-' if offset < 0 else '+'}{hours:02d}:{minutes:02d}"
    ms = f"{moment.microsecond // 1000:03d}"
    width = draw(st.sampled_from([0, 3, 6, 9]))  # 0: the shortest spelling, e.g. ".5" or none
    digits = ms.rstrip("0") if width == 0 else (ms + "0" * 6)[:width]
    return iso(local, "." + digits if digits else "", zone)


# --- attribute strategies ------------------------------------------------------------------------

TEXT = st.text(max_size=12)
INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def leaf(kind: str, info: FieldInfo) -> st.SearchStrategy[tuple[Any, Any]]:
    """(AttributeValue, intended value) for a scalar of this kind."""
    if kind == "string":
        return TEXT.map(lambda s: ({"S": s}, s))
    if kind == "enum":
        return st.sampled_from(info.symbols).map(lambda s: ({"S": s}, s))
    if kind == "boolean":
        return st.booleans().map(lambda b: ({"BOOL": b}, b))
    if kind in ("int", "long"):
        lo, hi = (info.minimum, info.maximum) if info.kind == kind else INT_RANGES[kind]  # list items: full range
        assert lo is not None and hi is not None
        n = st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, max(lo, min(hi, 0))]))
        return n.flatmap(lambda v: spelling(Decimal(v)).map(lambda t: ({"N": t}, v)))
    if kind == "decimal":
        top = 10**info.precision - 1
        d = st.integers(-top, top).map(lambda n: Decimal(n).scaleb(-info.scale))
        return d.flatmap(lambda v: spelling(v).map(lambda t: ({"N": t}, v)))
    if kind in ("timestamp-millis", "timestamp-micros"):
        return MOMENTS.flatmap(lambda m: timestamp_text(m).map(lambda t: ({"S": t}, m)))
    if kind == "date":
        return st.dates(min_value=date(1000, 1, 1)).map(lambda d: ({"S": d.isoformat()}, d))
    raise ValueError(f"no strategy for {kind}")


def present(node: Node) -> st.SearchStrategy[tuple[Any, Any]]:
    info = node.info
    if info.kind == "record":
        return image_of(node.children).map(lambda pair: ({"M": pair[0]}, pair[1]))
    if info.kind == "array":
        if info.wire == "SS":  # a non-empty set of plain strings
            return st.lists(TEXT, min_size=1, max_size=5, unique=True).map(lambda xs: ({"SS": xs}, xs))
        items = st.lists(leaf(info.item_kind, info), max_size=5)
        return items.map(lambda xs: ({"L": [av for av, _ in xs]}, [v for _, v in xs]))
    return leaf(info.kind, info)


def attribute(node: Node) -> st.SearchStrategy[tuple[Any, Any]]:
    """(AttributeValue or ABSENT, intended): an optional attribute may be absent or NULL."""
    if node.wire_required:
        return present(node)
    missing = absent_value(node)
    return st.one_of(
        st.just((ABSENT, missing)),
        st.just(({"NULL": True}, missing)),
        present(node),
    )


def absent_value(node: Node) -> Any:
    """What an absent attribute decodes to: None, or for a record every record type carries
    (e.g. `date`, which the pipeline completes), that record with every image field None."""
    if node.info.kind == "record" and not node.info.optional:
        return {c.name: absent_value(c) for c in node.children if c.has_image_fields}
    return None


@st.composite
def image_of(draw: st.DrawFn, nodes: list[Node]) -> tuple[dict[str, Any], dict[str, Any]]:
    image: dict[str, Any] = {}
    intended: dict[str, Any] = {}
    for node in nodes:
        if not node.has_image_fields:
            continue
        av, value = draw(attribute(node))
        if av is not ABSENT:
            image[node.name] = av
        intended[node.name] = value
    return image, intended


@st.composite
def images(draw: st.DrawFn, type_name: str, fields: tuple[FieldInfo, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid image of `type_name` and its intended values; it may carry attributes the schema
    does not know (a DynamoDB item can hold more), which the decoder ignores."""
    image, intended = draw(image_of(tree(fields)))
    image["type"], intended["type"] = {"S": type_name}, type_name
    if draw(st.booleans()):
        image["zzUnknown"] = {"M": {"ttl": {"N": "1700000000"}, "tags": {"SS": ["x"]}}}
    return image, intended


# --- containers: what the runtime writes, read back -----------------------------------------------


def avro_container(schema: Any, datums: list[dict[str, Any]]) -> bytes:
    """An Avro Object Container File, written with fastavro (as the runtime writes it)."""
    import io

    import fastavro

    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(dict(schema)), datums)
    return buf.getvalue()


def avro_roundtrip(schema: Any, datums: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Write an Avro Object Container File with fastavro and read it back with fastavro."""
    import io

    import fastavro

    return list(fastavro.reader(io.BytesIO(avro_container(schema, datums))))


def apache_avro_read(data: bytes) -> list[dict[str, Any]]:
    """Read an Avro Object Container File with the Apache `avro` package."""
    import io

    import avro.datafile
    import avro.io

    with avro.datafile.DataFileReader(io.BytesIO(data), avro.io.DatumReader()) as reader:
        return list(reader)


def parquet_roundtrip(table: Any) -> Any:
    """Write a Parquet file with pyarrow and read it back (a pa.Table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return pq.read_table(pa.BufferReader(sink.getvalue()))
