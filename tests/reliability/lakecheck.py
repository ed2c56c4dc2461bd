"""Read a lake back with independent readers and account for every input record."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import fastavro
import pyarrow.parquet as pq

from dmd.ingest.config import Settings


@dataclass
class ErrorEntry:
    key: str
    text: str
    encoding: str
    source: str
    sequence_number: str
    message: str


@dataclass
class Lake:
    keys: list[str]
    data_keys: list[str]
    error_keys: list[str]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # data key -> rows
    errors: list[ErrorEntry] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)

    @property
    def data_counts(self) -> Counter[str]:
        return Counter(r["cdc"]["sequenceNumber"] for rows in self.rows.values() for r in rows)

    @property
    def error_counts(self) -> Counter[str]:
        return Counter(e.sequence_number for e in self.errors if e.sequence_number)

    def rows_by_sequence(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for key, rows in self.rows.items():
            for r in rows:
                out.setdefault(r["cdc"]["sequenceNumber"], []).append((key, r))
        return out


def read_container(key: str, body: bytes) -> list[dict[str, Any]]:
    if key.endswith(".avro"):
        return list(fastavro.reader(io.BytesIO(body)))
    if key.endswith(".parquet"):
        return pq.read_table(io.BytesIO(body)).to_pylist()
    raise AssertionError(f"unexpected data object {key}")


def read_lake(keys: Iterable[str], get: Any, settings: Settings) -> Lake:
    """`get(key) -> bytes`; every key must sit under the data prefix or the errors prefix."""
    keys = sorted(keys)
    data_keys, error_keys = [], []
    for key in keys:
        assert ".." not in key.split("/") and not key.startswith("/"), key
        if settings.state_prefix and key.startswith(settings.state_prefix + "/"):
            continue  # the compactor's touched markers: not data
        if key.startswith(settings.prefix + "/"):
            data_keys.append(key)
        elif key.startswith(settings.errors_prefix + "/"):
            error_keys.append(key)
        else:
            raise AssertionError(f"key {key!r} is outside both prefixes")
    lake = Lake(keys, data_keys, error_keys)
    for key in data_keys:
        assert key.startswith(f"{settings.prefix}/{settings.format}/"), key
        lake.rows[key] = read_container(key, get(key))
        assert lake.rows[key], f"empty container {key}"
    for key in error_keys:
        if key.startswith(settings.errors_prefix + "/replayed/"):  # moved aside by `dmd replay`
            lake.replayed.append(key)
            continue
        doc = json.loads(get(key))
        assert set(doc) >= {"timestamp", "error", "events", "records"}, key
        assert len(doc["events"]) == len(doc["records"]) >= 1, key
        for text, meta in zip(doc["events"], doc["records"], strict=True):
            lake.errors.append(
                ErrorEntry(key, text, meta["encoding"], meta["source"], meta["sequenceNumber"], doc["error"]["message"])
            )
    return lake


def assert_conserved(items: Sequence[Any], lake: Lake, *, allow_missing: set[str] = frozenset()) -> dict[str, int]:
    """Every item in exactly one place: one row of one container, or one error-document entry
    that keeps its original text byte for byte. Returns counts for the report."""
    data = lake.data_counts
    errs = lake.error_counts
    unmatched = [e for e in lake.errors if not e.sequence_number]
    counts = Counter()
    for item in items:
        seq = item.sequence_number
        if not seq:
            # identical unreadable records may repeat: each takes one entry, none may be left over
            match = next((e for e in unmatched if item.original_matches(e.text, e.encoding)), None)
            assert match is not None, f"{item.kind}: no error entry holds this unreadable record"
            unmatched.remove(match)
            counts["error"] += 1
            continue
        if seq in allow_missing and data[seq] + errs[seq] == 0:
            counts["reported"] += 1
            continue
        places = data[seq] + errs[seq]
        assert places == 1, f"{item.kind} {seq}: in {data[seq]} container rows and {errs[seq]} error entries"
        if data[seq]:
            assert item.expect == "data", f"{item.kind} {seq} was archived but is malformed"
            counts["data"] += 1
        else:
            assert item.expect == "error", f"{item.kind} {seq} is valid but went to an error document"
            [entry] = [e for e in lake.errors if e.sequence_number == seq]
            assert item.original_matches(entry.text, entry.encoding), f"{item.kind} {seq}: original text changed"
            counts["error"] += 1
    assert not unmatched, f"error entries of no input record: {unmatched[:1]}"
    known = {i.sequence_number for i in items}
    assert set(data) <= known and set(errs) <= known, "rows or error entries of records never sent"
    return dict(counts)
