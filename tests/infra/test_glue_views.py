"""The Athena views as Terraform creates them (Glue Data Catalog views): each view's SQL is the
generated view's, and the columns its definition declares are those the SQL returns, checked by
running the view bodies in DuckDB over a lake the pipeline wrote."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from infra_ddl import ATHENA
from infra_hcl import TERRAFORM, module, resources

from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event
from dmd.ingest.pipeline import process_batch
from dmd.lake.formats import FORMATS
from dmd.lake.storage import LocalStorage
from dmd.tools.query import open_lake
from dmd.tools.sample import sample

VIEWS = sorted(p.stem for p in (ATHENA / "views").glob("*.sql"))
DATABASE = "${aws_glue_catalog_database.archive.name}"
# What Athena's engine reads a view definition with (Trino's ConnectorViewDefinition).
DEFINITION_KEYS = {"originalSql", "catalog", "schema", "columns", "comment", "owner", "runAsInvoker"}


def local(name: str) -> dict[str, Any]:
    (value,) = [block[name] for block in module()["locals"] if name in block]
    return value


def definition(resource: str) -> dict[str, Any]:
    """The view's JSON as Terraform's jsonencode makes it, its references to other values resolved."""
    out = dict(local("athena_views")[resource])
    sql = re.fullmatch(r"\$\{local\.athena_view_sql\.(\w+)\}", out["originalSql"])
    assert sql, out["originalSql"]
    out["originalSql"] = local("athena_view_sql")[sql.group(1)]
    return out


def view_file_body(view: str) -> str:
    ddl = (ATHENA / "views" / f"{view}.sql").read_text()
    match = re.search(r'CREATE OR REPLACE VIEW "\$\{database\}"\."(\w+)" AS\n(.*);\n\Z', ddl, re.S)
    assert match and match.group(1) == view, view
    return match.group(2)


def test_no_view_is_left_to_run_by_hand():
    assert "aws_athena_named_query" not in {kind for block in module()["resource"] for kind in block}
    views = {name for name, r in resources("aws_glue_catalog_table").items() if r["table_type"] == "VIRTUAL_VIEW"}
    assert views == {f"{view}_{fmt}" for view in VIEWS for fmt in FORMATS}
    assert set(VIEWS) >= {f"{t}_current" for t in REGISTRY} | {"all_records"}


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_glue_view_is_an_athena_view_of_the_generated_sql(view: str, fmt: str):
    resource = f"{view}_{fmt}"
    table = resources("aws_glue_catalog_table")[resource]
    assert table["count"] == f'${{var.format == "{fmt}" ? 1 : 0}}'
    assert table["name"] == view
    assert table["database_name"] == DATABASE
    # what Athena's CREATE VIEW writes; Athena takes the table for a view only with both parameters
    assert table["parameters"] == {"presto_view": "true", "comment": "Presto View"}
    assert table["view_expanded_text"] == "/* Presto View */"
    assert table["view_original_text"] == (
        f"/* Presto View: ${{base64encode(jsonencode(local.athena_views.{resource}))}} */"
    )
    spec = definition(resource)
    assert set(spec) <= DEFINITION_KEYS
    assert spec["catalog"] == "awsdatacatalog" and spec["schema"] == DATABASE
    # the tables it reads qualified by the database, as in the generated view
    assert spec["originalSql"].rstrip("\n") == view_file_body(view).replace("${database}", DATABASE)
    (sd,) = table["storage_descriptor"]
    assert sd["ser_de_info"] == [{"name": "-", "serialization_library": "-"}]
    assert [c["name"] for c in sd["columns"]] == [c["name"] for c in spec["columns"]]
    assert all(set(c) == {"name", "type"} for c in spec["columns"])


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_evaluates_each_view_text_to_what_athena_decodes(tmp_path: Path):
    """Each resource's view_original_text as Terraform evaluates it (`terraform console`, on
    athena.tf's locals with the database name given), decoded the way Trino's ViewReaderUtil
    decodes a view: the prefix and suffix, base64, the JSON of the view's definition."""
    text = (TERRAFORM / "athena.tf").read_text()
    block = re.search(r"^locals \{\n.*?^\}\n", text, re.M | re.S)
    assert block
    name = "dmd_archive"
    config = block.group(0).replace("aws_glue_catalog_database.archive.name", "local.database_name")
    (tmp_path / "main.tf").write_text(f'locals {{\n  database_name = "{name}"\n}}\n\n{config}')
    views = {k: r for k, r in resources("aws_glue_catalog_table").items() if r["table_type"] == "VIRTUAL_VIEW"}
    expression = "jsonencode({" + ", ".join(f'{k} = "{r["view_original_text"]}"' for k, r in views.items()) + "})"
    result = subprocess.run(
        ["terraform", "console"], input=expression, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    texts = json.loads(json.loads(result.stdout.strip().splitlines()[-1]))
    assert set(texts) == set(views)
    prefix, suffix = "/* Presto View: ", " */"
    for resource, view_text in texts.items():
        assert view_text.startswith(prefix) and view_text.endswith(suffix), resource
        decoded = json.loads(base64.b64decode(view_text[len(prefix) : -len(suffix)], validate=True))
        view = views[resource]["name"]
        assert decoded["originalSql"].rstrip("\n") == view_file_body(view).replace("${database}", name)
        assert (decoded["catalog"], decoded["schema"]) == ("awsdatacatalog", name)
        declared = definition(resource)["columns"]
        assert decoded["columns"] == declared and set(decoded) <= DEFINITION_KEYS


# DuckDB's types as Athena names the same columns read from Parquet: (Hive, engine).
SCALARS = {
    "varchar": ("string", "varchar"),
    "integer": ("int", "integer"),
    "bigint": ("bigint", "bigint"),
    "boolean": ("boolean", "boolean"),
    "date": ("date", "date"),
    "timestamp with time zone": ("timestamp", "timestamp(3)"),
}


def athena_types(t: Any) -> tuple[str, str]:
    if t.id == "list":
        hive, engine = athena_types(t.child)
        return f"array<{hive}>", f"array({engine})"
    if t.id == "struct":
        fields = [(name, athena_types(child)) for name, child in t.children]
        hive = ",".join(f"{name}:{h}" for name, (h, _) in fields)
        engine = ", ".join(f'"{name}" {e}' for name, (_, e) in fields)
        return f"struct<{hive}>", f"row({engine})"
    if t.id == "decimal":
        return str(t).lower(), str(t).lower()
    return SCALARS[t.id]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample of every record type archived as Parquet by the pipeline."""
    root = tmp_path_factory.mktemp("lake")
    storage = LocalStorage(root)
    events, _ = sample(300, 3, batch_size=100)
    for event in events:
        assert not process_batch(
            decode_event(event), registry=REGISTRY, settings=Settings(format="parquet"), storage=storage
        ).failed
    return root


@pytest.mark.parametrize("view", VIEWS)
def test_declared_columns_are_what_the_view_sql_returns(lake: Path, view: str):
    con = open_lake(lake)
    result = con.sql(f'SELECT * FROM "{view}"')
    assert result.limit(1).fetchall(), view  # over archived rows, not only an empty shape
    returned = [(name.lower(), *athena_types(t)) for name, t in zip(result.columns, result.types, strict=True)]
    for fmt in FORMATS:
        (sd,) = resources("aws_glue_catalog_table")[f"{view}_{fmt}"]["storage_descriptor"]
        assert [c["name"] for c in sd["columns"]] == [name for name, _, _ in returned], fmt
    # types: the local query reads every format as Arrow, as Athena reads Parquet
    (sd,) = resources("aws_glue_catalog_table")[f"{view}_parquet"]["storage_descriptor"]
    assert [(c["name"], c["type"]) for c in sd["columns"]] == [(n, hive) for n, hive, _ in returned]
    declared = definition(f"{view}_parquet")["columns"]
    assert [(c["name"], c["type"]) for c in declared] == [(n, engine) for n, _, engine in returned]


@pytest.mark.parametrize("view", VIEWS)
def test_declared_types_are_trino_types(view: str):
    """Each declared type parses as a Trino type (sqlglot), the quoted row field names included."""
    import sqlglot

    for fmt in FORMATS:
        for column in definition(f"{view}_{fmt}")["columns"]:
            cast = sqlglot.parse_one(f"CAST(NULL AS {column['type']})", read="trino")
            assert cast.to.sql("trino").lower().replace(" ", "") == column["type"].lower().replace(" ", ""), column


def test_all_records_column_types_across_record_types():
    """A UNION ALL of int and bigint is bigint; of types Athena cannot union, generation fails."""
    from dmd.generator.targets.athena import ViewColumn, union_column

    narrow, wide = ViewColumn("n", "int", "integer", "a"), ViewColumn("n", "bigint", "bigint", "b")
    assert union_column((narrow, wide)) == wide and union_column((narrow, narrow)) == narrow
    with pytest.raises(ValueError, match="column n has types"):
        union_column((narrow, ViewColumn("n", "string", "varchar", "c")))
