"""The `added` kinds are declared once, in generator/added.py: the meta-schema, the model's
Origin, the loader's checks, the data dictionary and the Python target all follow that table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dmd.generator.added import ADDED, REQUIRED_ADDED
from dmd.generator.loader import metaschema
from dmd.generator.model import Origin

ROOT = Path(__file__).resolve().parents[2]


def test_origin_is_image_or_a_row_of_the_table():
    assert [o.value for o in Origin] == ["image", *ADDED]
    assert Origin.CDC_CHANGE_TIME == "cdc.change-time"  # member names follow the values


def test_metaschema_lists_the_table_and_requires_each_argument():
    annotation = metaschema()["$defs"]["fieldAnnotation"]
    assert annotation["properties"]["added"]["enum"] == list(ADDED)
    with_argument = {value: a.argument for value, a in ADDED.items() if a.argument}
    assert with_argument == {"template": "template", "config": "config"}
    required = {rule["if"]["properties"]["added"]["const"]: rule["then"]["required"] for rule in annotation["allOf"]}
    assert required == {value: [argument] for value, argument in with_argument.items()}


def test_required_kinds_are_the_rows_every_record_type_carries_once():
    assert REQUIRED_ADDED == (
        "is-deleted",
        "deleted-at",
        "cdc.operation",
        "cdc.ttl-expired",
        "cdc.sequence-number",
        "cdc.change-time",
        "cdc.event-id",
    )


# Run in a fresh interpreter: the table is read when the generator is imported. Two new kinds
# are declared, one with an argument, and used by a copy of the sale schema.
NEW_KINDS = r"""
import importlib.util, json, sys
from datetime import UTC, datetime
from pathlib import Path

from dmd.generator import added

added.ADDED["ttl-removed"] = added.Added((added.Kind.BOOLEAN,), "pipeline: removed by its TTL",
                                         "change.removed and change.ttl_expired", once=False)
added.ADDED["constant"] = added.Added((added.Kind.STRING,), "pipeline: a constant", "{argument!r}", once=False,
                                      argument="constant", argument_schema={"type": "string"})

from dmd.generator.generate import generate
from dmd.generator.loader import SchemaError, load_model, metaschema
from dmd.generator.model import Origin
from dmd.support.records import Change

schemas, out = Path(sys.argv[1]), Path(sys.argv[2])
sale = json.loads((Path(sys.argv[3]) / "sale.json").read_text())
sale["fields"] += [
    {"name": "ttlRemoved", "type": "boolean", "dmd": {"added": "ttl-removed"}},
    {"name": "origin", "type": "string", "dmd": {"added": "constant", "constant": "stream"}},
]
(schemas / "sale.json").write_text(json.dumps(sale))
generate(schemas, out)

faults = []
for broken in ({"added": "ttl-removed"}, {"added": "constant"}):  # a string; no argument
    sale["fields"][-1]["dmd"] = broken
    (schemas / "sale.json").write_text(json.dumps(sale))
    try:
        load_model(schemas)
    except SchemaError as e:
        faults += e.faults

spec = importlib.util.spec_from_file_location("new_kinds_sale", out / "python" / "sale.py")
module = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = module  # msgspec resolves the Structs' annotations through it
spec.loader.exec_module(module)
image = {"id": {"S": "s-1"}, "type": {"S": "sale"}, "eventId": {"S": "e-1"}, "saleType": {"S": "presale"},
         "saleStartDateTime": {"S": "2024-01-15T18:30:00Z"}}
when = datetime(2024, 1, 15, 18, 31, tzinfo=UTC)
records = [module.SPEC.decode(image, Change(op, ttl, "1", when, "e"), {"source_system_id": "x"})
           for op, ttl in (("REMOVE", True), ("MODIFY", False))]
print(json.dumps({
    "enum": metaschema()["$defs"]["fieldAnnotation"]["properties"]["added"]["enum"],
    "origins": [o.name for o in Origin],
    "faults": faults,
    "docs": (out / "docs" / "data-dictionary.md").read_text(),
    "values": [[r.ttlRemoved, r.origin] for r in records],
    "fields": [[f.path, f.origin] for f in module.SPEC.fields[-2:]],
}))
"""


def test_a_kind_declared_in_the_table_reaches_metaschema_loader_docs_and_python(tmp_path):
    schemas, generated = tmp_path / "schemas", tmp_path / "generated"
    schemas.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", NEW_KINDS, str(schemas), str(generated), str(ROOT / "schemas")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["enum"][-2:] == ["ttl-removed", "constant"]
    assert got["origins"][-2:] == ["TTL_REMOVED", "CONSTANT"]
    assert got["faults"] == [
        "schemas/sale.json:/fields/12/type: a field with added 'ttl-removed' must be a required boolean",
        "schemas/sale.json:/fields/12/dmd: 'constant' is a required property",
    ]
    assert "| `ttlRemoved` | boolean | required |  | pipeline: removed by its TTL |" in got["docs"]
    assert "| `origin` | string | required |  | pipeline: a constant `stream` |" in got["docs"]
    assert got["values"] == [[True, "stream"], [False, "stream"]]
    assert got["fields"] == [["ttlRemoved", "ttl-removed"], ["origin", "constant"]]
