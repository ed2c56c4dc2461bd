"""`dmd replay`: error documents re-driven through the current schemas.

The "schema fix" is simulated by a first run with a registry that lacks one record type (its
records become error documents: "not a registered record type"), then a replay with the full
registry. After the replay every record is in exactly one place again, the replayed documents
are under `errors/replayed/` byte for byte, and a second replay changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections import Counter
from pathlib import Path
from types import MappingProxyType

import pytest
from batchgen import TYPES, ddb_item, kinesis_item
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lakecheck import assert_conserved, read_lake
from memstore import FailingStorage, MemoryStorage

from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event, read_lines
from dmd.ingest.pipeline import process_batch
from dmd.lake.storage import LocalStorage, StorageError
from dmd.tools.cli import main
from dmd.tools.replay import Source, locate, replay

SETTINGS = Settings(format="avro")
WITHOUT_SALE = MappingProxyType({k: v for k, v in REGISTRY.items() if k != "sale"})
KINDS = ("valid", "valid", "valid-remove", "invalid-json", "wrong-tag", "invalid-base64", "non-utf8", "unknown-type")
DDB_KINDS = ("valid", "valid-remove", "huge-change-time", "lone-surrogate", "missing-sequence-number", "wrong-tag")


def batch(seed: int, size: int = 20, kinds=KINDS, maker=kinesis_item) -> list:
    """`size` records of random kinds and types, and a valid sale record (which the first run
    does not know), so a replay has something to archive whatever the seed draws."""
    rng = random.Random(seed)
    items = [maker(rng.choice(kinds), rng.choice(TYPES), seed * 100 + i, rng) for i in range(size)]
    return [*items, maker("valid", "sale", seed * 100 + size, rng)]


def first_run(items: list, storage) -> None:
    """The archive before the fix: sale records are not a registered type yet."""
    result = process_batch(
        decode_event({"Records": [i.record for i in items]}), registry=WITHOUT_SALE, settings=SETTINGS, storage=storage
    )
    assert not result.failed


def snapshot(storage) -> dict[str, bytes]:
    """The lake's data and error documents (not the compactor's touched markers)."""
    return {k: storage.get(k) for k in storage.list("") if not k.startswith(SETTINGS.state_prefix + "/")}


def run_replay(storage, source: Source | None = None):
    return replay(
        source or Source(storage, "errors/", True), lake_storage=storage, registry=REGISTRY, settings=SETTINGS
    )


def test_replay_archives_what_now_parses_moves_documents_aside_and_is_idempotent(tmp_path):
    storage = LocalStorage(tmp_path)
    items = batch(1, size=30)
    first_run(items, storage)
    before = snapshot(storage)
    valid = {i.sequence_number for i in items if i.expect == "data"}  # a malformed sale record stays failing
    sale_docs = [
        k
        for k in storage.list("errors/")
        if b"'sale' is not a registered record type" in before[k]
        and json.loads(before[k])["records"][0]["sequenceNumber"] in valid
    ]
    assert sale_docs

    report = run_replay(storage)
    lake = read_lake(storage.list(""), storage.get, SETTINGS)
    assert_conserved(items, lake)  # sale records archived, malformed ones still in error documents
    assert report.archived == len(sale_docs)
    assert report.not_stored == 0
    for key in sale_docs:  # moved aside, byte for byte, only after its record was stored
        assert not (tmp_path / key).exists()
        assert storage.get(key.replace("errors/", "errors/replayed/", 1)) == before[key]
    still = [d for d in report.documents if d.note == "rewritten in place"]
    assert (
        len(still)
        == report.still_failing
        == len(before) - len(sale_docs) - len([k for k in before if k.startswith("archive/")])
    )

    after_first = snapshot(storage)
    second = run_replay(storage)
    assert second.archived == 0 and second.moved == 0
    assert set(snapshot(storage)) == set(after_first), "a second replay wrote new objects"
    assert {k: v for k, v in snapshot(storage).items() if k.startswith("archive/")} == {
        k: v for k, v in after_first.items() if k.startswith("archive/")
    }


def test_a_document_is_not_moved_while_its_records_are_not_stored():
    healthy = MemoryStorage()
    items = batch(2, size=24)
    first_run(items, healthy)
    before = dict(healthy.objects)

    broken = FailingStorage(lambda key: key.startswith("archive/avro/sale/"))
    broken.objects = dict(before)
    report = run_replay(broken)
    assert report.not_stored > 0
    for d in report.documents:
        if d.not_stored:
            assert not d.moved_to and broken.objects[d.key] == before[d.key], "moved before its records were safe"

    broken.fails = lambda key: False  # storage is back: the rerun completes
    again = run_replay(broken)
    assert again.not_stored == 0
    assert_conserved(items, read_lake(broken.objects, broken.get, SETTINGS))


def test_an_interrupted_move_is_finished_without_replaying_again():
    storage = MemoryStorage()
    items = batch(3, size=24)
    first_run(items, storage)
    stuck = FailingStorage(lambda key: True, fail_deletes=True)
    stuck.put = MemoryStorage.put.__get__(stuck)  # writes work, deletes fail
    stuck.objects = dict(storage.objects)
    report = run_replay(stuck)
    interrupted = [d for d in report.documents if "not removed" in d.note]
    assert interrupted and all(d.archived for d in interrupted)
    data_before = {k for k in stuck.objects if k.startswith("archive/")}

    stuck.fail_deletes = False
    again = run_replay(stuck)
    assert {d.key for d in again.documents if d.moved_to} >= {d.key for d in interrupted}
    assert again.archived == 0, "an interrupted move must not be replayed (duplicates)"
    assert {k for k in stuck.objects if k.startswith("archive/")} == data_before
    assert_conserved(items, read_lake(stuck.objects, stuck.get, SETTINGS))


def test_replay_of_dynamodb_streams_and_unreadable_records():
    storage = MemoryStorage()
    items = batch(4, size=24, kinds=DDB_KINDS, maker=ddb_item)
    first_run(items, storage)
    run_replay(storage)
    run_replay(storage)
    assert_conserved(items, read_lake(storage.objects, storage.get, SETTINGS))


def test_replay_of_a_line_that_was_not_utf8_keeps_it_byte_for_byte(tmp_path):
    storage = LocalStorage(tmp_path)
    line = b'{"Records": "\xff\xfe not an event"}'
    for sources in read_lines([line], "events.jsonl"):
        process_batch(sources, registry=REGISTRY, settings=SETTINGS, storage=storage)
    [key] = storage.list("errors/")
    before = storage.get(key)
    report = run_replay(storage)
    assert [d.note for d in report.documents] == ["rewritten in place"]
    assert storage.list("errors/replayed/") is not None
    import json

    doc = json.loads(storage.get(key))
    assert doc["records"][0]["encoding"] == "base64"
    assert doc["events"] == json.loads(before)["events"]


def test_an_unreadable_error_document_is_kept_and_reported(tmp_path):
    storage = LocalStorage(tmp_path)
    storage.put("errors/2024-01-01-00-00-00-x.json", b"{not json", "application/json")
    report = run_replay(storage)
    assert [d.note for d in report.documents] == ["not replayed: not JSON (JSONDecodeError)"]
    assert storage.get("errors/2024-01-01-00-00-00-x.json") == b"{not json"


TAMPERED = {
    "a JSON array": (b"[1, 2]", "a JSON list, not an object"),
    "a JSON string": (b'"errors"', "a JSON str, not an object"),
    "nested deeper than any parser goes": (b"[" * 100_000 + b"]" * 100_000, "not JSON (RecursionError)"),
    "events without records": (b'{"events": ["x"]}', "'events' and 'records' are not two lists of the same length"),
    "a null sequence number": (
        b'{"events": ["e30="], "records": [{"source": "kinesis", "sequenceNumber": null}]}',
        "records[0].sequenceNumber is not a string",
    ),
    "an event that is a number": (b'{"events": [1], "records": [{}]}', "events[0] is not a string"),
    "an unknown encoding": (
        b'{"events": ["x"], "records": [{"encoding": "rot13"}]}',
        "records[0].encoding is not one of kinesis-data, text, base64",
    ),
}


@pytest.mark.parametrize("kind", sorted(TAMPERED))
def test_a_tampered_document_is_reported_and_kept_while_every_other_one_is_replayed(kind):
    body, reason = TAMPERED[kind]
    storage = MemoryStorage()
    items = batch(3, 12)
    first_run(items, storage)
    documents = [k for k in storage.list("errors/")]
    assert documents
    storage.put("errors/0000-tampered.json", body, "application/json")
    report = run_replay(storage)
    notes = {d.key: d.note for d in report.documents}
    assert notes.pop("errors/0000-tampered.json") == f"not replayed: {reason}"
    assert storage.get("errors/0000-tampered.json") == body  # left in place
    assert all(d.moved_to or d.note == "rewritten in place" for d in report.documents if d.key in notes)
    assert report.records == sum(len(d["records"]) for d in map(_doc, documents, [storage] * len(documents)))


def _doc(key, storage):
    import json

    moved = key.replace("errors/", "errors/replayed/", 1)
    return json.loads(storage.get(moved if moved in storage.objects else key))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), ddb=st.booleans(), size=st.integers(1, 16))
def test_replay_conserves_every_record(seed, ddb, size):
    storage = MemoryStorage()
    items = batch(seed, size, kinds=DDB_KINDS if ddb else KINDS, maker=ddb_item if ddb else kinesis_item)
    first_run(items, storage)
    run_replay(storage)
    after = dict(storage.objects)
    assert_conserved(items, read_lake(storage.objects, storage.get, SETTINGS))
    run_replay(storage)
    assert storage.objects.keys() == after.keys()


# --- the command, on local disk and on S3 (moto) ---------------------------------------------------


def test_cli_replay_on_a_local_lake(tmp_path):
    lake = tmp_path / "lake"
    storage = LocalStorage(lake)
    items = batch(5, size=20)
    first_run(items, storage)
    result = CliRunner().invoke(main, ["replay", str(lake / "errors"), "--lake", str(lake), "--format", "avro"])
    assert result.exit_code == 0, result.output
    assert "archived" in result.output and "moved aside" in result.output
    assert_conserved(items, read_lake(storage.list(""), storage.get, SETTINGS))


def test_cli_replay_on_s3(s3, moto_server, monkeypatch):
    from dmd.lake.storage import S3Storage, s3_client

    storage = S3Storage("dmd-test", "lake", client=s3_client(moto_server.url))
    items = batch(6, size=20)
    first_run(items, storage)
    args = ["replay", "s3://dmd-test/lake/errors", "--lake", "s3://dmd-test/lake", "--format", "avro"]
    args += ["--s3-endpoint", moto_server.url]
    for _ in range(2):  # twice: harmless
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
    keys = list(storage.list(""))
    assert any(k.startswith("errors/replayed/") for k in keys)
    assert_conserved(items, read_lake(keys, storage.get, SETTINGS))


def test_locate_resolves_sources_inside_and_outside_the_lake(tmp_path):
    lake = tmp_path / "lake"
    (lake / "errors").mkdir(parents=True)
    inside = locate(str(lake / "errors"), str(lake), LocalStorage(lake), None, None)
    assert (inside.prefix, inside.same_as_lake) == ("errors/", True)
    outside = locate(str(tmp_path / "elsewhere"), str(lake), LocalStorage(lake), None, None)
    assert (outside.prefix, outside.same_as_lake) == ("", False)
    s3_inside = locate("s3://b/base/errors", "s3://b/base", MemoryStorage(), None, None)
    assert (s3_inside.prefix, s3_inside.same_as_lake) == ("errors/", True)
    with pytest.raises(StorageError):
        LocalStorage(lake).get("../x")
    assert Path(lake).is_dir()


def test_replay_of_the_whole_lake_moves_documents_beside_themselves_and_skips_replayed_ones():
    storage = MemoryStorage()
    items = batch(8, size=20)
    first_run(items, storage)
    whole = Source(storage, "", True)
    report = run_replay(storage, whole)
    assert report.moved and all(d.moved_to.startswith("errors/replayed/") for d in report.documents if d.moved_to)
    again = run_replay(storage, whole)
    assert again.archived == 0 and again.moved == 0
    assert not [k for k in storage.objects if "replayed/replayed" in k]
    assert_conserved(items, read_lake(storage.objects, storage.get, SETTINGS))


def test_a_new_document_under_the_key_of_a_replayed_one_is_replayed_not_dropped():
    storage = MemoryStorage()
    items = batch(9, size=20)
    first_run(items, storage)
    report = run_replay(storage)
    moved = next(d for d in report.documents if d.moved_to)
    storage.objects[moved.key] = storage.objects[moved.moved_to].replace(b'"timestamp"', b'"timestamp" ', 1)
    again = run_replay(storage)
    [outcome] = [d for d in again.documents if d.key == moved.key]
    assert outcome.records == 1 and outcome.moved_to  # processed again (same keys), then moved


# --- a replay killed at any point and run again (issue 10: 20,113 rows for 20,000 records) -----------


class Killed(BaseException):
    """The process dies here: nothing after this storage call happens (not an Exception, so no
    handler in the code under test can catch it)."""


class DyingStorage(MemoryStorage):
    """Dies before its `life`-th put or delete; the objects written until then stay."""

    def __init__(self, objects: dict[str, bytes], life: int) -> None:
        super().__init__()
        self.objects.update(objects)
        self.life = life

    def _tick(self) -> None:
        self.life -= 1
        if self.life < 0:
            raise Killed

    def put(self, key: str, body: bytes, content_type: str) -> str:
        self._tick()
        return super().put(key, body, content_type)

    def delete(self, key: str) -> None:
        self._tick()
        super().delete(key)


def _held_out(storage, records: int, seed: int) -> Counter:
    """A sample archived before any type was registered (every record in an error document),
    and the rows the lake must hold once replayed: those of the same sample archived directly."""
    from dmd.tools.sample import sample

    events, _ = sample(records, seed, batch_size=50)
    reference = MemoryStorage()
    for event in events:
        process_batch(decode_event(event), registry=MappingProxyType({}), settings=SETTINGS, storage=storage)
        process_batch(decode_event(event), registry=REGISTRY, settings=SETTINGS, storage=reference)
    return _rows(reference)


def _rows(storage) -> Counter:
    """Every row of every container, as text: a row archived twice counts twice."""
    from lakecheck import read_container

    keys = [k for k in storage.list(SETTINGS.prefix + "/")]
    return Counter(
        json.dumps(row, default=str, sort_keys=True) for k in keys for row in read_container(k, storage.get(k))
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), kills=st.lists(st.integers(0, 120), min_size=1, max_size=3))
def test_a_replay_killed_anywhere_and_run_again_archives_every_record_once(seed, kills):
    storage = MemoryStorage()
    expected = _held_out(storage, 60, seed)
    for life in kills:  # one or more runs, each killed before its life-th write or delete
        dying = DyingStorage(storage.objects, life)
        with contextlib.suppress(Killed):
            run_replay(dying)
        storage.objects = dying.objects
    run_replay(storage)  # then one to completion
    assert _rows(storage) == expected


def test_a_replay_process_killed_with_sigkill_and_run_again_archives_every_record_once(tmp_path):
    """The same with real processes: `dmd replay` killed with SIGKILL at random moments."""
    import os
    import signal
    import subprocess
    import sys
    import time

    lake = tmp_path / "lake"
    storage = LocalStorage(lake)
    expected = _held_out(storage, 1500, 11)
    command = [sys.executable, "-c", "from dmd.tools.cli import main; main()", "replay", str(lake / "errors")]
    command += ["--lake", str(lake), "--format", SETTINGS.format]
    rng = random.Random(7)
    replayed = lake / "errors" / "replayed"
    for _ in range(4):  # each run killed once a random share of what is left has been moved aside
        left = sum(1 for _ in (lake / "errors").glob("*.json"))
        moved = sum(1 for _ in replayed.glob("*.json")) if replayed.exists() else 0
        target, deadline = moved + rng.randint(0, max(left - 1, 0)), time.monotonic() + 60
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while process.poll() is None and time.monotonic() < deadline:
            if replayed.exists() and sum(1 for _ in replayed.glob("*.json")) >= target:
                break
            time.sleep(0.002)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert _rows(storage) == expected
