"""`dmd query` gives the same answers over an Avro lake and a Parquet lake of the same input, before
and after compaction, whichever reader reads the Avro containers (fastavro for small ones,
DataFusion for big ones)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from lakes import write_lake

from dmd.generated import REGISTRY
from dmd.generated.views import CURRENT_VIEWS
from dmd.lake.compact import Options, compact
from dmd.lake.storage import LocalStorage
from dmd.tools.query import open_lake

FASTAVRO, DATAFUSION = 1 << 40, 0  # `native_avro_bytes`: no container / every container read natively


def answers(root: Path, native_avro_bytes: int) -> dict[str, list[tuple]]:
    """Every row of every view, in a canonical order."""
    con = open_lake(root, native_avro_bytes=native_avro_bytes)
    views = [*REGISTRY, *CURRENT_VIEWS, "all_records"]
    return {v: sorted(con.execute(f'SELECT * FROM "{v}"').fetchall(), key=repr) for v in views}


@pytest.fixture(scope="module")
def lakes(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for fmt in ("parquet", "avro"):
        root = tmp_path_factory.mktemp(fmt)
        write_lake(LocalStorage(root), fmt, 600, seed=21, retries=1)
        out[fmt] = root
    return out


def test_avro_and_parquet_lakes_answer_the_same_before_and_after_compaction(lakes):
    for stage in ("before", "after"):
        if stage == "after":
            for root in lakes.values():
                assert compact(LocalStorage(root), Options(min_age=0, scan_all=True)).done
        parquet = answers(lakes["parquet"], FASTAVRO)
        assert sum(map(len, parquet.values())) > 600
        assert answers(lakes["avro"], FASTAVRO) == parquet, stage
        assert answers(lakes["avro"], DATAFUSION) == parquet, stage


def test_dmd_query_prints_the_same_for_both_formats(lakes):
    sql = 'SELECT type, count(*) AS n, max("changeTime") AS last FROM all_records GROUP BY ALL ORDER BY ALL'
    out = {
        fmt: subprocess.run(
            [sys.executable, "-c", "from dmd.tools.cli import main; main()", "query", "--lake", str(root), sql],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for fmt, root in lakes.items()
    }
    assert out["avro"] == out["parquet"] and all(t in out["avro"] for t in REGISTRY)


def test_datafusion_takes_glob_characters_in_the_lake_path_literally(lakes, tmp_path):
    """`lake[12]` is also a glob matching `lake1`: the containers of `lake[12]` are the ones read."""
    import shutil

    shutil.copytree(lakes["avro"], tmp_path / "lake[12]")
    (tmp_path / "lake1").mkdir()  # a decoy the glob would match: no rows
    assert answers(tmp_path / "lake[12]", DATAFUSION) == answers(lakes["avro"], FASTAVRO)
