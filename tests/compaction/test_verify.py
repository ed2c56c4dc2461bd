"""The read-back check (issue 12.4): a merged object that does not hold exactly the rows written
(one row fewer, or a sequence number changed) fails the merge; the object is deleted and every
source stays. Also: sources that are not what their headers say are never merged."""

from __future__ import annotations

import io
import itertools
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from lakes import data_keys, rows_by_partition, write_lake

from dmd.lake import layout
from dmd.lake.compact import Options, compact
from dmd.lake.storage import LocalStorage

NOW = Options(min_age=0, scan_all=True)


def _avro(body: bytes, change: Callable[[list[dict]], list[dict]]) -> bytes:
    import fastavro

    reader = fastavro.reader(io.BytesIO(body))
    out = io.BytesIO()
    fastavro.writer(out, reader.writer_schema, change(list(reader)), codec=reader.codec)
    return out.getvalue()


def _parquet(body: bytes, change: Callable[[list[dict]], list[dict]]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(body))
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(change(table.to_pylist()), schema=table.schema), out)
    return out.getvalue()


def one_fewer(rows: list[dict]) -> list[dict]:
    return rows[:-1]


def renumbered(rows: list[dict]) -> list[dict]:
    """Same count, the last row's sequence number changed."""
    last = rows[-1]
    return [*rows[:-1], {**last, "cdc": {**last["cdc"], "sequenceNumber": last["cdc"]["sequenceNumber"] + "0"}}]


class DamagingStorage(LocalStorage):
    """Stores every merged object changed by `change` (what a faulty store or merge could do)."""

    def __init__(self, root: Path, fmt: str, change: Callable[[list[dict]], list[dict]]) -> None:
        super().__init__(root)
        self.rewrite = {"avro": _avro, "parquet": _parquet}[fmt]
        self.change = change

    def put_file(self, key, path, content_type):
        path.write_bytes(self.rewrite(path.read_bytes(), self.change))
        return super().put_file(key, path, content_type)


@pytest.fixture(scope="module", params=["parquet", "avro"])
def lake(request, tmp_path_factory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp(f"verify-{request.param}")
    write_lake(LocalStorage(root), request.param, 300, seed=4, retries=1)
    return request.param, root


@pytest.mark.parametrize("change", [one_fewer, renumbered])
def test_a_merged_object_not_as_written_fails_and_every_source_stays(lake, change, tmp_path):
    fmt, root = lake
    shutil.copytree(root, tmp_path / "lake")
    storage = DamagingStorage(tmp_path / "lake", fmt, change)
    keys, before = data_keys(storage), rows_by_partition(storage)

    report = compact(storage, NOW)

    assert report.merges and len(report.failed) == len(report.merges)
    assert all("read back" in m.error for m in report.failed)
    assert data_keys(storage) == keys  # every source kept, no merged object left
    assert rows_by_partition(storage) == before
    assert not list(storage.list(layout.journal_prefix(layout.DEFAULT_STATE_PREFIX)))
    again = compact(LocalStorage(tmp_path / "lake"), NOW)  # a sound store: merged then
    assert again.done and not again.failed


def test_avro_source_with_a_wrong_row_count_is_not_merged(tmp_path):
    """A block whose header counts one row fewer than it holds: appended to a merged block, its
    extra bytes would decode as another row and shift the rest. The read-back sees it."""
    import fastavro

    from dmd.support.avrowire import read_long

    storage = LocalStorage(tmp_path)
    write_lake(storage, "avro", 300, seed=4, retries=0)
    before = rows_by_partition(storage)
    keys = data_keys(storage)
    counts = {k: len(list(fastavro.reader(io.BytesIO(storage.get(k))))) for k in keys}
    # not the last of its partition: other sources' rows follow its bytes in the merged block
    key = next(k for k, nxt in itertools.pairwise(keys) if counts[k] >= 2 and layout.folder(k) == layout.folder(nxt))
    body = storage.get(key)
    block = next(iter(fastavro.block_reader(io.BytesIO(body))))
    count, pos = read_long(body, block.offset)
    assert count < 64  # one varint byte: the same length after the change
    (tmp_path / key).write_bytes(body[: block.offset] + bytes([(count - 1) << 1]) + body[pos:])
    before[layout.folder(key)] = rows_by_partition(storage)[layout.folder(key)]  # as readers see it

    report = compact(storage, NOW)

    assert [m for m in report.failed if key in m.sources]
    assert key in data_keys(storage)
    assert rows_by_partition(storage) == before  # no duplicates in this lake: every row as it was
