"""The fuzz target's check, driven by hypothesis in CI (atheris runs it for longer: see
fuzz_decode.py and docs/reliability.md): arbitrary bytes, arbitrary JSON, and arbitrary
DynamoDB AttributeValue images and change records built from the schemas' field names."""

from __future__ import annotations

import json
import os

from batchgen import TYPES, image_fields
from fuzz_decode import check_one
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SCALE = float(os.environ.get("DMD_RELIABILITY_SCALE", "1"))
PROFILE = settings(max_examples=int(300 * SCALE), deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = sorted({p for t in TYPES for f in image_fields(t) for p in f.path.split(".")})
_scalar_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["2024-01-15T18:30:00.000Z", "2024-02-30", "9999-12-31T23:59:59.000-01:00", "1e400", "-0", "4.0"]),
    st.sampled_from(["requested", "sms", "presale", "demand", "event", "sale", "notification"]),
)
attribute_values = st.recursive(
    st.one_of(
        st.builds(lambda s: {"S": s}, _scalar_text),
        st.builds(lambda s: {"N": s}, _scalar_text),
        st.builds(lambda b: {"BOOL": b}, st.booleans()),
        st.just({"NULL": True}),
        st.builds(lambda xs: {"SS": xs}, st.lists(st.text(max_size=5), max_size=3)),
        st.one_of(st.none(), st.integers(), st.text(max_size=5), st.just({})),
    ),
    lambda children: st.one_of(
        st.builds(lambda xs: {"L": xs}, st.lists(children, max_size=3)),
        st.builds(lambda m: {"M": m}, st.dictionaries(st.sampled_from(NAMES), children, max_size=4)),
    ),
    max_leaves=20,
)
images = st.dictionaries(st.sampled_from(NAMES), attribute_values, max_size=12).flatmap(
    lambda image: st.sampled_from(TYPES).map(lambda t: {**image, "type": {"S": t}})
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)),
    max_leaves=25,
)


@st.composite
def change_records(draw) -> dict:
    operation = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE", "X"]))
    image = draw(images)
    ddb = {
        "ApproximateCreationDateTime": draw(st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.text())),
        "OldImage" if operation == "REMOVE" else "NewImage": image,
    }
    if draw(st.booleans()):
        ddb["ApproximateCreationDateTimePrecision"] = draw(st.sampled_from(["MICROSECOND", "MILLISECOND", "NANO"]))
    return {"eventName": operation, "eventID": "e", "dynamodb": ddb}


@PROFILE
@given(st.binary(max_size=3000))
def test_arbitrary_bytes(data):
    check_one(data)


@PROFILE
@given(json_values)
def test_arbitrary_json(value):
    check_one(json.dumps(value).encode())


@PROFILE
@given(change_records())
def test_arbitrary_change_records(change):
    check_one(json.dumps(change, allow_nan=True).encode())


@PROFILE
@given(images)
def test_arbitrary_images(image):
    check_one(json.dumps(image).encode())
