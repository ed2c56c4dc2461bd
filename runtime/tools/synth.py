"""Values of item images, one function per field kind, from the record specs.

This is the one test-data generator: `dmd sample` (and through it the benchmark) builds its
stream from these values, the property tests draw images from them, and `malform` breaks them.
A new schema gets values with no code change; a new field kind is one entry in `KINDS`.

Randomness is a `random.Random`. Property tests pass hypothesis' `st.randoms(use_true_random=False)`,
whose every call is a recorded draw, so the same code shrinks and replays under hypothesis.

Two styles share the table:
- realistic (`dmd sample`): field names shape values (an `email` looks like one, a `demandId`
  names a demand of the sample, a `...start...` instant lies ahead), numbers in plausible ranges;
- wild (tests): any text, whole ranges and their bounds, every spelling of a number or instant
  the decoder must accept, NULL for an absent optional attribute; each value comes with the
  exact value a correct decoder returns (`Node.intended`).
"""

from __future__ import annotations

import string
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from random import Random
from typing import Any

from dmd.support.records import FieldInfo

ABSENT = object()  # the attribute is not in the image
MAX_BOTO_DIGITS = 38  # boto3's DYNAMODB_CONTEXT precision; more significant digits raise Rounded
INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
TAG = {"int": "N", "long": "N", "decimal": "N", "boolean": "BOOL"}  # the rest travel as S


# --- the shape of an image -------------------------------------------------------------------------


@dataclass
class Node:
    """A field with its nested fields (every field of the spec, the pipeline's too)."""

    info: FieldInfo
    children: list[Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.info.path.rpartition(".")[2]

    @property
    def record(self) -> bool:
        return self.info.kind == "record"

    @property
    def has_image_fields(self) -> bool:
        if self.record:
            return any(c.has_image_fields for c in self.children)
        return self.info.origin == "image"

    @property
    def wire_required(self) -> bool:
        if self.info.optional:
            return False
        if self.record:
            return any(c.wire_required for c in self.children)
        return self.info.origin == "image"

    @property
    def image_children(self) -> list[Node]:
        return [c for c in self.children if c.has_image_fields]


def tree(fields: tuple[FieldInfo, ...]) -> list[Node]:
    """The top-level fields, each with its nested fields (specs list fields parents first)."""
    nodes: dict[str, Node] = {}
    roots: list[Node] = []
    for info in fields:
        node = nodes[info.path] = Node(info)
        parent = info.path.rpartition(".")[0]
        (nodes[parent].children if parent else roots).append(node)
    return roots


def image_nodes(fields: tuple[FieldInfo, ...]) -> list[Node]:
    """Every node an item image can hold, parents before children (not what the pipeline adds)."""
    out: list[Node] = []

    def walk(nodes: list[Node]) -> None:
        for n in nodes:
            if n.has_image_fields:
                out.append(n)
                walk(n.children)

    walk(tree(fields))
    return out


def absent_value(node: Node) -> Any:
    """What an absent attribute decodes to: None, or for a record every record type carries
    (e.g. `date`, which the pipeline completes), that record with every image field None."""
    if node.record and not node.info.optional:
        return {c.name: absent_value(c) for c in node.image_children}
    return None


# --- values per kind -------------------------------------------------------------------------------


class Values:
    """Values for leaves of an image: `leaf(info, when) -> (AttributeValue, decoded value)`.

    `refs(type_name)` names a known item of that type for a reference (`demandId`), or None.
    """

    def __init__(self, rng: Random, *, wild: bool, refs: Callable[[str], str | None] | None = None) -> None:
        self.rng, self.wild = rng, wild
        self.refs = refs or (lambda _type: None)

    def leaf(self, f: FieldInfo, when: datetime, type_name: str = "") -> tuple[dict[str, Any], Any]:
        make = KINDS.get(f.kind)
        if make is None:
            raise ValueError(f"{type_name}.{f.path}: no value generator for kind {f.kind!r}")
        return make(self, f, when, type_name)

    def new_id(self, type_name: str) -> str:
        """An id in the style of the thing it names (Ticketmaster-like ids, else a uuid)."""
        rng = self.rng
        style = _ID_STYLES.get(type_name)
        if style is None:
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        prefixes, lo, hi = style
        prefix = rng.choice(prefixes)
        return prefix + "".join(rng.choice(_ALNUM) for _ in range(max(rng.randint(lo, hi) - len(prefix), 4)))

    def ref_id(self, type_name: str) -> str:
        return self.refs(type_name) or self.new_id(type_name)

    def text(self, lo: int = 0, hi: int = 12) -> str:
        """Any text: letters, JSON's special characters, and now and then any code point."""
        rng = self.rng
        out = []
        for _ in range(rng.randint(lo, hi)):
            if rng.random() < 0.1:
                c = rng.randrange(0x110000 - 0x800)
                out.append(chr(c + 0x800 if c >= 0xD800 else c))  # never a lone surrogate
            else:
                out.append(rng.choice(_TEXT))
        return "".join(out)


def _name(f: FieldInfo) -> str:
    return f.path.rpartition(".")[2]


def _string(v: Values, f: FieldInfo, when: datetime, type_name: str) -> tuple[dict[str, Any], Any]:
    s = v.text() if v.wild else _realistic_string(v, _name(f), type_name)
    return {"S": s}, s


def _realistic_string(v: Values, name: str, type_name: str) -> str:
    rng, low = v.rng, name.lower()
    if "email" in low:
        return f"{rng.choice(_FIRST)}.{rng.choice(_LAST)}{rng.randrange(100)}@{rng.choice(_MAIL_DOMAINS)}"
    if "phone" in low:
        prefix, digits = rng.choice(_PHONES)
        return prefix + str(rng.randint(2, 9)) + "".join(rng.choice(string.digits) for _ in range(digits - 1))
    if "currency" in low:
        return rng.choice(_CURRENCIES)
    if "timezone" in low or low == "tz":
        return rng.choice(_TIMEZONES)
    if low.endswith("name"):
        if rng.random() < 0.3:
            return f"{rng.choice(_CITIES)} {rng.choice(_TEAMS)} vs {rng.choice(_CITIES)} {rng.choice(_TEAMS)}"
        tour = rng.choice(_TOURS)
        return f"The {rng.choice(_BAND_A)} {rng.choice(_BAND_B)}" + (f" - {tour}" if tour else "")
    if "message" in low or "body" in low:
        code = "".join(rng.choice(_ALNUM) for _ in range(8))
        return rng.choice(_MESSAGES).format(first=rng.choice(_FIRST).title(), code=code)
    if low == "id":
        return v.new_id(type_name)
    if name.endswith("Id") and len(name) > 2:
        return v.ref_id(name[:-2])
    if name.endswith("Ids") and len(name) > 3:  # an item of a list or set of references
        return v.ref_id(name[:-3])
    if "price" in low:
        return rng.choice(_PRICE_LEVELS)
    singular = name[:-1] if name.endswith("s") else name
    return f"{singular}-{rng.getrandbits(32):08x}"


def _enum(v: Values, f: FieldInfo, when: datetime, type_name: str) -> tuple[dict[str, Any], Any]:
    s = v.rng.choice(f.symbols)
    return {"S": s}, s


def _boolean(v: Values, f: FieldInfo, when: datetime, type_name: str) -> tuple[dict[str, Any], Any]:
    b = v.rng.random() < 0.5
    return {"BOOL": b}, b


def _integer(v: Values, f: FieldInfo, when: datetime, type_name: str) -> tuple[dict[str, Any], Any]:
    rng = v.rng
    default_lo, default_hi = INT_RANGES[f.kind]
    lo = f.minimum if f.minimum is not None else default_lo
    hi = f.maximum if f.maximum is not None else default_hi
    if v.wild:
        n = rng.choice((lo, hi, max(lo, min(hi, 0)), rng.randint(lo, hi)))
        return {"N": spell(rng, Decimal(n))}, n
    a = max(lo, min(hi, 1))
    b = min(hi, a + 9_999)
    if a <= 100 <= b and rng.random() < 0.03:
        return {"N": "1E+2"}, 100  # DynamoDB keeps numbers as written: exponents are legal
    n = rng.randint(a, b)
    return {"N": str(n)}, n


def _decimal(v: Values, f: FieldInfo, when: datetime, type_name: str) -> tuple[dict[str, Any], Any]:
    rng, scale = v.rng, f.scale
    if v.wild:
        top = 10**f.precision - 1
        d = Decimal(rng.choice((top, -top, 0, rng.randint(-top, top)))).scaleb(-scale)
        return {"N": spell(rng, d)}, d
    int_digits = max(f.precision - scale, 1)
    if int_digits >= 3 and rng.random() < 0.03:
        return {"N": "1E+2"}, Decimal(100).quantize(Decimal(1).scaleb(-scale))
    low = _name(f).lower()
    lo, hi = (10, 80) if low.startswith("min") else (90, 450) if low.startswith("max") else (1, 500)
    whole = rng.randint(lo, hi)
    whole = min(whole, 10**int_digits - 1)
    places = min(scale, 2)
    cents = rng.choice((0, 0, 50, 99, 25, 75, rng.randrange(10**places))) if places else 0
    text = f"{whole}.{cents:0{places}d}" if places else str(whole)
    if places and rng.random() < 0.1:  # fewer places than the scale: still exact
        text = text.rstrip("0").rstrip(".")
    return {"N": text}, Decimal(text).quantize(Decimal(1).scaleb(-scale))


def _timestamp(v: Values, f: FieldInfo, when: datetime, type_name: str) -> tuple[dict[str, Any], Any]:
    micros = f.kind == "timestamp-micros"
    if v.wild:
        span_ms = (_LAST_MOMENT - _FIRST_MOMENT) // timedelta(milliseconds=1)
        moment = _FIRST_MOMENT + timedelta(milliseconds=v.rng.randrange(span_ms))
        return {"S": timestamp_text(v.rng, moment)}, moment
    t = instant(v.rng, f.path, when)
    t = t if micros else t.replace(microsecond=t.microsecond // 1000 * 1000)
    return {"S": ts(t, micros)}, t


def _date(v: Values, f: FieldInfo, when: datetime, type_name: str) -> tuple[dict[str, Any], Any]:
    if v.wild:
        d = date.fromordinal(v.rng.randint(date(1000, 1, 1).toordinal(), date(9999, 12, 31).toordinal()))
    else:
        d = (when + timedelta(days=v.rng.randint(7, 90))).date()
    return {"S": d.isoformat()}, d


def _array(v: Values, f: FieldInfo, when: datetime, type_name: str) -> tuple[dict[str, Any], Any]:
    rng = v.rng
    item = replace(f, kind=f.item_kind, minimum=None, maximum=None)  # list items: the kind's whole range
    if f.wire == "SS":  # a string set: non-empty, unique
        n = rng.randint(1, 5 if v.wild else 4)
        members: list[str] = []
        for _ in range(4 * n):
            s = v.text() if v.wild else _realistic_string(v, _name(f), type_name)
            if s not in members:
                members.append(s)
            if len(members) == n:
                break
        members = members or [f"{_name(f)}-0"]
        return {"SS": members}, members
    if v.wild:
        n = rng.randint(0, 5)
    elif rng.random() < 0.25:
        n = 0
    else:
        n = rng.randint(1, 4)
    pairs = [v.leaf(item, when, type_name) for _ in range(n)]
    if not v.wild and f.item_kind == "string" and "price" in _name(f).lower():  # price levels: distinct
        pairs = list({av["S"]: (av, x) for av, x in pairs}.values())
    return {"L": [av for av, _ in pairs]}, [x for _, x in pairs]


KINDS: Mapping[str, Callable[[Values, FieldInfo, datetime, str], tuple[dict[str, Any], Any]]] = {
    "string": _string,
    "enum": _enum,
    "boolean": _boolean,
    "int": _integer,
    "long": _integer,
    "decimal": _decimal,
    "timestamp-millis": _timestamp,
    "timestamp-micros": _timestamp,
    "date": _date,
    "array": _array,
}


# --- wild images: every valid form, with the values they must decode to ------------------------------


def wild_image(
    type_name: str, fields: tuple[FieldInfo, ...], rng: Random, *, all_present: bool = False, extra: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid image of `type_name` and its intended values. Optional attributes may be absent
    or NULL (never with `all_present`); with `extra`, attributes the schema does not know (a
    DynamoDB item can hold more), which the decoder ignores."""
    values = Values(rng, wild=True)
    image, intended = _wild_map(values, [n for n in tree(fields) if n.has_image_fields], all_present)
    image["type"], intended["type"] = {"S": type_name}, type_name
    if extra:
        image["zzUnknown"] = {"M": {"ttl": {"N": "1700000000"}, "tags": {"SS": ["x"]}}}
    return image, intended


def _wild_map(values: Values, nodes: list[Node], all_present: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    image: dict[str, Any] = {}
    intended: dict[str, Any] = {}
    for node in nodes:
        if not node.wire_required and not all_present and values.rng.random() < 0.4:
            if values.rng.random() < 0.5:
                image[node.name] = {"NULL": True}
            intended[node.name] = absent_value(node)
        elif node.record:
            inner, intended[node.name] = _wild_map(values, node.image_children, all_present)
            image[node.name] = {"M": inner}
        else:
            image[node.name], intended[node.name] = values.leaf(node.info, _FIRST_MOMENT)
    return image, intended


# --- spellings ---------------------------------------------------------------------------------------


def plain(d: Decimal) -> str:
    return format(d, "f")


def spell(rng: Random, d: Decimal) -> str:
    """A DynamoDB `N` string whose exact value is d: plain, leading zeros, trailing zeros,
    exponent forms (`1E+2`), `-0`, and 39-significant-digit forms that boto3 cannot take."""
    hows = ("plain", "leading", "trailing", "exponent", "normalized", "39-digits", "minus-zero")
    how = "minus-zero" if d == 0 and rng.random() < 0.3 else rng.choice(hows)  # a zero's own spellings, often
    text = plain(d)
    sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
    if how == "leading":
        return sign + "0" * rng.randint(1, 3) + digits
    if how == "trailing":
        return text + ("" if "." in text else ".") + "0" * rng.randint(1, 4)
    if how == "exponent":
        shift = rng.randint(-6, 6)
        exp = f"{shift:+d}" if shift < 0 or rng.random() < 0.5 else str(shift)
        return plain(d.scaleb(-shift)) + rng.choice("Ee") + exp
    if how == "normalized":
        return str(d.normalize())  # 100 -> "1E+2", 12.50 -> "12.5"
    if how == "39-digits":
        significant = len(d.as_tuple().digits)
        if significant >= MAX_BOTO_DIGITS + 1:
            return text
        return text + ("" if "." in text else ".") + "0" * (MAX_BOTO_DIGITS + 1 - significant)
    if how == "minus-zero" and d == 0:
        return rng.choice(("-0", "-0.00", "-0E+3", "0E-5"))
    return text


def timestamp_text(rng: Random, moment: datetime) -> str:
    """An ISO-8601 spelling of a millisecond UTC moment: Z or an offset, 0-9 fraction digits."""
    offset = rng.choice((None, 0, 330, -300, 840, -720, 45))
    local = moment if offset is None else moment + timedelta(minutes=offset)
    if offset is None:
        zone = "Z"
    else:
        hours, minutes = divmod(abs(offset), 60)
        zone = f"{'-' if offset < 0 else '+'}{hours:02d}:{minutes:02d}"
    ms = f"{moment.microsecond // 1000:03d}"
    width = rng.choice((0, 3, 6, 9))  # 0: the shortest spelling, e.g. ".5" or none
    digits = ms.rstrip("0") if width == 0 else (ms + "0" * 6)[:width]
    return f"{local.year:04d}-{local:%m-%dT%H:%M:%S}" + ("." + digits if digits else "") + zone


def ts(t: datetime, micros: bool = False) -> str:
    """The canonical wire form of an instant: UTC, `Z`, 3 or 6 fraction digits."""
    frac = f"{t.microsecond:06d}" if micros else f"{t.microsecond // 1000:03d}"
    return f"{t:%Y-%m-%dT%H:%M:%S}.{frac}Z"


def is_recent(path: str) -> bool:
    """A timestamp set when the item was written (requested, created, sent, firstSeen), not a
    future moment of the show or sale (`...start...`, `...end...`)."""
    low = path.lower()
    return "start" not in low and "end" not in low


def instant(rng: Random, path: str, when: datetime) -> datetime:
    """A realistic instant for a timestamp field of a change written at `when`."""
    low = path.lower()
    name = low.rpartition(".")[2]
    if "updated" in name:
        return when
    if "first" in name:  # first seen elsewhere (a ticketing catalogue) up to weeks before it was written here
        return when - timedelta(milliseconds=rng.randrange(60 * 86_400_000))
    if not is_recent(path):  # a future moment: a show, a sale window
        days = rng.randint(7, 90) if "start" in low else rng.randint(91, 150)
        day = (when + timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
        return day + timedelta(hours=rng.choice((0, 1, 2, 14, 15, 17, 18, 19, 23)), minutes=rng.choice((0, 30)))
    return when - timedelta(milliseconds=rng.randrange(120_000))  # just before the write


_FIRST_MOMENT = datetime(1900, 1, 2, tzinfo=UTC)
_LAST_MOMENT = datetime(2199, 12, 30, tzinfo=UTC)

# --- realism -------------------------------------------------------------------------------------------

_TEXT = string.ascii_letters + string.digits + ' -_.:/@+éü中文😀"\\\n\t\x00'
_ALNUM = string.ascii_letters + string.digits
# Ticketmaster-like ids of the things the domain refers to; anything else gets a uuid.
_ID_STYLES: Mapping[str, tuple[tuple[str, ...], int, int]] = {
    "event": (("vvG1", "G5v", "Z7r9jZ1A", "vv1A", "1AvZ"), 14, 18),
    "venue": (("KovZ", "Za5ju3rKuq", "ZFr9jZ"), 12, 13),
    "attraction": (("K8vZ91", "K8vZ917"), 13, 13),
}
_FIRST = ("alex", "sam", "jordan", "taylor", "morgan", "casey", "riley", "jamie", "maria", "li", "omar", "sofia")
_LAST = ("smith", "garcia", "chen", "patel", "nguyen", "kim", "martin", "lopez", "brown", "silva", "khan", "okafor")
_MAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_PHONES = (("+1", 10), ("+44", 10), ("+61", 9), ("+52", 10), ("+353", 9))
_CURRENCIES = ("USD", "USD", "USD", "CAD", "GBP", "EUR", "AUD", "MXN")
_TIMEZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Mexico_City",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Madrid",
    "Australia/Sydney",
)
_BAND_A = ("Midnight", "Electric", "Velvet", "Golden", "Crimson", "Silver", "Neon", "Wild", "Paper", "Northern")
_BAND_B = ("Owls", "Horizon", "Tigers", "Echoes", "Rivers", "Comets", "Saints", "Lanterns", "Parade", "Lights")
_TOURS = ("World Tour", "Live", "in Concert", "Farewell Tour", "Summer Tour 2024", "Unplugged", "")
_CITIES = ("Chicago", "Toronto", "London", "Sydney", "Austin", "Denver", "Boston", "Seattle", "Dublin", "Madrid")
_TEAMS = ("Bears", "Lions", "Hawks", "Wolves", "Kings", "Royals", "Comets", "Storm")
_MESSAGES = (
    "Good news {first}! Tickets you asked for are available: https://tickets.example.com/e/{code}",
    "Reminder: the presale you signed up for starts soon. Your code is {code}.",
    "Sorry {first}, we could not fulfil your request this time.",
    "Your tickets are confirmed. Order {code}.",
)
_PRICE_LEVELS = ("PL1", "PL2", "PL3", "PL4", "PL5", "PL6", "GA", "VIP", "FLOOR", "BALCONY")
