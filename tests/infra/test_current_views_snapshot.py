"""The `<type>_current` views with rows of a table export (SNAPSHOT, stamped with the export time)
among the stream's rows, in DuckDB, through the very view bodies the Athena DDL holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from infra_lake import Version, demand_image, write

from dmd.tools.query import open_lake

SNAP = 5  # the export time, minutes after T0
# older stream rows, then the snapshot: the snapshot is the item as it was at the export
A = [
    Version(demand_image("A", quantity=1), "INSERT", "100", 1),
    Version(demand_image("A", quantity=2), "SNAPSHOT", "f.json.gz:1", SNAP),
]
# the snapshot, then a later stream change: the stream's row
B = [
    Version(demand_image("B", quantity=2), "SNAPSHOT", "f.json.gz:2", SNAP),
    Version(demand_image("B", quantity=3), "MODIFY", "200", 7),
]
# a stream change at the very export time: no older than the snapshot, so it wins the tie
C = [
    Version(demand_image("C", quantity=2), "SNAPSHOT", "f.json.gz:3", SNAP),
    Version(demand_image("C", quantity=4), "MODIFY", "9", SNAP),
]
# deleted after the export: gone
D = [Version(demand_image("D"), "SNAPSHOT", "f.json.gz:4", SNAP), Version(demand_image("D"), "REMOVE", "300", 8)]
# only in the export
E = [Version(demand_image("E", quantity=6), "SNAPSHOT", "f.json.gz:10", SNAP)]


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("lake")
    write(root, "demand", "parquet", "stream", [v for item in (A, B, C, D) for v in item if v.operation != "SNAPSHOT"])
    write(
        root, "demand", "parquet", "export", [v for item in (A, B, C, D, E) for v in item if v.operation == "SNAPSHOT"]
    )
    con = open_lake(root)
    yield con
    con.close()


def test_current_takes_the_newest_of_snapshot_and_stream_rows(con):
    sql = 'SELECT "id", "quantity", "cdc"."operation" FROM demand_current ORDER BY 1'
    assert con.sql(sql).fetchall() == [
        ("A", 2, "SNAPSHOT"),
        ("B", 3, "MODIFY"),
        ("C", 4, "MODIFY"),
        ("E", 6, "SNAPSHOT"),
    ]
