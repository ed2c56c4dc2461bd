"""A merged object records its sources' schema fingerprint, and a merge takes only sources of one
fingerprint: a container of another schema version stays where it is, for a later merge of its own."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, date, datetime, timedelta

import pytest

from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event
from dmd.ingest.pipeline import parse_batch
from dmd.lake import layout
from dmd.lake.formats import FORMATS
from dmd.lake.merge import merge
from dmd.lake.read import fingerprint_of, read_rows
from dmd.lake.storage import LocalStorage
from dmd.tools.sample import sample


def records() -> tuple[str, list]:
    """(a record type, its records of a sample): the type with the most, whatever the schemas."""
    event = {"Records": [r for e in sample(200, seed=5, batch_size=200)[0] for r in e["Records"]]}
    groups, _ = parse_batch(decode_event(event), registry=REGISTRY, settings=Settings())
    by_type: dict[str, list] = {}
    for (type_name, _), items in groups.items():
        by_type.setdefault(type_name, []).extend(p.record for p in items)
    return max(by_type.items(), key=lambda item: len(item[1]))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_merge_keeps_the_fingerprint_and_leaves_another_version_alone(tmp_path, fmt):
    type_name, rows = records()
    spec = REGISTRY[type_name]
    other = dataclasses.replace(spec, fingerprint="0" * 64)  # the same columns, another recorded version
    thirds = [rows[i::3] for i in range(3)]
    storage = LocalStorage(tmp_path / "lake")
    keys = []
    for i, (version, group) in enumerate(zip((spec, other, spec), thirds, strict=True)):
        arrival = datetime(2024, 5, 1, tzinfo=UTC) + timedelta(seconds=i)
        key = layout.data_key("archive", FORMATS[fmt], type_name, date(2024, 5, 1), arrival, layout.object_id(str(i)))
        storage.put(key, FORMATS[fmt].encode(version, group, FORMATS[fmt].default_codec), FORMATS[fmt].content_type)
        keys.append(key)
    sizes = [len(storage.get(k)) for k in keys]
    out = tmp_path / f"merged.{fmt}"
    merged = merge(fmt, storage, keys, sizes, out, None, os.urandom(16), False)
    assert merged.consumed == [keys[0], keys[2]]
    assert [key for key, _ in merged.excluded] == [keys[1]]
    body = out.read_bytes()
    assert fingerprint_of(body) == spec.fingerprint
    assert len(read_rows(body)) == len(thirds[0]) + len(thirds[2]) == merged.rows
