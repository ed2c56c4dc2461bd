"""Generated code is executed: each .avsc is read by fastavro and the Apache `avro` package, and
decoded records round-trip through an Avro container (fastavro) and a Parquet file (pyarrow)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import avro.schema
import fastavro
import pytest
from gen_image_strategies import apache_avro_read, avro_container, avro_roundtrip, images, parquet_roundtrip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmd.generated import REGISTRY
from dmd.support.records import Change, RecordSpec

ROOT = Path(__file__).resolve().parents[2]
AVSC = sorted((ROOT / "generated" / "avro").glob("*.avsc"))
SETTINGS = {"source_system_id": "sys-7"}
# Change times carry microseconds (ApproximateCreationDateTime at MICROSECOND precision).
CHANGES = st.builds(
    Change,
    operation=st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
    ttl_expired=st.booleans(),
    sequence_number=st.just("49590338271490256608559692538361571095921575989136588898"),
    change_time=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    event_id=st.uuids().map(str),
)


def test_there_is_one_avsc_per_type():
    assert [p.stem for p in AVSC] == sorted(REGISTRY)


@pytest.mark.parametrize("path", AVSC, ids=lambda p: p.name)
def test_avsc_is_read_by_fastavro_and_apache_avro(path):
    text = path.read_text(encoding="utf-8")
    schema = json.loads(text)
    parsed = fastavro.parse_schema(schema)
    assert parsed["name"] == f"{schema['namespace']}.{schema['name']}"
    apache = avro.schema.parse(text)
    assert apache.fullname == parsed["name"]
    assert [f.name for f in apache.fields] == [f["name"] for f in schema["fields"]]
    assert '"dmd":' not in text, "the plain .avsc carries no pipeline annotations"


@pytest.mark.parametrize("path", AVSC, ids=lambda p: p.name)
def test_avsc_is_the_schema_the_module_writes_with(path):
    assert json.loads(path.read_text(encoding="utf-8")) == REGISTRY[path.stem].avro_schema


def roundtrip(spec: RecordSpec, batch: list[tuple[dict, dict]], change: Change) -> None:
    records = [spec.decode(image, change, SETTINGS) for image, _ in batch]
    datums = [spec.to_avro(r) for r in records]

    assert avro_roundtrip(spec.avro_schema, datums) == datums
    assert apache_avro_read(avro_container(spec.avro_schema, datums)) == datums  # any Avro tool reads it

    table = spec.to_arrow(records)
    assert table.schema == spec.arrow_schema()
    back = parquet_roundtrip(table)
    assert back.schema.remove_metadata() == spec.arrow_schema()
    assert back.to_pylist() == datums  # same values, column for column, row for row


def roundtrips(spec: RecordSpec, max_examples: int = 40):
    """A hypothesis test: random batches of one type survive both containers (also run on the
    extensibility test's type)."""

    @settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(batch=st.lists(images(spec.type_name, spec.fields), min_size=1, max_size=4), change=CHANGES)
    def run(batch, change):
        roundtrip(spec, batch, change)

    return run


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_records_round_trip_through_avro_and_parquet(type_name):
    roundtrips(REGISTRY[type_name])()
