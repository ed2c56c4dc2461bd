"""The `<type>_current` semantics, run in DuckDB on a lake with duplicates, out-of-order versions
and deletes, through the very view bodies the Athena DDL holds."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from infra_lake import T0, Version, demand_image, sale_image, write

from dmd.generated import REGISTRY
from dmd.generated.views import ALL_RECORDS_BODY, ALL_RECORDS_VIEW, CURRENT_VIEWS
from dmd.tools.query import open_lake, render_sql

ROOT = Path(__file__).resolve().parents[2]

A1 = Version(demand_image("A", quantity=1), "INSERT", "100", 0)
A2 = Version(demand_image("A", quantity=2), "MODIFY", "205", 5)
B1 = Version(demand_image("B"), "INSERT", "101", 0)
B2 = Version(demand_image("B"), "REMOVE", "300", 9)
# same change time: the longer sequence number is the later one ("1000" > "99", though "99" > "1000" as text)
C1 = Version(demand_image("C", status="requested"), "INSERT", "99", 1)
C2 = Version(demand_image("C", status="fulfilled"), "MODIFY", "1000", 1)
D1 = Version(demand_image("D"), "INSERT", "102", 0)
D2 = Version(demand_image("D"), "REMOVE", "400", 2)
D3 = Version(demand_image("D", quantity=5), "INSERT", "500", 3)  # re-created after its delete
E1 = Version(demand_image("E", quantity=3), "INSERT", "103", 0)  # only in an Avro container
F1 = Version(demand_image("F", quantity=1), "INSERT", "104", 0)
F2 = Version(demand_image("F", quantity=4, requested=T0 + timedelta(days=3)), "MODIFY", "600", 7)  # other partition


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    # files named so that later versions come first: order of files must not matter
    write(root, "demand", "parquet", "a-later", [A2, B2, C2, D3, F2])
    write(root, "demand", "parquet", "b-earlier", [A1, B1, C1, D1, D2, F1])
    write(root, "demand", "parquet", "c-duplicate", [A2, A1])  # Kinesis delivers at least once
    write(root, "demand", "avro", "d-avro", [E1, A2])
    write(root, "sale", "parquet", "s1", [Version(sale_image("S1", price="10.50"), "INSERT", "10", 0)])
    write(root, "sale", "avro", "s2", [Version(sale_image("S1", price="12.00"), "MODIFY", "11", 1)])
    return root


@pytest.fixture(scope="module")
def con(lake: Path):
    con = open_lake(lake)
    yield con
    con.close()


def test_current_keeps_the_latest_non_deleted_version_of_each_item(con):
    sql = 'SELECT "id", "quantity", "status", "cdc"."sequenceNumber" FROM demand_current ORDER BY 1'
    rows = con.sql(sql).fetchall()
    assert rows == [
        ("A", 2, "requested", "205"),
        ("C", 1, "fulfilled", "1000"),
        ("D", 5, "requested", "500"),
        ("E", 3, "requested", "103"),
        ("F", 4, "requested", "600"),
    ]


def test_current_reads_both_formats_and_keeps_decimals(con):
    assert con.sql('SELECT "id", "priceRange"."min", "partition_date" FROM sale_current').fetchall() == [
        ("S1", Decimal("12.00"), "2024-02-01")
    ]


def test_all_records_holds_every_archived_version(con):
    counts = dict(con.sql("SELECT type, count(*) FROM all_records GROUP BY ALL").fetchall())
    assert counts == {"demand": 5 + 6 + 2 + 2, "sale": 2}
    deleted = con.sql("SELECT id, operation FROM all_records WHERE isDeleted ORDER BY id").fetchall()
    assert deleted == [("B", "REMOVE"), ("D", "REMOVE")]
    days = con.sql("SELECT DISTINCT partition_date FROM demand ORDER BY 1").fetchall()
    assert days == [("2024-01-15",), ("2024-01-18",)]


def test_views_keep_the_arrow_schema_columns(con):
    for type_name, spec in REGISTRY.items():
        names = con.sql(f'SELECT * FROM "{type_name}_current"').columns
        assert names == [*spec.arrow_schema().names, "partition_date"]


def test_empty_and_missing_lake_gives_empty_views(tmp_path: Path):
    con = open_lake(tmp_path / "nothing-here")
    for view in [*CURRENT_VIEWS, ALL_RECORDS_VIEW, *REGISTRY]:
        assert con.execute(f'SELECT count(*) FROM "{view}"').fetchall() == [(0,)]


def test_athena_views_are_the_local_views():
    """One definition: the view bodies in generated/athena are those the local query runs."""
    for view, (_, body) in {**CURRENT_VIEWS, ALL_RECORDS_VIEW: ("", ALL_RECORDS_BODY)}.items():
        ddl = (ROOT / "generated" / "athena" / "views" / f"{view}.sql").read_text()
        match = re.search(r'CREATE OR REPLACE VIEW "\$\{database\}"\."(\w+)" AS\n(.*);\n\Z', ddl, re.S)
        assert match, view
        assert match.group(1) == view
        assert match.group(2) == body


def test_render_sql_fills_only_the_given_placeholders():
    text = "s3://${bucket}/${prefix}/x/partition_date=${partition_date}"
    assert render_sql(text, {"bucket": "b", "prefix": "p"}) == "s3://b/p/x/partition_date=${partition_date}"


def test_dmd_query_prints_a_table(lake: Path):
    from click.testing import CliRunner

    from dmd.tools.cli import main

    sql = "SELECT type, count(*) AS n FROM all_records GROUP BY ALL ORDER BY ALL"
    result = CliRunner().invoke(main, ["query", sql, "--lake", str(lake)])
    assert result.exit_code == 0, result.output
    assert "demand" in result.output and "15" in result.output
    bad = CliRunner().invoke(main, ["query", "SELECT nope FROM demand", "--lake", str(lake)])
    assert bad.exit_code == 1
