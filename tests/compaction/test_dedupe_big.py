"""A retry archived after its twin was merged into an object big enough to be left alone: the
next compaction drops it (counted) and leaves the big object as it is, byte for byte."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from lakes import data_keys, rows_by_partition, write_lake

from dmd.lake import layout
from dmd.lake.compact import LEFT_ALONE, Options, compact
from dmd.lake.storage import LocalStorage


def _rows(fmt: str, body: bytes) -> tuple[object, list[dict]]:
    """(schema, rows) of a container."""
    if fmt == "avro":
        import fastavro

        reader = fastavro.reader(io.BytesIO(body))
        return reader.writer_schema, list(reader)
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(body))
    return table.schema, table.to_pylist()


def _write(fmt: str, path, schema, rows: list[dict]) -> None:
    if fmt == "avro":
        import fastavro

        with path.open("wb") as f:
            fastavro.writer(f, schema, rows, codec="deflate")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows, schema=schema), str(path), store_schema=False)  # small, as ours


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_retry_of_a_row_in_a_big_object_is_dropped_and_the_big_object_untouched(fmt, tmp_path):
    storage = LocalStorage(tmp_path)
    write_lake(storage, fmt, 3000, seed=5, retries=0)
    first = compact(storage, Options(min_age=0, scan_all=True))
    big_key = max((m for m in first.done), key=lambda m: m.rows).target
    big_body = storage.get(big_key)
    schema, big_rows = _rows(fmt, big_body)
    assert len(big_rows) >= 3
    target = int(len(big_body) / LEFT_ALONE)  # the big object is left alone as near the target

    # later: two small objects in its partition; one holds a retry of one of its rows
    twin = big_rows[1]
    new = [
        {**row, "cdc": {**row["cdc"], "sequenceNumber": f"9{n:020d}", "eventId": f"new-{n}"}}
        for n, row in enumerate(big_rows[:3])
    ]
    folder = tmp_path / layout.folder(big_key)
    small = [
        folder / f"2999-01-01-00-00-00-00000001-0000-0000-0000-000000000000.{fmt}",
        folder / f"2999-01-01-00-00-01-00000002-0000-0000-0000-000000000000.{fmt}",
    ]
    _write(fmt, small[0], schema, [new[0], twin, new[1]])
    _write(fmt, small[1], schema, [new[2]])
    partition = layout.folder(big_key)
    before = rows_by_partition(storage)
    assert any(c == 2 for c in before[partition].values())

    report = compact(storage, Options(min_age=0, scan_all=True, target_size=target))

    merge = next(m for m in report.done if m.partition.type_name in big_key and m.target.startswith(partition))
    assert sorted(merge.sources) == sorted(str(p.relative_to(tmp_path)) for p in small)
    assert merge.dropped == 1 and merge.rows == 3
    assert report.to_dict()["duplicates_dropped"] == 1
    assert storage.get(big_key) == big_body, "the big object is neither rewritten nor deleted"
    after = rows_by_partition(storage)
    assert after[partition] == Counter(set(before[partition]))  # each change once, values kept
    _, merged_rows = _rows(fmt, storage.get(merge.target))
    assert merged_rows == new  # the other rows in order, with identical values
    assert not any(p.exists() for p in small)
    assert set(data_keys(storage)) >= {big_key, merge.target}


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_a_row_sharing_only_the_sequence_number_with_a_big_object_is_kept(fmt, tmp_path):
    """Two changes with one sequence number (two streams) but different event ids are both kept."""
    storage = LocalStorage(tmp_path)
    write_lake(storage, fmt, 3000, seed=5, retries=0)
    first = compact(storage, Options(min_age=0, scan_all=True))
    big_key = max((m for m in first.done), key=lambda m: m.rows).target
    big_body = storage.get(big_key)
    schema, big_rows = _rows(fmt, big_body)
    target = int(len(big_body) / LEFT_ALONE)
    other = {**big_rows[0], "cdc": {**big_rows[0]["cdc"], "eventId": "another-stream"}}
    new = {**big_rows[1], "cdc": {**big_rows[1]["cdc"], "sequenceNumber": "9" * 20, "eventId": "new"}}
    folder = tmp_path / layout.folder(big_key)
    _write(fmt, folder / f"2999-01-01-00-00-00-00000001-0000-0000-0000-000000000000.{fmt}", schema, [other])
    _write(fmt, folder / f"2999-01-01-00-00-01-00000002-0000-0000-0000-000000000000.{fmt}", schema, [new])

    report = compact(storage, Options(min_age=0, scan_all=True, target_size=target))

    merge = next(m for m in report.done if m.target.startswith(layout.folder(big_key)))
    assert merge.dropped == 0 and merge.rows == 2
    assert _rows(fmt, storage.get(merge.target))[1] == [other, new]
    assert storage.get(big_key) == big_body
