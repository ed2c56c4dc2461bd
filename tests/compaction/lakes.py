"""Lakes for the compaction tests: written by the real pipeline from `dmd sample` events, with
partial-batch retries replayed so some changes are archived twice."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event
from dmd.ingest.pipeline import process_batch
from dmd.lake import layout
from dmd.lake.read import read_rows
from dmd.lake.storage import Storage
from dmd.tools.sample import sample

# Changes per second slow enough that a sample's demand and notifications (dated by arrival) spread
# over weeks of partitions, as a lake that has run for a while does; events and sales have dates of
# their own anyway.
SPREAD_RATE = 0.0003


def write_lake(
    storage: Storage,
    fmt: str,
    records: int,
    seed: int,
    *,
    retries: int = 3,
    batch_size: int = 100,
    codec: str = "",
    rate: float = SPREAD_RATE,
) -> int:
    """Archive a sample; then re-archive the second half of `retries` batches as Lambda's partial
    retry would (same changes; a group whose records all fall in the retried half gets its old
    key again, the others new objects). Returns how many rows the retries archived. `rate`: the
    sample's changes per second (the default spreads them over weeks)."""
    settings = Settings(format=fmt, codec=codec)
    events, _ = sample(records, seed, batch_size=batch_size, rate=rate)
    batches = [decode_event(e) for e in events]
    twice = 0
    for batch in batches:
        assert not process_batch(batch, registry=REGISTRY, settings=settings, storage=storage).failed
    for batch in batches[:retries]:
        result = process_batch(batch[len(batch) // 2 :], registry=REGISTRY, settings=settings, storage=storage)
        twice += sum(d.records for d in result.data)
    return twice


def data_keys(storage: Storage, prefix: str = "archive") -> list[str]:
    return [k for k in storage.list(prefix + "/") if layout.parse_data_key(k, prefix)]


def canonical(row: Any) -> str:
    """A row as text that is equal for equal rows, whichever library read it."""
    return json.dumps(row, sort_keys=True, default=repr)


def rows_by_partition(storage: Storage, prefix: str = "archive") -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for key in data_keys(storage, prefix):
        part = layout.folder(key)
        out.setdefault(part, Counter()).update(canonical(r) for r in read_rows(storage.get(key)))
    return out


def lake_rows(storage: Storage, prefix: str = "archive") -> Counter[str]:
    total: Counter[str] = Counter()
    for counter in rows_by_partition(storage, prefix).values():
        total.update(counter)
    return total


def avro_rows_apache(body: bytes) -> Iterator[dict[str, Any]]:
    """Rows as Apache Avro's own Python reader reads them."""
    from avro.datafile import DataFileReader
    from avro.io import DatumReader

    with DataFileReader(io.BytesIO(body), DatumReader()) as reader:
        yield from reader


def registry_types() -> list[str]:
    return sorted(REGISTRY)


__all__ = ["Path"]
