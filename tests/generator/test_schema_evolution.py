"""Schema changes against the archive (docs/schema-evolution.md): the verdict of each change kind,
and, for the accepted ones, files written by the old generated code and by the regenerated code
read together by pyarrow (as `dmd query` reads Parquet), DuckDB, fastavro and Apache avro.

Every case edits a copy of the project's schemas and generates into a scratch folder that holds
a copy of the committed history; the real schemas/ and generated/ are never touched.
"""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hcl2
import pytest
from click.testing import CliRunner
from test_extensibility import imported

from dmd.generated import REGISTRY
from dmd.generator.history import HISTORY, fingerprint
from dmd.lake.formats import FORMATS
from dmd.lake.read import fingerprint_of
from dmd.support.records import Change
from dmd.tools.cli import main

ROOT = Path(__file__).resolve().parents[2]
TYPE = "demand"  # the case edits act on this schema


def fields(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in doc["fields"]}


def nested(doc: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in fields(doc)[name]["type"]["fields"]}


def add(doc: dict[str, Any], field: dict[str, Any]) -> None:
    doc["fields"].insert(4, field)


def rename(doc: dict[str, Any], alias: bool) -> None:
    f = fields(doc)["fanId"]
    f["name"] = "fan"
    if alias:
        f["aliases"] = ["fanId"]


def set_type(doc: dict[str, Any], name: str, avro: Any) -> None:
    fields(doc)[name]["type"] = avro


def optional(doc: dict[str, Any], name: str) -> None:
    f = fields(doc)[name]
    f["type"], f["default"] = ["null", f["type"]], None


def required(doc: dict[str, Any], name: str) -> None:
    f = fields(doc)[name]
    f["type"] = f["type"][1]
    del f["default"]


def remove(doc: dict[str, Any], name: str) -> None:
    doc["fields"] = [f for f in doc["fields"] if f["name"] != name]


def symbols(doc: dict[str, Any], values: list[str], **extra: Any) -> None:
    fields(doc)["status"]["type"].update(symbols=values, **extra)


def annotate(doc: dict[str, Any], name: str, **dmd: Any) -> None:
    f = fields(doc)[name]
    f["dmd"] = {**f.get("dmd", {}), **dmd}
    if f["dmd"].get("pii") is False:
        del f["dmd"]["pii"]


OPTIONAL_STRING = {"name": "loyaltyTier", "type": ["null", "string"], "default": None}
STATUS = ["requested", "fulfilled", "cancelled"]

# change kind -> (edit of demand.json, accepted?, the field the verdict names). One row per row
# of docs/schema-evolution.md's table.
Edit = Callable[[dict[str, Any]], None]
KINDS: dict[str, tuple[Edit, bool, str]] = {
    "add an optional field": (lambda d: add(d, OPTIONAL_STRING), True, "loyaltyTier"),
    "add a required field": (lambda d: add(d, {"name": "tier", "type": "string"}), False, "tier"),
    "remove an optional field": (lambda d: remove(d, "phoneNumber"), True, "phoneNumber"),
    "remove a required field": (lambda d: remove(d, "fanId"), True, "fanId"),
    "rename without an alias": (lambda d: rename(d, alias=False), False, "fan"),
    "rename with an alias": (lambda d: rename(d, alias=True), False, "fan"),
    "widen int to long": (lambda d: set_type(d, "quantity", "long"), True, "quantity"),
    "change a field's type": (lambda d: set_type(d, "marketId", "string"), False, "marketId"),
    "change a decimal's scale": (lambda d: fields(d)["amount"]["type"][1].update(scale=3), False, "amount"),
    "raise a decimal's precision, same scale": (
        lambda d: fields(d)["amount"]["type"][1].update(precision=12),
        False,
        "amount",
    ),
    "change what the pipeline adds": (
        lambda d: fields(d)["reference"]["dmd"].update(template="{id}"),
        False,
        "reference",
    ),
    "change a timestamp's unit": (
        lambda d: nested(d, "date")["requested"].update(type={"type": "long", "logicalType": "timestamp-micros"}),
        False,
        "date.requested",
    ),
    "add an enum symbol": (lambda d: symbols(d, [*STATUS, "expired"]), True, "status"),
    "add an enum symbol with an enum default": (
        lambda d: symbols(d, [*STATUS, "expired"], default="requested"),
        True,
        "status",
    ),
    "remove an enum symbol": (lambda d: symbols(d, STATUS[:2]), False, "status"),
    "make a required field optional": (lambda d: optional(d, "eventId"), True, "eventId"),
    "make an optional field required": (lambda d: required(d, "email"), False, "email"),
    "add a field to a nested record": (
        lambda d: fields(d)["date"]["type"]["fields"].insert(
            1,
            {
                "name": "cancelled",
                "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
                "default": None,
            },
        ),
        True,
        "date.cancelled",
    ),
    "change an array's item type": (
        lambda d: set_type(d, "priceLevels", {"type": "array", "items": "int"}),
        False,
        "priceLevels",
    ),
    "change the partition-date paths": (
        lambda d: d["dmd"]["partitionDate"].update(paths=["cdc.changeTime"]),
        False,
        "",
    ),
    "add a PII flag": (lambda d: annotate(d, "fanId", pii=True), True, "fanId"),
    "remove a PII flag": (lambda d: annotate(d, "email", pii=False), False, "email"),
    "widen a range": (lambda d: annotate(d, "quantity", maximum=10), True, "quantity"),
    "narrow a range": (lambda d: annotate(d, "quantity", maximum=6), False, "quantity"),
}
# The decimal case adds an optional decimal first (version 2), then changes its scale.
DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Copies of the schemas and of the committed history (what `dmd generate` reads back)."""
    shutil.copytree(ROOT / "schemas", tmp_path / "schemas")
    shutil.copytree(ROOT / "generated" / HISTORY, tmp_path / "generated" / HISTORY)
    return tmp_path


def edit_schema(project: Path, change: Edit) -> None:
    path = project / "schemas" / f"{TYPE}.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))


def generate(project: Path, *args: str) -> Any:
    argv = ["generate", "--schemas", str(project / "schemas"), "--out", str(project / "generated"), *args]
    return CliRunner().invoke(main, argv)


def versions(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "generated" / HISTORY / TYPE).glob("*.json"))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_change_kind_gets_its_verdict(project, kind):
    change, accepted, field = KINDS[kind]
    if "decimal" in kind:
        edit_schema(project, lambda d: add(d, {"name": "amount", "type": ["null", DECIMAL], "default": None}))
        assert generate(project).exit_code == 0
    before = versions(project)
    edit_schema(project, change)
    result = generate(project)
    where = f"{TYPE}.{field}" if field else TYPE
    if accepted:
        assert result.exit_code == 0, result.output
        assert f"accepted: {where}:" in result.output
        assert len(versions(project)) == len(before) + 1  # the new version is recorded
        assert generate(project, "--check").exit_code == 0
    else:
        assert result.exit_code == 1, result.output
        refusals = [line for line in result.output.splitlines() if line.startswith(f"refused: {where}:")]
        assert refusals, result.output
        assert all("; instead: " in line for line in refusals)
        assert versions(project) == before  # nothing written
        assert not (project / "generated" / "python").exists() or "decimal" in kind
        check = generate(project, "--check")
        assert check.exit_code == 1 and f"refused: {where}:" in check.output


def test_pii_removal_is_accepted_only_when_acknowledged(project):
    edit_schema(project, KINDS["remove a PII flag"][0])
    assert generate(project, "--allow-pii-removal", f"{TYPE}.phoneNumber").exit_code == 1
    result = generate(project, "--allow-pii-removal", f"{TYPE}.email")
    assert result.exit_code == 0, result.output
    assert f"accepted: {TYPE}.email: remove a field's PII flag" in result.output


def test_a_change_is_checked_against_every_earlier_version(project):
    """Removing `email` is fine, and so is adding an optional `email` to that version; but files of
    version 1 hold `email` as a string, which an int cannot read."""
    edit_schema(project, lambda d: remove(d, "email"))
    assert generate(project).exit_code == 0
    without_email = int(versions(project)[-1].removesuffix(".json"))
    edit_schema(project, lambda d: add(d, {"name": "email", "type": ["null", "int"], "default": None}))
    result = generate(project)
    assert result.exit_code == 1
    assert f"refused: {TYPE}.email: change a field's type" in result.output
    against = [int(v) for v in re.findall(r"against version (\d+)", result.output)]
    assert against and all(v < without_email for v in against), result.output


def test_a_doc_edit_is_no_new_version(project):
    edit_schema(project, lambda d: d.update(doc="Another text."))
    before = versions(project)
    assert generate(project).exit_code == 0
    assert versions(project) == before


# --- real files, old and new code together ---------------------------------------------------------

IMAGE = {
    "id": {"S": "d-1"},
    "type": {"S": "demand"},
    "eventId": {"S": "e-1"},
    "fanId": {"S": "f-1"},
    "marketId": {"N": "7"},
    "quantity": {"N": "2"},
    "priceLevels": {"L": [{"S": "PL1"}]},
    "status": {"S": "requested"},
    "email": {"S": "fan@example.com"},
    "date": {"M": {"requested": {"S": "2024-05-01T10:00:00Z"}}},
}
INSERT = Change("INSERT", False, "1", datetime(2024, 5, 1, 12, tzinfo=UTC), "ev-1")
SETTINGS = {"source_system_id": "sys-1"}
ACCEPTED_WITH_DATA = {  # kind -> (field, its value in the old file's row read with the new schema)
    "add an optional field": ("loyaltyTier", None),
    "widen int to long": ("quantity", 2),
    "add an enum symbol": ("status", "requested"),
    "make a required field optional": ("eventId", "e-1"),
    "remove an optional field": ("phoneNumber", "absent"),
    "add a field to a nested record": ("date.cancelled", None),
}


def _read_parquet(paths: list[Path], schema: Any) -> list[dict[str, Any]]:
    import duckdb
    import pyarrow.dataset as ds

    dataset = ds.dataset([str(p) for p in paths], schema=schema, format="parquet")
    rows = dataset.to_table().to_pylist()
    con = duckdb.connect()
    con.register("t", dataset)  # how `dmd query` hands Parquet to DuckDB
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == len(rows)
    return rows


def _read_avro(bodies: list[bytes], avsc: dict[str, Any]) -> list[dict[str, Any]]:
    import avro.datafile
    import avro.io
    import avro.schema
    import fastavro

    rows = [r for body in bodies for r in fastavro.reader(io.BytesIO(body), reader_schema=avsc)]
    reader_schema = avro.schema.parse(json.dumps(avsc))
    apache = []
    for body in bodies:
        with avro.datafile.DataFileReader(io.BytesIO(body), avro.io.DatumReader(readers_schema=reader_schema)) as r:
            apache += list(r)
    assert [r["id"] for r in apache] == [r["id"] for r in rows]
    return rows


def _at(row: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if part not in row:
            return "absent"
        row = row[part]
    return row


def _archive(lake: Path, fmt: str, batches: list[tuple[Any, dict[str, Any]]]) -> list[Path]:
    """Each (registry, image) through the pipeline as one batch; the data files written."""
    from dmd.ingest.config import Settings
    from dmd.ingest.envelope import decode_event
    from dmd.ingest.pipeline import process_batch
    from dmd.lake.storage import LocalStorage

    for i, (registry, image) in enumerate(batches, 1):
        event = _kinesis_event(image, str(i))
        result = process_batch(
            decode_event(event), registry=registry, settings=Settings(format=fmt), storage=LocalStorage(lake)
        )
        assert not result.failed and not result.errors and result.data
    return sorted(lake.rglob(f"*.{fmt}"))


@pytest.mark.parametrize("kind", sorted(ACCEPTED_WITH_DATA))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_old_and_new_files_read_together(project, tmp_path, kind, fmt):
    """A file written by the old code and one by the regenerated code, in one partition, read by
    `dmd query` through the regenerated views, by pyarrow (Parquet) and by fastavro and Apache
    avro with the new schema as the reader's (Avro)."""
    from dmd.tools.query import open_lake

    edit_schema(project, KINDS[kind][0])
    assert generate(project).exit_code == 0
    field, old_value = ACCEPTED_WITH_DATA[kind]
    lake = tmp_path / "lake"
    with imported(project / "generated" / "python") as package:
        new_spec = package.REGISTRY[TYPE]
        new_image = copy.deepcopy(IMAGE) | {"id": {"S": "d-2"}}
        files = _archive(lake, fmt, [(REGISTRY, copy.deepcopy(IMAGE)), (package.REGISTRY, new_image)])
        assert sorted(fingerprint_of(f.read_bytes()) for f in files) == sorted(
            [REGISTRY[TYPE].fingerprint, new_spec.fingerprint]
        )
        assert REGISTRY[TYPE].fingerprint == fingerprint(REGISTRY[TYPE].avro_schema)
        con = open_lake(lake, generated=package)
        cursor = con.execute(f'SELECT * FROM "{TYPE}" ORDER BY id')
        names = [d[0] for d in cursor.description]
        queried = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        assert con.execute(f'SELECT count(*) FROM "{TYPE}_current"').fetchone()[0] == 2
        if fmt == "parquet":
            read = _read_parquet(files, new_spec.arrow_schema())
        else:
            read = _read_avro([f.read_bytes() for f in files], dict(new_spec.avro_schema))
    for rows in (queried, sorted(read, key=lambda r: r["id"])):
        assert [r["id"] for r in rows] == ["d-1", "d-2"]
        assert _at(rows[0], field) == old_value, rows[0]


# --- a breaking change: a new table version ----------------------------------------------------------


def _kinesis_event(image: dict[str, Any], sequence: str) -> dict[str, Any]:
    import base64

    from dmd.tools.sample import change_document

    change = change_document("INSERT", {"id": image["id"]}, 1_714_557_600_000, f"ev-{sequence}", new=image)
    data = base64.b64encode(json.dumps(change).encode()).decode()
    kinesis = {"sequenceNumber": sequence, "data": data, "approximateArrivalTimestamp": 1_714_557_601.0}
    return {
        "Records": [{"eventSource": "aws:kinesis", "eventID": f"shardId-000000000000:{sequence}", "kinesis": kinesis}]
    }


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_breaking_change_starts_a_new_table_version_read_with_the_old_one(project, tmp_path, fmt):
    import sqlglot

    from dmd.lake import layout
    from dmd.tools.query import open_lake, render_sql

    edit_schema(project, lambda d: set_type(d, "marketId", "string"))
    assert generate(project).exit_code == 1  # refused in place ...
    edit_schema(project, lambda d: d["dmd"].update(tableVersion=2))  # ... accepted as a new table
    result = generate(project)
    assert result.exit_code == 0, result.output
    assert f"accepted: {TYPE}: start a new table version ({TYPE} -> {TYPE}_v2)" in result.output
    out = project / "generated"
    params = {"database": "dmd", "bucket": "b", "prefix": "archive", "projection_start": "2024-01-01"}
    for table in (TYPE, f"{TYPE}_v2"):  # both tables stay, each at its own location
        ddl = sqlglot.parse_one(render_sql((out / "athena" / fmt / f"{table}.sql").read_text(), params), read="athena")
        assert ddl.this.this.name == table
        assert f"s3://b/{layout.table_prefix('archive', fmt, table)}" in ddl.sql("athena")
    view = sqlglot.parse_one(render_sql((out / "athena/views" / f"{TYPE}_all.sql").read_text(), params), read="athena")
    assert view.kind == "VIEW" and view.this.name == f"{TYPE}_all"
    glue = (out / "terraform" / "glue.tf").read_text()
    assert f'"{TYPE}_v2"' in glue and f'"{TYPE}"' in glue  # both tables in the catalog

    lake = tmp_path / "lake"
    new_image = copy.deepcopy(IMAGE) | {"id": {"S": "d-2"}, "marketId": {"S": "market-7"}}
    with imported(out / "python") as package:
        assert package.REGISTRY[TYPE].table == f"{TYPE}_v2"
        _archive(lake, fmt, [(REGISTRY, copy.deepcopy(IMAGE)), (package.REGISTRY, new_image)])
        for table in (TYPE, f"{TYPE}_v2"):  # each version's files in its own table's folder
            assert list((lake / layout.table_prefix("archive", fmt, table)).rglob(f"*.{fmt}")), table
        con = open_lake(lake, generated=package)
        rows = con.execute(f'SELECT id, marketId FROM "{TYPE}_all" ORDER BY id').fetchall()
        assert rows == [("d-1", None), ("d-2", "market-7")]  # bigint cannot be read as string: NULL for old rows
        assert con.execute(f'SELECT count(*) FROM "{TYPE}_current"').fetchone()[0] == 2
        assert con.execute(f"SELECT count(*) FROM all_records WHERE type = '{TYPE}'").fetchone()[0] == 2
        returned = [name.lower() for name in con.sql(f'SELECT * FROM "{TYPE}_all"').columns]

    # `terraform apply` creates the new view and replaces those reading it: nothing to run by hand
    with (out / "terraform" / "athena.tf").open() as f:
        athena_tf = hcl2.load(f)
    views = {name for block in athena_tf["resource"] for name in block['"aws_glue_catalog_table"']}  # labels quoted
    (definitions,) = [b["athena_views"] for b in athena_tf["locals"] if "athena_views" in b]
    (sql,) = [b["athena_view_sql"] for b in athena_tf["locals"] if "athena_view_sql" in b]
    assert f'"{TYPE}_all_{fmt}"' in views
    assert f'"{TYPE}"' in sql[f"{TYPE}_all"] and f'"{TYPE}_v2"' in sql[f"{TYPE}_all"]
    assert f'"{TYPE}_all"' in sql[f"{TYPE}_current"] and f'"{TYPE}_all"' in sql["all_records"]
    declared = [{k: json.loads(v) for k, v in c.items()} for c in definitions[f"{TYPE}_all_{fmt}"]["columns"]]
    assert [c["name"] for c in declared] == returned  # as the view's SQL returns them
    assert {"name": "marketid", "type": "varchar"} in declared  # the current table's type (NULL for older rows)


def test_a_required_field_with_a_default_is_refused_by_the_loader(project):
    edit_schema(project, lambda d: add(d, {"name": "tier", "type": "string", "default": "basic"}))
    result = generate(project)
    assert result.exit_code == 2 and "defaults are only allowed as null on optional fields" in result.output


REFUSED_FOR_AVRO = (  # refused kinds whose old files an Avro reader of the new schema cannot read
    "add a required field",
    "change a field's type",
    "remove an enum symbol",
    "make an optional field required",
)


@pytest.mark.parametrize("kind", REFUSED_FOR_AVRO)
def test_a_refused_change_would_break_reading_old_avro_files(project, kind):
    """What the refusal prevents: the old file, read with the edited schema as the reader's, fails
    in fastavro and in Apache avro (the image has `cancelled` status and no phone number)."""
    import avro.datafile
    import avro.errors
    import avro.io
    import avro.schema
    import fastavro
    import fastavro.read

    from dmd.generator.loader import load_record_type
    from dmd.generator.typemap import record_avro

    spec = REGISTRY[TYPE]
    image = copy.deepcopy(IMAGE) | {"status": {"S": "cancelled"}}
    image.pop("email")
    body = FORMATS["avro"].encode(spec, [spec.decode(image, INSERT, SETTINGS)], "null")
    edit_schema(project, KINDS[kind][0])
    reader = record_avro(load_record_type(project / "schemas" / f"{TYPE}.json", f"schemas/{TYPE}.json"))
    assert list(fastavro.reader(io.BytesIO(body)))  # readable with its own schema
    with pytest.raises(fastavro.read.SchemaResolutionError):
        list(fastavro.reader(io.BytesIO(body), reader_schema=reader))
    datum_reader = avro.io.DatumReader(readers_schema=avro.schema.parse(json.dumps(reader)))
    with (
        pytest.raises(avro.errors.SchemaResolutionException),
        avro.datafile.DataFileReader(io.BytesIO(body), datum_reader) as r,
    ):
        list(r)
