"""The one catalogue of malformed change records: what `dmd sample --bad-fraction` plants and
what the reliability tests feed the pipeline. Every entry must end in an error document.

A malformation works at one level of a record:
- "field": one attribute of an otherwise valid image (`fits` says which attributes can carry it);
- "change": the change document around the image;
- "text": the bytes of the change document (Kinesis only: DynamoDB Streams carry parsed JSON);
- "record": the Lambda record around the data (Kinesis `data`, the sequence number).

`dynamodb` marks the entries that also apply to a DynamoDB Streams record; `rare` ones (1 MB
records, records without a sequence number) are used only when asked for by name.

    broken = breaking(CATALOGUE["wrong-tag"], rng, change, image_nodes(spec.fields), REGISTRY)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from random import Random
from typing import Any

from dmd.support.records import FieldInfo
from dmd.tools.synth import ABSENT, Node

MB = 1 << 20


@dataclass(frozen=True, slots=True)
class Malformation:
    name: str
    level: str  # "field" | "change" | "text" | "record"
    why: str  # what is wrong, in one line
    apply: Callable[..., Any]
    fits: Callable[[FieldInfo], bool] | None = None  # field and text levels: attributes that can carry it
    dynamodb: bool = False
    rare: bool = False


@dataclass(frozen=True, slots=True)
class Broken:
    """A malformed change: the payload bytes (Kinesis), the change dict when the payload is its
    JSON, the corrupted attribute, the Kinesis `data` when that itself is broken."""

    payload: bytes
    change: dict[str, Any] | None
    field: str = ""
    data: Any = ABSENT  # ABSENT: the base64 of `payload`
    sequence_number: bool = True


# --- field level: (rng, field) -> the corrupt AttributeValue, or ABSENT ------------------------------


def _leaf(f: FieldInfo) -> bool:
    return f.kind != "record" and f.path != "type"


def _timestamp(f: FieldInfo) -> bool:
    return f.kind in ("timestamp-millis", "timestamp-micros") and f.wire == "S"


def _wrong_tag(rng: Random, f: FieldInfo) -> Any:
    tag = rng.choice([t for t in ("S", "N", "BOOL", "M", "L", "SS", "B", "XYZ") if t != f.wire])
    number = {"N" if f.wire != "N" else "S": str(rng.randint(1, 99_999))}  # the likeliest mix-up
    return rng.choice(({tag: "1"}, {tag: "1", f.wire: "2"}, "bare", [1], {}, number))


def _out_of_range_int(rng: Random, f: FieldInfo) -> Any:
    hi = f.maximum if f.maximum is not None else 2**63 - 1
    lo = f.minimum if f.minimum is not None else -(2**63)
    return {"N": rng.choice((str(hi + 1), str(lo - 1), "1e400", "-" + "9" * 50, "1E+999999999"))}


def _invalid_decimal(rng: Random, f: FieldInfo) -> Any:
    p, s = f.precision, f.scale
    return {"N": rng.choice((f"49.{'9' * (s + 1)}", f"1E+{p - s}", "-" + "9" * (p + 1), "1e40", "1e999999999"))}


_BAD_ENUM = ("archived", "unknown", "pending-review", "REQUESTED", "")
_BAD_TIMESTAMPS = (
    "2024-02-30T10:00:00.000Z",
    "2024-13-01T00:00:00.000Z",
    "2024-01-15T25:61:00.000Z",
    "2024-01-15 18:30",
    "yesterday",
    "2024-01-15",
    "2024-01-15T10:00:00.0001Z",  # finer than milliseconds
    "2024-01-15T10:00:00.000",  # no time zone
    "9999-12-31T23:59:59.000-01:00",  # past year 9999 in UTC
    "0001-01-01T00:00:00.000+01:00",
    "0000-01-01T00:00:00.000Z",
    "２０２４-01-15T10:00:00.000Z",  # full-width digits
)
_BAD_DATES = ("2024-02-30", "2024-13-01", "24-01-01", "0000-01-01", "2024-1-5")
_TRAVERSALS = ("../../x", "../../../etc/passwd", "2024-01-01/../../x", "..\\..\\x")

# --- change level: (rng, change, registered type names) -> None, in place -----------------------------


def _image(change: dict[str, Any]) -> dict[str, Any]:
    ddb = change["dynamodb"]
    return ddb.get("NewImage") or ddb["OldImage"]


def _missing_dynamodb(rng: Random, change: dict[str, Any], types: Collection[str]) -> None:
    if rng.random() < 0.5:
        del change["dynamodb"]
    else:
        change["dynamodb"] = [1]


def _missing_image(rng: Random, change: dict[str, Any], types: Collection[str]) -> None:
    ddb = change["dynamodb"]
    ddb.pop("OldImage" if change["eventName"] == "REMOVE" else "NewImage", None)


def _unknown_event_name(rng: Random, change: dict[str, Any], types: Collection[str]) -> None:
    change["eventName"] = rng.choice(("UPSERT", "DELETE", "TRUNCATE", "insert", None, 7, {"a": 1}, "x" * 100))


def _unknown_type(rng: Random, change: dict[str, Any], types: Collection[str]) -> None:
    image = _image(change)
    if rng.random() < 0.15:
        del image["type"]
        return
    names = [t for t in ("venue", "attraction", "order", "fan", "../../x", "", "Demand") if t not in types]
    image["type"] = rng.choice(({"S": rng.choice(names)}, {"N": "1"}))


def _bad_change_time(rng: Random, change: dict[str, Any], types: Collection[str]) -> None:
    ddb = change["dynamodb"]
    if rng.random() < 0.3:
        ddb["ApproximateCreationDateTimePrecision"], ddb["ApproximateCreationDateTime"] = "NANOSECOND", 1
    else:
        ddb["ApproximateCreationDateTime"] = rng.choice(("1700000000", None, 1e300, -1e300))


def _huge_change_time(rng: Random, change: dict[str, Any], types: Collection[str]) -> None:
    """Beyond any calendar in milliseconds and in seconds alike (DynamoDB Streams' unit)."""
    change["dynamodb"]["ApproximateCreationDateTime"] = rng.choice((10**25, 10**30, -(10**25)))


# --- text level: (rng, change, field or None) -> payload bytes -------------------------------------------


def dumps(rng: Random, change: Any) -> bytes:
    """JSON text of a change, escaped to ASCII or not, as writers differ."""
    # surrogatepass: a lone surrogate (DynamoDB Streams only) has no UTF-8; that payload goes unused
    return json.dumps(change, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


def _invalid_json(rng: Random, change: dict[str, Any], f: FieldInfo | None) -> bytes:
    text = json.dumps(change).encode()
    broken = text[: rng.randrange(1, len(text) - 1)] + rng.choice((b"", b"}}", b"\x00", b",]"))
    try:  # a cut + "}}" can close the document again ("SizeBytes": 3}})
        json.loads(broken)
        broken += b","
    except ValueError:
        pass
    return broken


def _json_array(rng: Random, change: dict[str, Any], f: FieldInfo | None) -> bytes:
    return json.dumps(rng.choice(([change], [], [1, "a"]))).encode()


def _json_scalar(rng: Random, change: dict[str, Any], f: FieldInfo | None) -> bytes:
    return rng.choice((b"42", b'"INSERT"', b"null", b"true", b"-1.5e3", b"-1.5e300"))


def _deep_nesting(rng: Random, change: dict[str, Any], f: FieldInfo | None) -> bytes:
    """5,000 levels, beyond any parser's limit: the whole document, or one attribute's value.
    Written as text: json.dumps itself would exceed Python's recursion limit."""
    if f is None or rng.random() < 0.3:
        return b"[" * 5000 + b"]" * 5000
    return _plant(change, f, deep_value(5000).encode())


def _deep_nesting_1024(rng: Random, change: dict[str, Any], f: FieldInfo | None) -> bytes:
    """About 1,000 levels: as deep as orjson parses, in the eventName (a repr there recurses)
    or in an attribute value."""
    depth = rng.choice((495, 505, 509))  # 2 JSON levels each
    if f is not None and rng.random() < 0.5:
        return _plant(change, f, deep_value(depth).encode())
    nest = "[" * (depth + 2) + "]" * (depth + 2)
    return json.dumps(change).replace(json.dumps(change["eventName"]), nest, 1).encode()


def _non_utf8(rng: Random, change: dict[str, Any], f: FieldInfo | None) -> bytes:
    bad = rng.choice((b"caf\xe9 \xff\xfe", b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"))
    if f is not None and rng.random() < 0.5:  # inside a string attribute
        return _plant(change, f, b'{"S": "' + bad + b'"}')
    payload = json.dumps(change).encode()
    pos = rng.randrange(len(payload))
    return payload[:pos] + bad + payload[pos:]


_MARK = "@@dmd-malformed@@"


def _plant(change: dict[str, Any], f: FieldInfo, av_text: bytes) -> bytes:
    """The change's JSON with the AttributeValue of `f` replaced by raw text."""
    put(_image(change), f.path, {"S": _MARK})
    return json.dumps(change).encode().replace(json.dumps({"S": _MARK}).encode(), av_text, 1)


def deep_value(depth: int) -> str:
    """The JSON text of a `depth`-deep nest of L and M AttributeValues."""
    opening = "".join('{"L":[' if i % 2 else '{"M":{"k":' for i in range(depth))
    closing = "".join("]}" if i % 2 else "}}" for i in reversed(range(depth)))
    return opening + '{"S":"x"}' + closing


# --- record level: (rng, payload) -> Kinesis `data` ----------------------------------------------------


def _invalid_base64(rng: Random, payload: bytes) -> Any:
    """Not strict base64. Mostly not even for a lenient decoder (a character outside the
    alphabet and 4n+1 data characters); now and then what only a lenient decoder takes
    (padding first, data after the padding), or not a string at all (never from Kinesis)."""
    r = rng.random()
    if r < 0.1:
        return rng.choice((None, 12, {"x": 1}, ["a"]))
    if r < 0.2:
        return rng.choice(("====", "eyJhIjoxfQ==\n", "not base64!", "@", "é"))
    body = base64.b64encode(payload).decode("ascii").rstrip("=")
    body = body[: max(len(body) // 4 * 4 - 3, 1)]
    cut = rng.randrange(len(body))
    return body[:cut] + rng.choice(("*", "%", "!", "~", " ", "é")) + body[cut:]


def _no_sequence_number(rng: Random, payload: bytes) -> Any:
    return None  # the envelope leaves the sequence number out


# --- the catalogue -------------------------------------------------------------------------------------

_ENTRIES = (
    Malformation("invalid-base64", "record", "kinesis.data is not base64", _invalid_base64),
    Malformation("missing-sequence-number", "record", "the Kinesis record has no sequence number",
                 _no_sequence_number, dynamodb=True, rare=True),
    Malformation("invalid-json", "text", "the data is a cut JSON document", _invalid_json),
    Malformation("json-array", "text", "the data is a JSON array, not an object", _json_array),
    Malformation("json-scalar", "text", "the data is a JSON number, string, null or boolean", _json_scalar),
    Malformation("deep-nesting", "text", "5,000 levels of nesting, beyond any parser's limit", _deep_nesting,
                 fits=_leaf),
    Malformation("deep-nesting-1024", "text", "about 1,000 levels of nesting", _deep_nesting_1024, fits=_leaf),
    Malformation("non-utf8", "text", "bytes that are not UTF-8", _non_utf8, fits=lambda f: _leaf(f) and f.wire == "S"),
    Malformation("missing-dynamodb", "change", "no `dynamodb` object", _missing_dynamodb, dynamodb=True),
    Malformation("missing-image", "change", "the image the operation needs is absent", _missing_image),
    Malformation("unknown-event-name", "change", "eventName is not INSERT, MODIFY or REMOVE", _unknown_event_name),
    Malformation("unknown-type", "change", "the image's `type` is absent or not a registered type", _unknown_type,
                 dynamodb=True),
    Malformation("bad-change-time", "change", "ApproximateCreationDateTime is not a usable instant",
                 _bad_change_time),
    Malformation("huge-change-time", "change", "ApproximateCreationDateTime beyond any calendar",
                 _huge_change_time, dynamodb=True),
    Malformation("missing-required", "field", "a required attribute is absent", lambda rng, f: ABSENT,
                 fits=lambda f: _leaf(f) and not f.optional, dynamodb=True),
    Malformation("wrong-tag", "field", "an AttributeValue of the wrong type, or not one at all", _wrong_tag,
                 fits=_leaf, dynamodb=True),
    Malformation("unknown-enum-symbol", "field", "an enum value outside the symbols",
                 lambda rng, f: {"S": rng.choice([v for v in _BAD_ENUM if v not in f.symbols])},
                 fits=lambda f: f.kind == "enum" and f.wire == "S"),
    Malformation("non-integral-integer", "field", "a number that is no integer in an int or long field",
                 lambda rng, f: {"N": rng.choice(("2.5", "0.1", "-3.5", "1.0000001", "NaN", "Infinity", "0x10", " 1"))},
                 fits=lambda f: f.kind in ("int", "long")),
    Malformation("out-of-range-int", "field", "an integer past the field's range", _out_of_range_int,
                 fits=lambda f: f.kind in ("int", "long")),
    Malformation("invalid-decimal", "field", "more places than the scale, or beyond the precision",
                 _invalid_decimal, fits=lambda f: f.kind == "decimal"),
    Malformation("invalid-timestamp", "field", "an impossible or malformed instant",
                 lambda rng, f: {"S": rng.choice(_BAD_TIMESTAMPS)}, fits=_timestamp, dynamodb=True),
    Malformation("invalid-date", "field", "an impossible or malformed date",
                 lambda rng, f: {"S": rng.choice(_BAD_DATES)}, fits=lambda f: f.kind == "date" and f.wire == "S"),
    Malformation("path-traversal-date", "field", "../../x in a date or timestamp (one that may name a partition)",
                 lambda rng, f: {"S": rng.choice(_TRAVERSALS)},
                 fits=lambda f: (f.kind == "date" or _timestamp(f)) and f.wire == "S"),
    Malformation("huge-bad-string", "field", "1 MB where a string must be one of a few values",
                 lambda rng, f: {"S": "z" * (MB + rng.randrange(1000))},
                 fits=lambda f: f.kind == "enum" or _timestamp(f) or f.path == "type", rare=True),
    Malformation("lone-surrogate", "field", "a lone UTF-16 surrogate, which no UTF-8 writer takes",
                 lambda rng, f: {"S": rng.choice(("\ud800x", "id-\udcff"))},
                 fits=lambda f: f.kind == "enum" or _timestamp(f) or f.path == "id", dynamodb=True),
)  # fmt: skip
CATALOGUE: Mapping[str, Malformation] = {m.name: m for m in _ENTRIES}
KINESIS = tuple(m.name for m in _ENTRIES if m.name != "lone-surrogate")  # Kinesis data is JSON text: see below
DYNAMODB = tuple(m.name for m in _ENTRIES if m.dynamodb)
# A lone surrogate only exists in parsed JSON (DynamoDB Streams hands Lambda parsed events); in
# Kinesis JSON text it is an escape, which the text levels already cover.


def candidates(m: Malformation, nodes: list[Node]) -> list[FieldInfo]:
    """The attributes of a type that can carry `m` (all of them for levels without `fits`)."""
    leaves = [n.info for n in nodes if not n.record]
    return [f for f in leaves if m.fits is None or m.fits(f)]


def applies(m: Malformation, nodes: list[Node]) -> bool:
    """Can a change of the type with these image nodes carry `m`? (A field-level kind needs a
    field that fits; the other levels need none.)"""
    return m.level != "field" or bool(candidates(m, nodes))


def breaking(m: Malformation, rng: Random, change: dict[str, Any], nodes: list[Node], types: Collection[str]) -> Broken:
    """Break a valid change (in place) as `m` says; `nodes` are the image nodes of its type."""
    fields = candidates(m, nodes) if m.fits else []
    f = rng.choice(fields) if fields else None
    if m.level == "field":
        assert f is not None, f"{m.name} fits no attribute"
        put(_image(change), f.path, m.apply(rng, f))
        return Broken(dumps(rng, change), change, f.path)
    if m.level == "change":
        m.apply(rng, change, types)
        return Broken(dumps(rng, change), change)
    if m.level == "text":
        return Broken(m.apply(rng, change, f), None)
    payload = dumps(rng, change)
    if m.name == "missing-sequence-number":
        return Broken(payload, change, sequence_number=False)
    return Broken(payload, change, data=m.apply(rng, payload))


def put(image: dict[str, Any], path: str, av: Any) -> None:
    """Set (or, for ABSENT, remove) the attribute at `path`, creating the maps above it."""
    *parents, name = path.split(".")
    for part in parents:
        holder = image.get(part)
        if not (isinstance(holder, dict) and isinstance(holder.get("M"), dict)):
            holder = image[part] = {"M": {}}
        image = holder["M"]
    if av is ABSENT:
        image.pop(name, None)
    else:
        image[name] = av
