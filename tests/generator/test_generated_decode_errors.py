"""Invalid images raise DecodeError whose problems name the field path and the reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from gen_image_strategies import Node, tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmd.generated import REGISTRY
from dmd.support import wire
from dmd.support.records import Change, DecodeError

CHANGE = Change("MODIFY", False, "49", datetime(2024, 1, 15, 18, 31, tzinfo=UTC), "ev-1")
SETTINGS = {"source_system_id": "sys-7"}

VALID: dict[str, dict[str, Any]] = {
    "demand": {
        "id": {"S": "d-1"},
        "type": {"S": "demand"},
        "eventId": {"S": "vvG1IZ4JkV7kAf"},
        "fanId": {"S": "F1"},
        "marketId": {"N": "42"},
        "quantity": {"N": "2"},
        "priceLevels": {"L": [{"S": "PL1"}]},
        "status": {"S": "requested"},
        "date": {"M": {"requested": {"S": "2024-01-15T18:30:00.000Z"}}},
    },
    "event": {
        "id": {"S": "e-1"},
        "type": {"S": "event"},
        "name": {"S": "A show"},
        "venueId": {"S": "V1"},
        "attractionIds": {"SS": ["a1", "a2"]},
        "eventDate": {"M": {"start": {"M": {"localDate": {"S": "2024-03-01"}}}}},
    },
    "sale": {
        "id": {"S": "s-1"},
        "type": {"S": "sale"},
        "eventId": {"S": "e-1"},
        "saleType": {"S": "presale"},
        "saleStartDateTime": {"S": "2024-01-15T18:30:00Z"},
        "priceRange": {"M": {"min": {"N": "10.5"}, "currency": {"S": "EUR"}}},
    },
}


def set_path(image: dict[str, Any], path: str, av: Any) -> dict[str, Any]:
    """A copy of image with the attribute at dotted `path` replaced (av=None: removed)."""
    head, _, rest = path.partition(".")
    out = dict(image)
    if rest:
        out[head] = {"M": set_path(image[head]["M"], rest, av)}
    elif av is None:
        del out[head]
    else:
        out[head] = av
    return out


def problems(type_name: str, image: dict[str, Any]) -> list[str]:
    with pytest.raises(DecodeError) as err:
        REGISTRY[type_name].decode(image, CHANGE, SETTINGS)
    assert str(err.value) == "; ".join(err.value.problems)
    return err.value.problems


@pytest.mark.parametrize("type_name", sorted(VALID))
def test_the_valid_images_decode(type_name):
    REGISTRY[type_name].decode(VALID[type_name], CHANGE, SETTINGS)


CASES = [
    # (type, path, attribute value or None to remove it, expected problem)
    ("demand", "fanId", None, "fanId: required attribute is missing"),
    ("demand", "date.requested", None, "date.requested: required attribute is missing"),
    ("demand", "date", None, "date: required attribute is missing"),
    ("demand", "fanId", {"NULL": True}, "fanId: required attribute is NULL"),
    ("demand", "fanId", {"N": "1"}, "fanId: expected type tag 'S', got type tag 'N'"),
    ("demand", "fanId", {"s": "F1"}, "fanId: expected type tag 'S', got unknown type tag 's'"),
    ("demand", "fanId", "F1", "fanId: not a DynamoDB AttributeValue (expected {'S': ...}, got 'F1')"),
    (
        "demand",
        "fanId",
        {"S": "F1", "N": "1"},
        "fanId: not a DynamoDB AttributeValue (expected {'S': ...}, got {'S': 'F1', 'N': '1'})",
    ),
    ("demand", "fanId", {"S": 7}, "fanId: 'S' value must be a JSON string, got 7"),
    ("demand", "status", {"S": "pending"}, "status: 'pending' is not one of cancelled, fulfilled, requested"),
    ("demand", "status", {"S": "Requested"}, "status: 'Requested' is not one of cancelled, fulfilled, requested"),
    (
        "demand",
        "date.requested",
        {"S": "2024-02-30T00:00:00Z"},
        "date.requested: '2024-02-30T00:00:00Z' is not a valid calendar timestamp",
    ),
    (
        "demand",
        "date.requested",
        {"S": "2024-01-15T18:30:00.000"},
        "date.requested: '2024-01-15T18:30:00.000' is not an ISO-8601 timestamp with a time zone",
    ),
    (
        "demand",
        "date.requested",
        {"S": "2024-01-15 18:30:00Z"},
        "date.requested: '2024-01-15 18:30:00Z' is not an ISO-8601 timestamp with a time zone",
    ),
    (
        "demand",
        "date.requested",
        {"S": "２０２４-01-15T18:30:00Z"},
        "date.requested: '２０２４-01-15T18:30:00Z' is not an ISO-8601 timestamp with a time zone",
    ),
    (
        "demand",
        "date.requested",
        {"S": "2024-01-15T18:30:00.0001Z"},
        "date.requested: '2024-01-15T18:30:00.0001Z' is more precise than the schema's 3 fraction digits",
    ),
    ("demand", "date.requested", {"N": "1705343400000"}, "date.requested: expected type tag 'S', got type tag 'N'"),
    (
        "demand",
        "date.requested",
        {"S": "0001-01-01T00:00:00+01:00"},
        "date.requested: '0001-01-01T00:00:00+01:00' is outside years 1..9999 in UTC",
    ),
    (
        "demand",
        "date.requested",
        {"S": "9999-12-31T23:59:59.999-00:01"},
        "date.requested: '9999-12-31T23:59:59.999-00:01' is outside years 1..9999 in UTC",
    ),
    ("demand", "marketId", {"N": "1.5"}, "marketId: '1.5' is not an integer"),
    ("demand", "marketId", {"N": "15E-1"}, "marketId: '15E-1' is not an integer"),
    (
        "demand",
        "marketId",
        {"N": "9223372036854775808"},
        "marketId: '9223372036854775808' is out of range [-9223372036854775808, 9223372036854775807]",
    ),
    (
        "demand",
        "marketId",
        {"N": "1E+999999999"},
        "marketId: '1E+999999999' is out of range [-9223372036854775808, 9223372036854775807]",
    ),
    ("demand", "marketId", {"N": "NaN"}, "marketId: 'N' value must be a number string, got 'NaN'"),
    ("demand", "marketId", {"N": "Infinity"}, "marketId: 'N' value must be a number string, got 'Infinity'"),
    ("demand", "marketId", {"N": "+5"}, "marketId: 'N' value must be a number string, got '+5'"),
    ("demand", "marketId", {"N": 42}, "marketId: 'N' value must be a number string, got 42"),
    ("demand", "marketId", {"S": "42"}, "marketId: expected type tag 'N', got type tag 'S'"),
    ("demand", "quantity", {"N": "9"}, "quantity: '9' is out of range [1, 8]"),
    ("demand", "quantity", {"N": "0"}, "quantity: '0' is out of range [1, 8]"),
    ("demand", "quantity", {"N": "-1"}, "quantity: '-1' is out of range [1, 8]"),
    (
        "demand",
        "priceLevels",
        {"L": [{"S": "a"}, {"N": "1"}]},
        "priceLevels[1]: expected type tag 'S', got type tag 'N'",
    ),
    ("demand", "priceLevels", {"L": [{"NULL": True}]}, "priceLevels[0]: required attribute is NULL"),
    ("demand", "priceLevels", {"SS": ["a"]}, "priceLevels: expected type tag 'L', got type tag 'SS'"),
    ("demand", "priceLevels", {"L": "a"}, "priceLevels: 'L' value must be a JSON array, got 'a'"),
    ("demand", "date", {"S": "2024-01-15"}, "date: expected type tag 'M', got type tag 'S'"),
    ("event", "attractionIds", {"SS": ["a", "a"]}, "attractionIds: a string set holds a duplicate"),
    ("event", "attractionIds", {"SS": ["a", 1]}, "attractionIds[1]: string set members must be JSON strings, got 1"),
    ("event", "attractionIds", {"L": [{"S": "a"}]}, "attractionIds: expected type tag 'SS', got type tag 'L'"),
    (
        "event",
        "eventDate.start.localDate",
        {"S": "2024-13-01"},
        "eventDate.start.localDate: '2024-13-01' is not a valid calendar date",
    ),
    (
        "event",
        "eventDate.start.localDate",
        {"S": "2024-03-01T00:00:00Z"},
        "eventDate.start.localDate: '2024-03-01T00:00:00Z' is not a YYYY-MM-DD date",
    ),
    (
        "event",
        "eventDate.start",
        {"M": {"dateTime": {"S": "soon"}}},
        "eventDate.start.dateTime: 'soon' is not an ISO-8601 timestamp with a time zone",
    ),
    (
        "sale",
        "priceRange.min",
        {"N": "1.234"},
        "priceRange.min: '1.234' has more than 2 decimal places for decimal(12,2)",
    ),
    (
        "sale",
        "priceRange.min",
        {"N": "1E-130"},
        "priceRange.min: '1E-130' has more than 2 decimal places for decimal(12,2)",
    ),
    ("sale", "priceRange.min", {"N": "10000000000"}, "priceRange.min: '10000000000' is out of range for decimal(12,2)"),
    ("sale", "priceRange.min", {"N": "1E+400"}, "priceRange.min: '1E+400' is out of range for decimal(12,2)"),
    ("sale", "saleType", {"S": "vip"}, "saleType: 'vip' is not one of general, presale"),
]


@pytest.mark.parametrize(
    ("type_name", "path", "av", "problem"), CASES, ids=[f"{c[0]}.{c[1]}:{c[3].split(': ', 1)[1][:40]}" for c in CASES]
)
def test_invalid_attribute_is_named_with_its_reason(type_name, path, av, problem):
    assert problems(type_name, set_path(VALID[type_name], path, av)) == [problem]


def test_every_bad_field_is_reported_at_once():
    image = dict(VALID["demand"])
    del image["id"]
    image["quantity"] = {"N": "9"}
    image["status"] = {"S": "pending"}
    image["date"] = {"M": {"requested": {"S": "2024-01-15T18:30:00.000"}, "updated": {"S": "2024-02-30T00:00:00Z"}}}
    assert problems("demand", image) == [
        "id: required attribute is missing",
        "quantity: '9' is out of range [1, 8]",
        "status: 'pending' is not one of cancelled, fulfilled, requested",
        "date.requested: '2024-01-15T18:30:00.000' is not an ISO-8601 timestamp with a time zone",
        "date.updated: '2024-02-30T00:00:00Z' is not a valid calendar timestamp",
    ]


def test_long_values_are_cut_in_messages():
    (problem,) = problems("demand", set_path(VALID["demand"], "status", {"S": "x" * 500}))
    assert problem.startswith("status: 'xxxx") and "…" in problem and len(problem) < 120


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2147483648", "'2147483648' is out of range [-2147483648, 2147483647]"),
        ("-2147483649", "'-2147483649' is out of range [-2147483648, 2147483647]"),
    ],
)
def test_int32_overflow(text, reason):
    found: list[str] = []
    assert wire.integer({"N": text}, "capacity", found, True, -(2**31), 2**31 - 1) is None
    assert found == [f"capacity: {reason}"]


def test_int32_bounds_are_accepted():
    found: list[str] = []
    assert wire.integer({"N": "2147483647"}, "capacity", found, True, -(2**31), 2**31 - 1) == 2**31 - 1
    assert wire.integer({"N": "-2147483648"}, "capacity", found, True, -(2**31), 2**31 - 1) == -(2**31)
    assert found == []


# --- fuzz: any JSON image decodes or raises DecodeError, never anything else ---------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
NUMBERS = st.sampled_from(["1", "-0", "1E+2", "1e999999999", "1E-999999999", "0E-500", "NaN", "1.5", "2147483648", ""])
TIMES = st.sampled_from(
    ["2024-01-15T18:30:00Z", "0001-01-01T00:00:00+01:00", "2024-02-30T00:00:00Z", "2024-01-15T18:30:00.0001Z", ""]
)


SCALARS = st.one_of(
    st.builds(lambda t, p: {t: p}, st.sampled_from(["S", "N", "BOOL", "NULL", "SS", "L", "M", "B", "X"]), JSON),
    NUMBERS.map(lambda n: {"N": n}),
    TIMES.map(lambda s: {"S": s}),
    st.lists(st.text(max_size=3) | st.integers(), max_size=3).map(lambda xs: {"SS": xs}),
    st.lists(NUMBERS.map(lambda n: {"N": n}) | JSON, max_size=3).map(lambda xs: {"L": xs}),
    st.just({"NULL": True}),
    JSON,
)


@st.composite
def fuzzed(draw: st.DrawFn, nodes: list[Node]) -> dict[str, Any]:
    """An image shaped like the schema (maps where it has records), every attribute absent, junk,
    or a plausible value of any tag."""
    image: dict[str, Any] = {}
    for node in nodes:
        if not node.has_image_fields or draw(st.integers(0, 3)) == 0:
            continue
        if node.info.kind == "record" and draw(st.booleans()):
            image[node.name] = {"M": draw(fuzzed(node.children))}
        else:
            image[node.name] = draw(SCALARS)
    return image


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_any_json_image_decodes_or_raises_decode_error(type_name):
    spec = REGISTRY[type_name]

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(image=fuzzed(tree(spec.fields)))
    def run(image):
        try:
            spec.decode(image, CHANGE, SETTINGS)
        except DecodeError as e:
            assert e.problems and all(": " in p for p in e.problems)

    run()
