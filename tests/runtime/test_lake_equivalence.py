"""The lake written from a fixed input stays byte for byte what it was when the digests in
tests/data/equivalence were recorded: a refactoring of the runtime or the generator changes no
key and no byte of a data object, and no error document apart from its processing time.

The input is a committed file (not `dmd sample` output), so a change to the sample generator
does not move it. A deliberate change of the lake (a new key layout, another encoding) records
new digests with `python tests/runtime/test_lake_equivalence.py` and says why in its commit.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dmd.lake.layout import DEFAULT_STATE_PREFIX

DATA = Path(__file__).resolve().parents[1] / "data" / "equivalence"
FORMATS = ("parquet", "avro")


def digest(lake: Path) -> dict[str, str]:
    """sha256 per key: data objects as written, except what differs between two runs of the same
    code: an error document's `timestamp` (when the batch was processed) and, in an Avro
    container, the sync marker (16 random bytes) and the compressed bytes (ISA-L's deflate does
    not always compress the same block to the same bytes); the header, each block's record count
    and its bytes once decompressed are compared."""
    out = {}
    for path in sorted(p for p in lake.rglob("*") if p.is_file() and not is_state(p.relative_to(lake))):
        body = path.read_bytes()
        if path.suffix == ".json":
            doc = json.loads(body)
            doc.pop("timestamp", None)
            # a message may list the registered types ("not a registered record type"), which a new
            # schema changes; every message is pinned by tests/generator/test_generated_decode_errors.py
            doc["error"].pop("message", None)
            body = json.dumps(doc, sort_keys=True).encode()
        elif path.suffix == ".avro":
            body = _avro_content(path)
        out[path.relative_to(lake).as_posix()] = hashlib.sha256(body).hexdigest()
    return out


def is_state(relative: Path) -> bool:
    """The compactor's state (touched markers): not part of the lake of data and error documents."""
    return relative.parts[0] == DEFAULT_STATE_PREFIX


def _avro_content(path: Path) -> bytes:
    import fastavro

    with path.open("rb") as f:
        reader = fastavro.block_reader(f)
        parts = [json.dumps(reader.metadata, sort_keys=True).encode()]
        parts += [str(block.num_records).encode() + block.bytes_.getvalue() for block in reader]
    return b"\0".join(parts)


def write_lake(lake: Path, fmt: str) -> dict[str, str]:
    dmd = [sys.executable, "-c", "from dmd.tools.cli import main; main()"]
    subprocess.run(
        [*dmd, "run", str(DATA / "events.jsonl"), "--lake", str(lake), "--format", fmt], check=True, capture_output=True
    )
    return digest(lake)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_same_input_writes_the_same_lake(tmp_path: Path, fmt: str):
    expected = json.loads((DATA / f"{fmt}.json").read_text())
    actual = write_lake(tmp_path / "lake", fmt)
    assert sorted(actual) == sorted(expected), "keys differ"
    changed = [key for key in expected if actual[key] != expected[key]]
    assert not changed, f"{len(changed)} objects differ, e.g. {changed[:3]}"


if __name__ == "__main__":  # record new digests (a deliberate change of the lake)
    import tempfile

    for fmt in FORMATS:
        with tempfile.TemporaryDirectory() as tmp:
            digests = write_lake(Path(tmp) / "lake", fmt)
            (DATA / f"{fmt}.json").write_text(json.dumps(digests, indent=0, sort_keys=True) + "\n")
