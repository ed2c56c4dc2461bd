"""An absent optional record whose children are required (of every kind) is a null struct in
Parquet: both ways of building the Arrow table (row dicts for a few records, columns for more)
give the same table, and Parquet accepts it. Arrow still builds the child columns under a null
struct, so the generated placeholder record (python_kinds.SCALARS' fillers) must hold no nulls
in a non-nullable child: the one fix of the null-struct bug."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dmd.generator.generate import generate
from dmd.generator.kinds import Kind
from dmd.generator.targets.python_kinds import SCALARS
from dmd.support.columns import ROWS_VIA_DICTS, table_from_rows
from dmd.support.records import Change

ROOT = Path(__file__).resolve().parents[2]
CHANGE = Change("INSERT", False, "1", datetime(2024, 1, 15, 18, 31, tzinfo=UTC), "e")

# A required child of every scalar kind, a list and a record, with a present value on the wire.
CHILDREN = {
    Kind.STRING: ("string", {"S": "x"}),
    Kind.BOOLEAN: ("boolean", {"BOOL": True}),
    Kind.INT: ("int", {"N": "7"}),
    Kind.LONG: ("long", {"N": "7"}),
    Kind.DECIMAL: ({"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}, {"N": "1.5"}),
    Kind.TIMESTAMP_MILLIS: ({"type": "long", "logicalType": "timestamp-millis"}, {"S": "2024-01-15T18:30:00Z"}),
    Kind.TIMESTAMP_MICROS: ({"type": "long", "logicalType": "timestamp-micros"}, {"S": "2024-01-15T18:30:00Z"}),
    Kind.DATE: ({"type": "int", "logicalType": "date"}, {"S": "2024-01-15"}),
    Kind.ENUM: ({"type": "enum", "name": "Shade", "symbols": ["dark", "light"]}, {"S": "light"}),
    Kind.ARRAY: ({"type": "array", "items": "string"}, {"L": [{"S": "a"}]}),
    Kind.RECORD: (
        {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "long"}]},
        {"M": {"x": {"N": "1"}}},
    ),
}


def test_the_test_covers_every_scalar_kind():
    assert set(SCALARS) <= set(CHILDREN)


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    schemas = tmp_path_factory.mktemp("schemas")
    sale = json.loads((ROOT / "schemas" / "sale.json").read_text())
    fields = [{"name": f"c_{kind.name.lower()}", "type": avro} for kind, (avro, _) in CHILDREN.items()]
    extra = {"type": "record", "name": "Extra", "fields": fields}
    sale["fields"].insert(3, {"name": "extra", "type": ["null", extra], "default": None})
    (schemas / "sale.json").write_text(json.dumps(sale))
    out = tmp_path_factory.mktemp("generated")
    generate(schemas, out)
    loaded = importlib.util.spec_from_file_location("null_structs_sale", out / "python" / "sale.py")
    module = importlib.util.module_from_spec(loaded)
    sys.modules[loaded.name] = module  # msgspec resolves the Structs' annotations through it
    loaded.loader.exec_module(module)
    return module.SPEC


def records(spec, n: int) -> list:
    image = {
        "id": {"S": "s-1"},
        "type": {"S": "sale"},
        "eventId": {"S": "e-1"},
        "saleType": {"S": "presale"},
        "saleStartDateTime": {"S": "2024-01-15T18:30:00Z"},
    }
    extra = {"M": {f"c_{kind.name.lower()}": av for kind, (_, av) in CHILDREN.items()}}
    return [spec.decode(image | ({"extra": extra} if i % 3 == 0 else {}), CHANGE, {}) for i in range(n)]


def test_a_null_struct_with_required_children_is_written_alike_both_ways(spec):
    recs = records(spec, 2 * ROWS_VIA_DICTS)
    assert recs[0].extra is not None and recs[1].extra is None
    by_columns = spec.to_arrow(recs)  # more than ROWS_VIA_DICTS: column by column
    by_rows = table_from_rows([spec.to_avro(r) for r in recs], spec.arrow_schema())
    assert by_columns.equals(by_rows)
    buffer = io.BytesIO()
    pq.write_table(by_columns, buffer)
    back = pq.read_table(pa.BufferReader(buffer.getvalue()))
    assert back.column("extra").to_pylist() == by_rows.column("extra").to_pylist()
    assert back.column("extra").null_count == len(recs) - len(recs[::3])
