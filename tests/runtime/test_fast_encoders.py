"""The fast encoders against the plain ones: the generated Avro writers give fastavro's datum
bytes and containers fastavro reads back as its own; Arrow tables built from a few rows' dicts
equal the column-built ones; lean Parquet files read back the same."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import io
from datetime import UTC, datetime
from decimal import Decimal

import fastavro
import pytest

from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event
from dmd.ingest.pipeline import parse_batch
from dmd.lake.encode import encode_avro, encode_avro_fastavro
from dmd.support import avrowire


@pytest.fixture(scope="module")
def records():
    from dmd.tools.sample import sample

    event = {"Records": [r for e in sample(600, seed=11, batch_size=600)[0] for r in e["Records"]]}
    groups, errors = parse_batch(decode_event(event), registry=REGISTRY, settings=Settings())
    assert not errors
    by_type: dict[str, list] = {}
    for (type_name, _), items in groups.items():
        by_type.setdefault(type_name, []).extend(p.record for p in items)
    assert set(by_type) == set(REGISTRY)
    return by_type


def edge_cases(rec):
    """Copies of `rec` with values at the edges of the encoding."""
    out = []
    for name in rec.__slots__:
        v = getattr(rec, name)
        variants = []
        if type(v) is str:
            variants = ["", "x" * 63, "y" * 64, "é✓" * 100]
        elif type(v) is int:
            variants = [0, -1, 63, 64, -65, 2**31 - 1, -(2**31)]
        elif type(v) is list:
            variants = [[], ["a"] * 70]
        elif type(v) is datetime:
            variants = [datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)]
        for value in variants:
            c = copy.deepcopy(rec)
            setattr(c, name, value)
            out.append(c)
    return out


def datum_fastavro(spec, rec) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(dict(spec.avro_schema)), spec.to_avro(rec))
    return buf.getvalue()


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_datum_bytes_equal_fastavro(records, type_name):
    spec = REGISTRY[type_name]
    recs = records[type_name]
    for rec in recs + edge_cases(recs[0]):
        out = bytearray()
        try:
            expected = datum_fastavro(spec, rec)
        except (ValueError, OverflowError):  # out of the Avro type's range: no expectation
            continue
        spec.avro_write(rec, out)
        assert bytes(out) == expected, rec


@pytest.mark.parametrize("value", ["0.00", "1.50", "-1.50", "99999999.99", "-0.01", "127.99", "-128.00"])
def test_decimal_bytes_equal_fastavro(value):
    schema = fastavro.parse_schema({"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2})
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, Decimal(value))
    out = bytearray()
    avrowire.write_decimal(out, Decimal(value), 2)
    assert bytes(out) == buf.getvalue()


@pytest.mark.parametrize("codec", ["null", "deflate", "snappy"])
@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_container_reads_back_like_fastavros(records, type_name, codec):
    spec = REGISTRY[type_name]
    ours = list(fastavro.reader(io.BytesIO(encode_avro(spec, records[type_name], codec))))
    theirs = list(fastavro.reader(io.BytesIO(encode_avro_fastavro(spec, records[type_name], codec))))
    assert ours == theirs and len(ours) == len(records[type_name])
    empty = fastavro.reader(io.BytesIO(encode_avro(spec, [], codec)))
    assert list(empty) == [] and empty.metadata["avro.codec"] == codec


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_arrow_from_rows_equals_columns(records, type_name):
    from dmd.support.columns import table_from_rows

    spec = REGISTRY[type_name]
    module = importlib.import_module(spec.record_class.__module__)
    recs = records[type_name] + edge_cases(records[type_name][0])[:20]
    by_rows = table_from_rows([spec.to_avro(r) for r in recs], spec.arrow_schema())
    by_columns = module.to_arrow_columns(recs)
    assert by_rows.schema == by_columns.schema == spec.arrow_schema()
    assert by_rows.equals(by_columns)
    assert spec.to_arrow(recs[:3]).equals(module.to_arrow_columns(recs[:3]))


@pytest.mark.parametrize("rows", [3, 1500])
def test_lean_and_full_parquet_read_back_alike(records, rows):
    import pyarrow.parquet as pq

    from dmd.lake.encode import encode_parquet

    spec = REGISTRY["demand"]
    recs = (records["demand"] * (rows // len(records["demand"]) + 1))[:rows]
    table = pq.read_table(io.BytesIO(encode_parquet(spec, recs, "snappy")))
    assert table.schema == spec.arrow_schema()
    assert table.equals(spec.to_arrow(recs))


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_parquet_groups_from_one_table_equal_files_written_alone(records, type_name):
    """encode_groups converts a batch's records of a type once and writes slices; each file is
    byte for byte the one its group alone gives, at sizes on both sides of the row thresholds."""
    from dmd.lake.encode import encode_groups, encode_parquet

    spec = REGISTRY[type_name]
    recs = records[type_name]
    sizes = [1, 2, 31, 32, 33, 5, 1]
    groups, start = [], 0
    for n in sizes:
        groups.append(recs[start : start + n])
        start += n
    assert all(len(g) == n for g, n in zip(groups, sizes, strict=True))
    bodies = encode_groups("parquet", spec, groups, "snappy")
    assert bodies == [encode_parquet(spec, g, "snappy") for g in groups]


def test_a_group_the_encoder_rejects_costs_only_its_bad_records():
    """If converting a type's groups together fails, each group is encoded on its own and only
    the records the encoder rejects become errors."""
    from dmd.ingest.pipeline import _encode_type
    from dmd.tools.sample import sample

    events, _ = sample(records=300, seed=2, rate=0.0005)  # a slow table: demand over several days
    settings = Settings(format="parquet")
    groups, _ = parse_batch([s for e in events for s in decode_event(e)], registry=REGISTRY, settings=settings)
    demand = [items for (t, _), items in groups.items() if t == "demand"][:3]
    victim = demand[1][0]
    victim.record.quantity = "not an int"  # what a buggy enrichment could leave behind
    results = _encode_type(settings, demand)
    assert [len(good) for _, good, _ in results] == [len(demand[0]), len(demand[1]) - 1, len(demand[2])]
    assert [len(bad) for _, _, bad in results] == [0, 1, 0]
    assert results[1][2][0].sources == (victim.source,)
    assert all(body is not None for body, _, _ in results)


@pytest.mark.parametrize(
    ("env", "import_first", "expected"),
    [(None, False, "system"), (None, True, "system"), ("mimalloc", False, "mimalloc")],
)
def test_parquet_runs_allocate_through_malloc_unless_told_otherwise(env, import_first, expected):
    """Arrow's default pools keep freed pages mapped (peak RSS); the runtime chooses the system
    allocator before its first Parquet file (through the environment if pyarrow is not loaded
    yet, so Arrow C++ uses it too), unless ARROW_DEFAULT_MEMORY_POOL is set."""
    import os
    import subprocess
    import sys

    code = (
        ("import pyarrow\n" if import_first else "") + "from dmd.generated import REGISTRY\n"
        "from dmd.lake.encode import encode_groups\n"
        "encode_groups('parquet', REGISTRY['sale'], [[]], 'snappy')\n"
        "import pyarrow as pa\n"
        "print(pa.default_memory_pool().backend_name)\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env:
        environ["ARROW_DEFAULT_MEMORY_POOL"] = env
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_avro_deflate_is_isal_and_costs_no_storage(records):
    """The deflate codec runs on ISA-L (python-isal) when installed: a standard raw deflate
    stream (zlib inflates it) no more than 1% larger than zlib's default level gives."""
    import zlib

    from isal import isal_zlib

    assert avrowire._deflater()[0] is isal_zlib.compress
    ours = theirs = 0
    for type_name, recs in records.items():
        for start in range(0, len(recs), 40):
            block = bytearray()
            for r in recs[start : start + 40]:
                REGISTRY[type_name].avro_write(r, block)
            packed = avrowire.COMPRESSORS["deflate"](bytes(block))
            assert zlib.decompress(packed, -15) == block
            ours += len(packed)
            theirs += len(zlib.compress(bytes(block), -1, -15))
    assert ours <= 1.01 * theirs, (ours, theirs)
