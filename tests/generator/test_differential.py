"""Differential test: every generated decoder against boto3's TypeDeserializer, on random valid
images (hypothesis). Where boto3 succeeds the values are identical; where it raises (more than
38 significant digits, which its context traps as Rounded), ours is still exact."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, DecimalException
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from gen_image_strategies import MAX_BOTO_DIGITS, Node, images, significant_digits, tree
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from dmd.generated import REGISTRY
from dmd.generator.loader import load_model
from dmd.generator.model import RecordType
from dmd.support.records import REDACTED, Change, RecordSpec

MISSING = object()  # boto3 has no value to compare (absent attribute, or it raised)
SETTINGS = {"source_system_id": "sys-7"}
ROOT = Path(__file__).resolve().parents[2]
MODEL = {rt.type_name: rt for rt in load_model(ROOT / "schemas").types}
PROCESSING = datetime(2030, 6, 1, 23, 59, tzinfo=UTC)
BOTO = TypeDeserializer()

changes = st.builds(
    Change,
    operation=st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
    ttl_expired=st.booleans(),
    sequence_number=st.integers(0, 10**30).map(str),
    change_time=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    event_id=st.uuids().map(str),
)


def numbers_in(av: Any) -> list[str]:
    """Every `N` text inside an AttributeValue."""
    if not isinstance(av, dict):
        return []
    out = []
    for tag, payload in av.items():
        if tag == "N":
            out.append(payload)
        elif tag == "M":
            out += [n for v in payload.values() for n in numbers_in(v)]
        elif tag == "L":
            out += [n for v in payload for n in numbers_in(v)]
    return out


def boto(av: Any) -> Any:
    """boto3's value of one attribute, or MISSING where it raises; it raises only on numbers
    beyond its 38-digit context (decimal.Rounded), never on anything else we generate."""
    try:
        return BOTO.deserialize(av)
    except DecimalException:
        assert any(significant_digits(n) > MAX_BOTO_DIGITS for n in numbers_in(av)), av
        return MISSING


def same(node: Node, ours: Any, intended: Any, theirs: Any, removed: bool) -> None:
    """Ours equals the intended value exactly, and boto3's value wherever it has one."""
    info, path = node.info, node.info.path
    if info.kind == "record":
        if intended is None:
            assert ours is None, path
            assert theirs in (MISSING, None), path
            return
        for child in node.children:
            if child.has_image_fields:
                sub = theirs.get(child.name, MISSING) if isinstance(theirs, dict) else MISSING
                same(child, getattr(ours, child.name), intended[child.name], sub, removed)
        return
    if info.pii and removed and intended is not None:  # a REMOVE archives no personal data
        assert ours == REDACTED, path
        return
    assert_exact(info.kind, info, ours, intended, path)
    if theirs is MISSING:
        return
    if theirs is None:
        assert ours is None, path
    elif info.kind == "array" and info.wire == "SS":
        assert isinstance(theirs, set) and isinstance(ours, list), path
        assert len(ours) == len(theirs) and set(ours) == theirs, path
    elif info.kind == "array":
        assert len(ours) == len(theirs), path
        for mine, other in zip(ours, theirs, strict=True):
            assert_like_boto(info.item_kind, mine, other, path)
    else:
        assert_like_boto(info.kind, ours, theirs, path)


def assert_exact(kind: str, info: Any, ours: Any, intended: Any, path: str) -> None:
    if intended is None:
        assert ours is None, path
        return
    if kind == "array":
        assert type(ours) is list and len(ours) == len(intended), path
        for mine, value in zip(ours, intended, strict=True):
            assert_exact(info.item_kind, info, mine, value, path)
        return
    assert ours == intended, f"{path}: {ours!r} != {intended!r}"
    if kind in ("int", "long"):
        assert type(ours) is int, f"{path}: {type(ours).__name__}, not int"
    elif kind == "decimal":
        assert type(ours) is Decimal and ours.as_tuple().exponent == -info.scale, f"{path}: {ours!r} not at scale"
    elif kind.startswith("timestamp"):
        assert type(ours) is datetime and ours.utcoffset() == timedelta(0), f"{path}: {ours!r} is not UTC"
    elif kind == "date":
        assert type(ours) is date, path


def assert_like_boto(kind: str, ours: Any, theirs: Any, path: str) -> None:
    if kind.startswith("timestamp"):
        assert ours == datetime.fromisoformat(theirs), f"{path}: {ours!r} != {theirs!r}"
    elif kind == "date":
        assert ours == date.fromisoformat(theirs), path
    else:  # numbers compare numerically (int == Decimal), strings and bools exactly
        assert ours == theirs, f"{path}: {ours!r} != {theirs!r}"


def expected_partition(rt: RecordType, intended: dict[str, Any]) -> date:
    """The first declared partition path present in the image, as a UTC date; else processing time."""
    for path in rt.partition_paths:
        value: Any = intended
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            return value.date() if isinstance(value, datetime) else value
    assert rt.partition_fallback
    return PROCESSING.date()


def check(
    spec: RecordSpec, image: dict[str, Any], intended: dict[str, Any], change: Change, rt: RecordType | None = None
) -> None:
    """Decode with the generated decoder; compare with the intended values and with boto3."""
    type_name = spec.type_name
    rec = spec.decode(image, change, SETTINGS)
    rt = rt or MODEL[type_name]
    assert spec.partition_date(rec, PROCESSING) == expected_partition(rt, intended)
    removed = change.operation == "REMOVE"
    for node in tree(spec.fields):
        if node.has_image_fields:
            theirs = boto(image[node.name]) if node.name in image else MISSING
            same(node, getattr(rec, node.name), intended[node.name], theirs, removed)
    # what the pipeline adds
    assert rec.isDeleted is removed
    # date.deleted is a millisecond field: the change time cut to what Avro/Parquet store
    ms = change.change_time.replace(microsecond=change.change_time.microsecond // 1000 * 1000)
    assert rec.date.deleted == (ms if removed else None)
    assert rec.reference == f"{type_name}:{intended['id']}"
    assert (rec.cdc.operation, rec.cdc.ttlExpired, rec.cdc.sequenceNumber, rec.cdc.changeTime, rec.cdc.eventId) == (
        change.operation,
        change.ttl_expired,
        change.sequence_number,
        change.change_time,
        change.event_id,
    )


def differential(spec: RecordSpec, max_examples: int = 200, rt: RecordType | None = None):
    """A hypothesis test of one record type's decoder (also run on the extensibility test's type,
    whose model `rt` is not among the committed schemas)."""

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=images(spec.type_name, spec.fields), change=changes)
    def run(data, change):
        check(spec, *data, change, rt)

    return run


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_decoder_agrees_with_boto3(type_name):
    differential(REGISTRY[type_name])()


def test_demand_system_comes_from_settings():
    rec = REGISTRY["demand"].decode(DEMAND, INSERT, SETTINGS)
    assert rec.system == "sys-7"


INSERT = Change("INSERT", False, "49", datetime(2024, 1, 15, 18, 31, tzinfo=UTC), "ev-1")
DEMAND = {
    "id": {"S": "d-1"},
    "type": {"S": "demand"},
    "eventId": {"S": "vvG1IZ4JkV7kAf"},
    "fanId": {"S": "F1"},
    "marketId": {"N": "1E+2"},
    "quantity": {"N": "2"},
    "priceLevels": {"L": [{"S": "PL1"}]},
    "status": {"S": "requested"},
    "date": {"M": {"requested": {"S": "2024-01-15T18:30:00.000Z"}}},
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1E+2", 100),
        ("100.00", 100),
        ("007", 7),
        ("-0", 0),
        ("0E-500", 0),  # boto3 raises Clamped
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("92233720368547758.07E+2", 2**63 - 1),
        ("5." + "0" * 38, 5),  # 39 significant digits: boto3 raises Rounded
    ],
)
def test_long_spellings_decode_exactly(text, value):
    rec = REGISTRY["demand"].decode({**DEMAND, "marketId": {"N": text}}, INSERT, SETTINGS)
    assert rec.marketId == value and type(rec.marketId) is int


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12.5", "12.50"),
        ("1E+2", "100.00"),
        ("0.1E1", "1.00"),
        ("-0", "0.00"),
        ("9999999999.99", "9999999999.99"),
        ("12.5" + "0" * 36, "12.50"),  # 39 significant digits: boto3 raises Rounded
    ],
)
def test_money_spellings_decode_exactly_at_scale_2(text, value):
    image = {
        "id": {"S": "s"},
        "type": {"S": "sale"},
        "eventId": {"S": "e"},
        "saleType": {"S": "general"},
        "saleStartDateTime": {"S": "2024-01-15T18:30:00Z"},
        "priceRange": {"M": {"min": {"N": text}}},
    }
    rec = REGISTRY["sale"].decode(image, INSERT, SETTINGS)
    assert str(rec.priceRange.min) == value


# --- the strategies reach the cases the differential test is for ---------------------------------

FIND = settings(max_examples=500, database=None, phases=[Phase.generate], derandomize=True)  # no flakes


def boto_fails(data: tuple[dict[str, Any], dict[str, Any]]) -> bool:
    return any(boto(av) is MISSING for av in data[0].values())


@pytest.mark.parametrize(
    ("type_name", "description", "predicate"),
    [
        ("demand", "a long in exponent form", lambda d: "E" in d[0]["marketId"]["N"].upper()),
        ("demand", "a long with leading zeros", lambda d: re.match(r"-?0\d", d[0]["marketId"]["N"]) is not None),
        ("demand", "minus zero", lambda d: d[0]["marketId"]["N"].startswith("-0") and d[1]["marketId"] == 0),
        ("demand", "a long beyond 2**53", lambda d: abs(d[1]["marketId"]) > 2**53),
        ("demand", "39 significant digits, which boto3 refuses", boto_fails),
        ("demand", "an absent optional attribute", lambda d: "email" not in d[0]),
        ("demand", "a NULL optional attribute", lambda d: d[0].get("email") == {"NULL": True}),
        ("demand", "a timestamp with an offset", lambda d: d[0]["date"]["M"]["requested"]["S"].endswith(":30")),
        (
            "sale",
            "money with trailing zeros",
            lambda d: (
                re.search(r"\.\d*00$", (d[0].get("priceRange") or {}).get("M", {}).get("min", {}).get("N", ""))
                is not None
            ),
        ),
        ("sale", "money refused by boto3", boto_fails),
        ("event", "a string set", lambda d: len(d[0].get("attractionIds", {}).get("SS", [])) > 1),
        (
            "event",
            "a nested map two levels deep",
            lambda d: "dateTime" in d[0].get("eventDate", {}).get("M", {}).get("start", {}).get("M", {}),
        ),
    ],
)
def test_strategies_reach(type_name, description, predicate):
    assert find(images(type_name, REGISTRY[type_name].fields), predicate, settings=FIND)
