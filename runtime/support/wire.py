"""Decoding helpers for DynamoDB AttributeValue JSON, called by the generated decoders.

Generated code inlines the happy path of common types and calls these for everything else:
absent or NULL values, wrong tags, numbers that are not plain digits, and all error messages.
Each helper appends `path: reason` to `problems` and returns None when the value is bad, so
one pass reports every bad field of an image.

Numbers are exact: integers via int(), decimals via Decimal() (no context rounding, unlike
boto3's TypeDeserializer, which raises decimal.Rounded/Inexact on valid 39-digit values).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\Z")
# re.ASCII: \d would otherwise accept any Unicode digit ("２０２４-…").
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})\Z", re.ASCII)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)
_QUANTUM = tuple(Decimal(1).scaleb(-s) for s in range(39))
_TAGS = frozenset({"S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"})
# Long strings are cut in messages: they name the field and the reason, they don't echo data.
_SHOW = 40


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:  # JSON nested deeper than Python's recursion limit
        return f"a deeply nested {type(value).__name__}"
    return text if len(text) <= _SHOW else text[:_SHOW] + "…"


def _unwrap(av: Any, tag: str, path: str, problems: list[str], required: bool) -> Any:
    """The payload of `{tag: payload}`, or None (absent/NULL, or a problem appended)."""
    if av is None:
        if required:
            problems.append(f"{path}: required attribute is missing")
        return None
    if type(av) is not dict or len(av) != 1:
        problems.append(f"{path}: not a DynamoDB AttributeValue (expected {{{tag!r}: ...}}, got {_show(av)})")
        return None
    ((got, payload),) = av.items()
    if got == "NULL" and payload is True:
        if required:
            problems.append(f"{path}: required attribute is NULL")
        return None
    if got != tag:
        what = f"type tag {got!r}" if got in _TAGS else f"unknown type tag {_show(got)}"
        problems.append(f"{path}: expected type tag {tag!r}, got {what}")
        return None
    return payload


def string(av: Any, path: str, problems: list[str], required: bool) -> str | None:
    v = _unwrap(av, "S", path, problems, required)
    if v is None or type(v) is str:
        return v
    problems.append(f"{path}: 'S' value must be a JSON string, got {_show(v)}")
    return None


def enum(av: Any, path: str, problems: list[str], required: bool, symbols: frozenset[str]) -> str | None:
    v = string(av, path, problems, required)
    if v is None or v in symbols:
        return v
    problems.append(f"{path}: {_show(v)} is not one of {', '.join(sorted(symbols))}")
    return None


def boolean(av: Any, path: str, problems: list[str], required: bool) -> bool | None:
    v = _unwrap(av, "BOOL", path, problems, required)
    if v is None or type(v) is bool:
        return v
    problems.append(f"{path}: 'BOOL' value must be true or false, got {_show(v)}")
    return None


def _number(av: Any, path: str, problems: list[str], required: bool) -> Decimal | None:
    v = _unwrap(av, "N", path, problems, required)
    if v is None:
        return None
    if type(v) is not str or not v.isascii() or not _NUMBER.match(v):
        problems.append(f"{path}: 'N' value must be a number string, got {_show(v)}")
        return None
    return Decimal(v)  # exact: the constructor never rounds


def integer(av: Any, path: str, problems: list[str], required: bool, lo: int, hi: int) -> int | None:
    d = _number(av, path, problems, required)
    if d is None:
        return None
    if d != d.to_integral_value():
        problems.append(f"{path}: {_show(av['N'])} is not an integer")
        return None
    # Refuse to materialise 1E+999999 before the range check; a tiny exponent is harmless
    # (an integral value with adjusted() < 0 is zero, e.g. "0E-500").
    n = int(d) if d.adjusted() < 400 else None
    if n is None or not lo <= n <= hi:
        problems.append(f"{path}: {_show(av['N'])} is out of range [{lo}, {hi}]")
        return None
    return n


def _decimal_pattern(precision: int, scale: int) -> re.Pattern[str] | None:
    """Plain decimal strings that surely fit decimal(precision, scale); None when the default
    context (28 digits) could not quantize them exactly."""
    if precision > 28:
        return None
    fraction = rf"(?:\.\d{{1,{scale}}})?" if scale else ""
    whole = rf"\d{{1,{precision - scale}}}" if precision > scale else "0"
    return re.compile(rf"-?{whole}{fraction}\Z", re.ASCII)


_DECIMAL_FAST: dict[tuple[int, int], re.Pattern[str] | None] = {}


def decimal_text(v: str, precision: int, scale: int) -> Decimal | None:
    """Fast path: a plain number string within the type's digits, quantized exactly; None for
    anything else (the exact `decimal` decides)."""
    key = (precision, scale)
    pattern = _DECIMAL_FAST[key] if key in _DECIMAL_FAST else _DECIMAL_FAST.setdefault(key, _decimal_pattern(*key))
    if pattern is None or not pattern.match(v):
        return None
    q = Decimal(v).quantize(_QUANTUM[scale] if scale < len(_QUANTUM) else Decimal(1).scaleb(-scale))
    return q if q else q.copy_abs()  # "-0" is zero: no negative zero in the archive


def decimal(av: Any, path: str, problems: list[str], required: bool, precision: int, scale: int) -> Decimal | None:
    if type(av) is dict and len(av) == 1 and type(v := av.get("N")) is str:
        q = decimal_text(v, precision, scale)
        if q is not None:
            return q
    d = _number(av, path, problems, required)
    if d is None:
        return None
    with localcontext(prec=precision + 2) as ctx:
        try:
            q = d.quantize(Decimal(1).scaleb(-scale), context=ctx)
        except InvalidOperation:
            q = None
    if q is None or q != d:
        reason = f"has more than {scale} decimal places" if q is not None else "is out of range"
        problems.append(f"{path}: {_show(av['N'])} {reason} for decimal({precision},{scale})")
        return None
    if len(q.as_tuple().digits) > precision:
        problems.append(f"{path}: {_show(av['N'])} is out of range for decimal({precision},{scale})")
        return None
    return q if q else q.copy_abs()  # "-0" is zero: no negative zero in the archive


def timestamp_text(v: str) -> datetime | None:
    """Fast path: what DynamoDB items almost always hold, `2024-01-15T18:30:00.000Z` (valid for
    3 and 6 fraction digits); None for anything else (the exact `timestamp` decides).

    The separators are checked by position (a regex costs twice the whole parse);
    fromisoformat then accepts only ASCII digits between them, so together this is exactly
    the shape `YYYY-MM-DDTHH:MM:SS.fffZ` in ASCII digits (a test holds it to that regex).
    """
    if (
        len(v) == 24
        and v[23] == "Z"
        and v[19] == "."
        and v[10] == "T"
        and v[4] == v[7] == "-"
        and v[13] == v[16] == ":"
        and v.isascii()
    ):
        try:
            return datetime.fromisoformat(v)  # "Z" -> datetime.UTC
        except ValueError:
            pass  # e.g. February 30th: the exact path names the problem
    return None


def timestamp(av: Any, path: str, problems: list[str], required: bool, digits: int) -> datetime | None:
    """An ISO-8601 timestamp with a UTC offset, kept exactly at `digits` fraction digits (3 or 6)."""
    if type(av) is dict and len(av) == 1 and type(v := av.get("S")) is str and (t := timestamp_text(v)) is not None:
        return t
    v = string(av, path, problems, required)
    if v is None:
        return None
    m = _TIMESTAMP.match(v)
    if m is None:
        problems.append(f"{path}: {_show(v)} is not an ISO-8601 timestamp with a time zone")
        return None
    fraction = m.group(1) or ""
    if fraction[digits:].strip("0"):
        problems.append(f"{path}: {_show(v)} is more precise than the schema's {digits} fraction digits")
        return None
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        problems.append(f"{path}: {_show(v)} is not a valid calendar timestamp")
        return None
    try:
        return dt if dt.tzinfo is UTC else dt.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        problems.append(f"{path}: {_show(v)} is outside years 1..9999 in UTC")
        return None


def truncate(moment: datetime, digits: int) -> datetime:
    """`moment` cut to `digits` fraction digits, as an Avro/Parquet timestamp of that unit stores it."""
    unit = 10 ** (6 - digits)
    return moment.replace(microsecond=moment.microsecond // unit * unit)


def date_text(v: str) -> date | None:
    """Fast path: a valid `YYYY-MM-DD`; None for anything else (the exact `calendar_date` decides)."""
    if _DATE.match(v):
        try:
            return date.fromisoformat(v)
        except ValueError:
            pass
    return None


def calendar_date(av: Any, path: str, problems: list[str], required: bool) -> date | None:
    if type(av) is dict and len(av) == 1 and type(v := av.get("S")) is str and (d := date_text(v)) is not None:
        return d
    v = string(av, path, problems, required)
    if v is None:
        return None
    if not _DATE.match(v):
        problems.append(f"{path}: {_show(v)} is not a YYYY-MM-DD date")
        return None
    try:
        return date.fromisoformat(v)
    except ValueError:
        problems.append(f"{path}: {_show(v)} is not a valid calendar date")
        return None


def mapping(av: Any, path: str, problems: list[str], required: bool) -> dict[str, Any] | None:
    v = _unwrap(av, "M", path, problems, required)
    if v is None or type(v) is dict:
        return v
    problems.append(f"{path}: 'M' value must be a JSON object, got {_show(v)}")
    return None


Item = Callable[[Any, str, list[str], bool], Any]


def items(av: Any, path: str, problems: list[str], required: bool, tag: str, item: Item) -> list[Any] | None:
    """A list (`L` of AttributeValues) or a string set (`SS` of plain strings)."""
    if type(av) is dict and len(av) == 1 and type(v := av.get(tag)) is list:
        if tag == "SS":  # fast path: distinct JSON strings
            if all(type(s) is str for s in v) and len(set(v)) == len(v):
                return v
        elif item is string:  # fast path: every element a well-formed {"S": "..."}
            try:
                out = [x["S"] for x in v if len(x) == 1]
            except (TypeError, KeyError):
                out = None
            if out is not None and len(out) == len(v) and all(type(s) is str for s in out):
                return out
    v = _unwrap(av, tag, path, problems, required)
    if v is None:
        return None
    if type(v) is not list:
        problems.append(f"{path}: {tag!r} value must be a JSON array, got {_show(v)}")
        return None
    before = len(problems)
    if tag == "SS":  # set members are plain JSON strings, not AttributeValues
        out = v
        for i, s in enumerate(v):
            if type(s) is not str:
                problems.append(f"{path}[{i}]: string set members must be JSON strings, got {_show(s)}")
        if len(problems) == before and len(set(v)) != len(v):
            problems.append(f"{path}: a string set holds a duplicate")
    else:
        out = [item(x, f"{path}[{i}]", problems, True) for i, x in enumerate(v)]
    return out if len(problems) == before else None
