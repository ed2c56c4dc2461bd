"""`dmd run` over `dmd sample --bad-fraction 0.05`: records in = records in containers +
records in error documents, each record in exactly one place, read back independently."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import fastavro
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dmd.tools.cli import main
from dmd.tools.sample import write_sample


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_every_sample_record_lands_in_exactly_one_place(tmp_path: Path, fmt: str):
    events = tmp_path / "events.jsonl"
    with events.open("w") as out:
        stats = write_sample(out, records=3000, seed=11, bad_fraction=0.05)
    lake = tmp_path / "lake"

    result = CliRunner().invoke(main, ["run", str(events), "--lake", str(lake), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert f"{stats.records} records" in result.output

    seen: Counter[str] = Counter()
    for path in (lake / "archive" / fmt).rglob(f"*.{fmt}"):
        if fmt == "parquet":
            rows = pq.read_table(path).to_pylist()
        else:
            rows = list(fastavro.reader(io.BytesIO(path.read_bytes())))
        assert rows, path
        seen.update(r["cdc"]["sequenceNumber"] for r in rows)
    in_containers = sum(seen.values())
    errors: Counter[str] = Counter()
    for path in (lake / "errors").glob("*.json"):
        doc = json.loads(path.read_text())
        assert len(doc["events"]) == len(doc["records"]) >= 1
        assert doc["error"]["message"]
        errors.update(r["sequenceNumber"] for r in doc["records"])

    assert in_containers + sum(errors.values()) == stats.records
    assert set(errors) == set(stats.bad_sequence_numbers)  # exactly the malformed ones failed
    assert max((seen | errors).values()) == 1  # no record in two places
    assert not set(seen) & set(errors)
