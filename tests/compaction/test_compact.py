"""`dmd compact` on a local lake: every change once, every other row kept with its values, rows
in source order, the merged objects readable by fastavro, Apache Avro, pyarrow and DuckDB."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from lakes import avro_rows_apache, canonical, data_keys, lake_rows, rows_by_partition, write_lake

from dmd.generated import REGISTRY
from dmd.lake import layout
from dmd.lake.compact import Options, compact
from dmd.lake.read import read_rows
from dmd.lake.storage import LocalStorage
from dmd.tools.query import open_lake

FORMATS = ("parquet", "avro")
NOW = Options(min_age=0, scan_all=True)


def dmd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from dmd.tools.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module", params=FORMATS)
def lake(request, tmp_path_factory) -> tuple[str, Path, int]:
    root = tmp_path_factory.mktemp(f"lake-{request.param}")
    twice = write_lake(LocalStorage(root), request.param, 1500, seed=11)
    return request.param, root, twice


@pytest.fixture
def copy(lake, tmp_path) -> tuple[str, LocalStorage, int]:
    import shutil

    fmt, root, twice = lake
    shutil.copytree(root, tmp_path / "lake")
    return fmt, LocalStorage(tmp_path / "lake"), twice


def test_each_change_once_and_every_other_row_kept(copy):
    _fmt, storage, twice = copy
    before = rows_by_partition(storage)
    assert twice > 0 and sum(c for rows in before.values() for c in rows.values() if c > 1) > 0
    objects_before = len(data_keys(storage))

    report = compact(storage, NOW)

    after = rows_by_partition(storage)
    assert after == {part: Counter(set(rows)) for part, rows in before.items()}
    assert report.to_dict()["duplicates_dropped"] == sum(c - 1 for rows in before.values() for c in rows.values())
    assert len(data_keys(storage)) < objects_before / 2
    assert {t for t in REGISTRY} == {layout.parse_data_key(k, "archive").type_name for k in data_keys(storage)}
    assert not report.failed and not report.stuck
    assert not list(storage.list(layout.journal_prefix(layout.DEFAULT_STATE_PREFIX)))


def test_rows_keep_source_order_and_sources_are_concatenated_in_key_order(copy):
    _fmt, storage, _ = copy
    bodies = {k: storage.get(k) for k in data_keys(storage)}
    report = compact(storage, NOW)
    assert report.done
    for m in report.done:
        expected, seen = [], set()
        for key in sorted(m.sources):
            for row in read_rows(bodies[key]):
                text = canonical(row)
                if text not in seen:
                    seen.add(text)
                    expected.append(text)
        assert [canonical(r) for r in read_rows(storage.get(m.target))] == expected


def test_merged_objects_read_back_with_each_library(copy):
    fmt, storage, _ = copy
    report = compact(storage, NOW)
    target = max(report.done, key=lambda m: m.rows).target
    body = storage.get(target)
    if fmt == "avro":
        import fastavro

        rows = list(fastavro.reader(io.BytesIO(body)))
        assert len(list(avro_rows_apache(body))) == len(rows) == report.done[0].rows or rows
        assert [r["cdc"]["sequenceNumber"] for r in avro_rows_apache(body)] == [
            r["cdc"]["sequenceNumber"] for r in rows
        ]
    else:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(io.BytesIO(body)).metadata
        assert meta.num_row_groups == 1
        assert meta.row_group(0).column(0).statistics is not None  # large-file settings: statistics on
        assert meta.row_group(0).column(0).statistics.has_min_max


def test_query_and_current_views_see_the_same_lake(copy):
    _fmt, storage, _ = copy
    views = [f"{t}_current" for t in REGISTRY]
    sql = "SELECT count(*) FROM (SELECT DISTINCT * FROM all_records)"

    def state() -> tuple:
        con = open_lake(storage.root)
        return (
            con.execute(sql).fetchone(),
            {v: sorted(map(repr, con.execute(f"SELECT * FROM {v}").fetchall())) for v in views},
        )

    before = state()
    compact(storage, NOW)
    assert state() == before
    con = open_lake(storage.root)
    assert con.execute("SELECT count(*) FROM all_records").fetchone() == before[0]  # no duplicate left


def test_dry_run_changes_nothing(copy):
    _fmt, storage, _ = copy
    files = sorted(p for p in storage.root.rglob("*"))
    out = dmd("compact", "--lake", str(storage.root), "--all", "--min-age", "0", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "would merge" in out.stdout and " -> " in out.stdout
    assert sorted(p for p in storage.root.rglob("*")) == files


def test_young_and_big_objects_are_left_alone(copy):
    _fmt, storage, _ = copy
    keys = data_keys(storage)
    assert not compact(storage, Options(scan_all=True)).merges  # written just now: younger than 1 h
    assert data_keys(storage) == keys
    first = sorted(REGISTRY)[0]
    merged_first = compact(storage, Options(min_age=0, scan_all=True, types=frozenset({first}))).done
    sizes = {i.key: i.size for i in storage.list_info("archive/")}
    target = int(max(sizes[m.target] for m in merged_first) / 0.75)  # the biggest of them is "near the target"
    big = {k for k, size in sizes.items() if size >= target * 0.75}
    report = compact(storage, Options(min_age=0, scan_all=True, target_size=target))
    merged = {k for m in report.done for k in m.sources}
    assert big and merged and not big & merged
    assert big <= set(data_keys(storage))
    assert all(m.bytes_in <= target and len(m.sources) > 1 for m in report.done)


def test_cli_compacts_and_reports(copy):
    _fmt, storage, _ = copy
    rows = lake_rows(storage)
    twice = sum(rows.values()) - len(rows)
    out = dmd("compact", "--lake", str(storage.root), "--all", "--min-age", "0", "--target-size", "64MiB")
    assert out.returncode == 0, out.stderr
    assert f"{twice} duplicates dropped" in out.stdout
    assert lake_rows(storage) == Counter(set(rows))
    again = dmd("compact", "--lake", str(storage.root), "--all", "--min-age", "0")
    assert again.returncode == 0 and "into 0 in" in again.stdout


def _avro_blocks(body: bytes) -> list[bytes]:
    """Each block's compressed data as stored."""
    import fastavro

    from dmd.support.avrowire import read_long

    out = []
    for block in fastavro.block_reader(io.BytesIO(body)):
        _, pos = read_long(body, block.offset)
        size, pos = read_long(body, pos)
        out.append(body[pos : pos + size])
    return out


def test_avro_big_blocks_are_copied_compressed_and_another_codec_recompresses(tmp_path):
    import fastavro

    storage = LocalStorage(tmp_path)
    write_lake(storage, "avro", 400, seed=3, retries=0)
    key = data_keys(storage)[0]
    reader = fastavro.reader(io.BytesIO(storage.get(key)))
    schema, rows = reader.writer_schema, list(reader)
    folder = tmp_path / layout.folder(key)
    sources = []
    for n in range(3):  # big blocks: 3,000 rows each, distinct sequence numbers
        chunk = [
            {**rows[i % len(rows)], "cdc": {**rows[i % len(rows)]["cdc"], "sequenceNumber": f"{n:04d}{i:08d}"}}
            for i in range(3000)
        ]
        path = folder / f"2000-01-01-00-00-0{n}-{n:08d}-0000-0000-0000-000000000000.avro"
        with path.open("wb") as f:
            fastavro.writer(f, schema, chunk, codec="deflate", sync_interval=1 << 30)
        sources.append(path.read_bytes())
    report = compact(storage, Options(min_age=0, scan_all=True, types=frozenset({key.split("/")[2]})))
    merged = next(m for m in report.done if str(folder.name) in m.target)
    body = storage.get(merged.target)
    copied = set(_avro_blocks(body))
    assert all(block in copied for src in sources for block in _avro_blocks(src)), "big blocks copied as stored"
    assert len(list(fastavro.reader(io.BytesIO(body)))) == merged.rows

    other = LocalStorage(tmp_path / "null")
    write_lake(other, "avro", 300, seed=3, retries=1)
    before = lake_rows(other)
    report = compact(other, Options(min_age=0, scan_all=True, codec="null"))
    for m in report.done:
        body = other.get(m.target)
        assert fastavro.reader(io.BytesIO(body)).codec == "null"
        assert len(list(avro_rows_apache(body))) == m.rows
    assert lake_rows(other) == Counter(set(before))
