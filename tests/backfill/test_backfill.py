"""`dmd backfill` on local exports written as AWS writes them (dmd.tools.tableexport): both kinds,
gzip, a manifest of several data files, items that fail validation; the lake read back by
pyarrow, fastavro and DuckDB (the generated views)."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import fastavro
import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from containers import encoded, renumbered, rows_of
from crashing import ReadingStorage

from dmd.generated import REGISTRY
from dmd.ingest import backfill as backfill_module
from dmd.ingest.backfill import Plan, backfill_file, open_export
from dmd.ingest.config import Settings
from dmd.ingest.envelope import read_lines
from dmd.ingest.export import ExportError, read_files, read_summary
from dmd.ingest.pipeline import process_batch
from dmd.lake import identity, layout
from dmd.lake.bigfile import PartitionFile
from dmd.lake.compact import LEFT_ALONE, Options, compact
from dmd.lake.errordoc import ErrorDocument
from dmd.lake.formats import FINGERPRINT_KEY
from dmd.lake.storage import LocalStorage
from dmd.tools.cli import main
from dmd.tools.query import open_lake
from dmd.tools.sample import sample
from dmd.tools.tableexport import FULL, INCREMENTAL, NEW_IMAGE, write_export

RECORDS = 1200


def export_dir(root: Path, stats) -> Path:
    return root / stats.folder


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(main, ["backfill", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def data_rows(lake: Path, fmt: str = "parquet") -> list[dict]:
    rows = []
    for path in sorted((lake / "archive" / fmt).rglob(f"*.{fmt}")):
        if fmt == "parquet":
            rows += pq.read_table(path).to_pylist()
        else:
            with path.open("rb") as f:
                rows += list(fastavro.reader(f))
    return rows


def error_documents(lake: Path) -> list[ErrorDocument]:
    folder = lake / "errors"
    return [ErrorDocument.from_json(p.read_bytes()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def lines_of(path: Path) -> list[bytes]:
    with gzip.open(path, "rb") as f:
        return f.read().splitlines()


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("export")
    stats = write_export(
        LocalStorage(root),
        "exports",
        records=RECORDS,
        seed=5,
        kind=FULL,
        files=5,
        bad_fraction=0.03,
        unreadable_line=True,
    )
    return root, stats


def test_the_export_is_laid_out_as_aws_writes_it(full):
    root, stats = full
    folder = export_dir(root, stats)
    assert {p.name for p in folder.iterdir()} >= {"manifest-summary.json", "manifest-files.json", "_started", "data"}
    summary = json.loads((folder / "manifest-summary.json").read_text())
    assert summary["outputFormat"] == "DYNAMODB_JSON" and summary["exportArn"].endswith("/export/" + stats.export_id)
    assert summary["manifestFilesS3Key"] == f"{stats.folder}manifest-files.json"
    entries = [json.loads(line) for line in (folder / "manifest-files.json").read_text().splitlines()]
    assert len(entries) == stats.files > 1
    for e in entries:
        assert set(e) == {"itemCount", "md5Checksum", "etag", "dataFileS3Key"}
        body = (root / e["dataFileS3Key"]).read_bytes()
        assert body[:2] == b"\x1f\x8b"  # gzip
        lines = lines_of(root / e["dataFileS3Key"])
        assert len(lines) == e["itemCount"]
    good = [json.loads(line) for e in entries for line in lines_of(root / e["dataFileS3Key"]) if b"cut off" not in line]
    assert all(set(d) == {"Item"} for d in good)
    assert sum(e["itemCount"] for e in entries) == summary["itemCount"] == stats.items


def test_a_full_export_is_archived_as_snapshot_rows_at_the_export_time(full, tmp_path):
    root, stats = full
    lake = tmp_path / "lake"
    out = run_cli(str(export_dir(root, stats)), "--lake", str(lake), "--workers", "2")
    assert f"export {stats.export_id}" in out
    rows = data_rows(lake)
    assert Counter(r["type"] for r in rows) == stats.by_type
    assert {r["cdc"]["operation"] for r in rows} == {"SNAPSHOT"}
    assert {r["cdc"]["changeTime"] for r in rows} == {stats.export_time}
    assert not any(r["isDeleted"] for r in rows)
    # one row per exported item, and the data files' lines are the rows' identities
    seqs = [r["cdc"]["sequenceNumber"] for r in rows]
    assert len(seqs) == len(set(seqs))
    # every bad item is in an error document with its line as the export has it
    docs = error_documents(lake)
    assert sum(len(d.entries) for d in docs) == len(stats.bad)
    by_position = {(e.shard, e.sequence_number): e.text for d in docs for e in d.entries}
    for key, line, kind in stats.bad:
        rel = key[key.index("AWSDynamoDB/") :]
        text = by_position[(rel, f"{rel.rpartition('/')[2]}:{line}")]
        assert text.encode() == lines_of(root / key)[line - 1], kind
    assert {d.entries[0].source for d in docs} == {"export"}
    messages = " ".join(d.message for d in docs)
    assert "not a registered record type" in messages and "not an item of a DynamoDB JSON export" in messages
    # fields are named where the export's line has them
    assert "Item.type: 'no-such-type'" in messages and " record in Item: " in messages
    assert "dynamodb." not in messages


def _groups(lake: Path) -> dict[tuple[str, str, str], list[int]]:
    """(data file, type, partition) -> sizes of its objects; an object's rows name their data file."""
    out: dict[tuple[str, str, str], list[int]] = {}
    for path in (lake / "archive").rglob("*.parquet"):
        files = {
            s.rpartition(":")[0]
            for s in pq.read_table(path).column("cdc").combine_chunks().field("sequenceNumber").to_pylist()
        }
        assert len(files) == 1, path  # one data file per object
        out.setdefault((files.pop(), path.parts[-3], path.parts[-2]), []).append(path.stat().st_size)
    return out


def test_objects_hold_a_data_files_partition_up_to_the_target_size(full, tmp_path):
    root, stats = full
    lake = tmp_path / "lake"
    run_cli(str(export_dir(root, stats)), "--lake", str(lake), "--workers", "1", "--buffer-rows", "100")
    # below the target: one object per (data file, type, partition), however many batches it took
    assert all(len(sizes) == 1 for sizes in _groups(lake).values())
    lake = tmp_path / "small"
    target = 6 * 1024
    run_cli(
        str(export_dir(root, stats)),
        "--lake",
        str(lake),
        "--workers",
        "1",
        "--buffer-rows",
        "100",
        "--target-size",
        str(target),
    )
    groups = _groups(lake)
    split = [sorted(sizes) for sizes in groups.values() if len(sizes) > 1]
    assert split, "some partition of a data file should outgrow the target"
    # cut when a part reaches the target: every part but the last is at least the target
    assert all(size >= target for sizes in split for size in sizes[1:])
    assert Counter(r["type"] for r in data_rows(lake)) == stats.by_type


def test_rerun_writes_the_same_objects_and_skips_done_files(full, tmp_path):
    root, stats = full
    lake = tmp_path / "lake"
    run_cli(str(export_dir(root, stats)), "--lake", str(lake), "--workers", "1")
    first = {p: p.read_bytes() for p in (lake / "archive").rglob("*.parquet")}
    out = run_cli(str(export_dir(root, stats)), "--lake", str(lake), "--workers", "1")
    assert f"({stats.files} data files were archived by an earlier run" in out
    # a retried data file (its done marker gone) writes the very same objects
    done = sorted((lake / layout.backfill_prefix("_dmd-state", stats.export_id) / "done").iterdir())
    for marker in done:
        marker.unlink()
    run_cli(str(export_dir(root, stats)), "--lake", str(lake), "--workers", "2")
    assert {p: p.read_bytes() for p in (lake / "archive").rglob("*.parquet")} == first


def test_other_options_on_a_begun_export_are_refused(full, tmp_path):
    root, stats = full
    lake = tmp_path / "lake"
    run_cli(str(export_dir(root, stats)), "--lake", str(lake), "--workers", "1")
    result = CliRunner().invoke(
        main, ["backfill", str(export_dir(root, stats)), "--lake", str(lake), "--target-size", "1MiB"]
    )
    assert result.exit_code != 0 and "was begun with other options (target_bytes" in result.output


def test_avro_and_few_open_files_lose_nothing(full, tmp_path, monkeypatch):
    root, stats = full
    monkeypatch.setattr(backfill_module, "MAX_OPEN_FILES", 2)  # groups finished early: more parts
    open_now, most = set(), [0]

    class Counted(PartitionFile):  # how many partition files are open at once
        def append(self, records):
            open_now.add(id(self))
            most[0] = max(most[0], len(open_now))
            return super().append(records)

        def close(self):
            open_now.discard(id(self))
            super().close()

    monkeypatch.setattr(backfill_module, "PartitionFile", Counted)
    export = open_export(str(export_dir(root, stats)))
    summary = export.summary()
    storage = LocalStorage(tmp_path / "lake")
    settings = Settings(format="avro")
    plan = Plan.of(settings, 1 << 20, 100)
    results = [
        backfill_file(export, summary, df, storage=storage, settings=settings, registry=REGISTRY, plan=plan)
        for df in export.files()
    ]
    rows = data_rows(tmp_path / "lake", "avro")
    assert Counter(r["type"] for r in rows) == stats.by_type
    assert sum(r.objects for r in results) == len(list((tmp_path / "lake" / "archive").rglob("*.avro")))
    assert len({r["cdc"]["sequenceNumber"] for r in rows}) == len(rows)
    assert most[0] == 2


@pytest.mark.parametrize("view", ["NEW_AND_OLD_IMAGES", NEW_IMAGE])
def test_an_incremental_export_is_archived_as_the_changes_it_holds(tmp_path, view):
    root = tmp_path / "export"
    stats = write_export(LocalStorage(root), "", records=RECORDS, seed=9, kind=INCREMENTAL, view=view, files=3)
    assert stats.by_operation["REMOVE"] and stats.by_operation["INSERT"] and stats.by_operation["MODIFY"]
    lake = tmp_path / "lake"
    run_cli(str(export_dir(root, stats)), "--lake", str(lake))
    rows = data_rows(lake)
    lines = [orjson.loads(line) for p in sorted(root.glob("AWSDynamoDB/data/*.json.gz")) for line in lines_of(p)]
    docs = error_documents(lake)
    if view == NEW_IMAGE:  # a delete carries only the keys: an error document says why
        deletes = [d for d in lines if "NewImage" not in d]
        assert len(deletes) == stats.by_operation["REMOVE"]
        assert sum(len(d.entries) for d in docs) == len(deletes)
        assert all("NEW_AND_OLD_IMAGES view to archive deletes" in d.message for d in docs)
        assert Counter(r["cdc"]["operation"] for r in rows) == {"MODIFY": len(lines) - len(deletes)}
    else:
        assert not docs
        assert Counter(r["cdc"]["operation"] for r in rows) == stats.by_operation
        removed = [r for r in rows if r["cdc"]["operation"] == "REMOVE"]
        assert all(r["isDeleted"] and r["date"]["deleted"] == r["cdc"]["changeTime"] for r in removed)
        # PII redacted as for any REMOVE
        pii = {name: [f.path for f in spec.fields if f.pii] for name, spec in REGISTRY.items()}
        for r in removed:
            for path in pii[r["type"]]:
                value = r
                for part in path.split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                assert value in (None, "[redacted]")
    # each row at the write time of its change
    written = sorted(
        int(d["Metadata"]["WriteTimestampMicros"]["N"]) for d in lines if "NewImage" in d or view != NEW_IMAGE
    )
    changed = sorted(int(r["cdc"]["changeTime"].timestamp() * 1_000_000) for r in rows)
    assert changed == written


def test_the_current_view_takes_snapshot_and_stream_rows_newest_first(tmp_path):
    """A full export of the table half-way through its stream, then the stream's later changes
    (and its earlier ones: the stream may have been on before): `_current` is the table's final state."""
    root = tmp_path / "export"
    stats = write_export(LocalStorage(root), "exports", records=RECORDS, seed=13, kind=FULL, files=2, upto=0.5)
    lake = tmp_path / "lake"
    run_cli(str(export_dir(root, stats)), "--lake", str(lake))
    events, _ = sample(RECORDS, 13)
    storage, settings = LocalStorage(lake), Settings()
    for batch in read_lines((orjson.dumps(e) for e in events), "stream"):
        process_batch(batch, registry=REGISTRY, settings=settings, storage=storage)
    final: dict[str, dict] = {}  # the table after every change, by id
    changes = sorted(
        (orjson.loads(base64.b64decode(r["kinesis"]["data"])) for e in events for r in e["Records"]),
        key=lambda d: d["dynamodb"]["ApproximateCreationDateTime"],
    )
    for d in changes:
        image = d["dynamodb"].get("NewImage") or d["dynamodb"]["OldImage"]
        if d["eventName"] == "REMOVE":
            final.pop(image["id"]["S"], None)
        else:
            final[image["id"]["S"]] = image
    con = open_lake(lake)
    try:
        for type_name in REGISTRY:
            rows = con.sql(f'SELECT "id", "cdc"."operation", "cdc"."changeTime" FROM {type_name}_current').fetchall()
            expected = {i for i, image in final.items() if image["type"]["S"] == type_name}
            assert {r[0] for r in rows} == expected, type_name
            # items unchanged since the export come from it (it is newer than their stream rows)
            assert any(op == "SNAPSHOT" for _, op, _ in rows) and any(op != "SNAPSHOT" for _, op, _ in rows)
    finally:
        con.close()


def test_replay_rebuilds_export_items_from_their_error_documents(full, tmp_path):
    root, stats = full
    lake = tmp_path / "lake"
    run_cli(str(export_dir(root, stats)), "--lake", str(lake))
    before = sorted((lake / "errors").glob("*.json"))
    result = CliRunner().invoke(main, ["replay", str(lake / "errors"), "--lake", str(lake)], catch_exceptions=False)
    assert f"replayed {len(before)} error documents ({len(stats.bad)} records)" in result.output
    assert "still failing" in result.output and f"{len(stats.bad):>8} (in error documents again)" in result.output
    # the same records fail the same way: each document was rewritten under its own key
    assert sorted((lake / "errors").glob("*.json")) == before


def test_ion_and_misplaced_exports_are_refused_clearly(full, tmp_path):
    root, stats = full
    summary = json.loads((export_dir(root, stats) / "manifest-summary.json").read_text())
    with pytest.raises(ExportError, match="Amazon Ion format"):
        read_summary(json.dumps(summary | {"outputFormat": "ION"}).encode())
    with pytest.raises(ExportError, match="dataFileS3Key missing"):
        read_files(b'{"itemCount": 1}\n')
    result = CliRunner().invoke(main, ["backfill", str(tmp_path), "--lake", str(tmp_path / "lake")])
    assert result.exit_code != 0 and "not an export's folder" in result.output


def test_a_data_file_key_without_the_export_prefix_is_found_too(full, tmp_path):
    """AWS's documentation shows dataFileS3Key both with and without the export prefix."""
    root, stats = full
    folder = export_dir(root, stats)
    manifest = folder / "manifest-files.json"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    stripped = [e | {"dataFileS3Key": e["dataFileS3Key"].removeprefix("exports/")} for e in entries]
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / stats.folder / "manifest-files.json").write_text("".join(json.dumps(e) + "\n" for e in stripped))
    lake = tmp_path / "lake"
    run_cli(str(copy / stats.folder), "--lake", str(lake), "--workers", "1")
    assert Counter(r["type"] for r in data_rows(lake)) == stats.by_type


def test_a_data_file_that_is_not_what_the_manifest_says_is_not_archived(full, tmp_path):
    root, stats = full
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    entries = [json.loads(line) for line in (copy / stats.folder / "manifest-files.json").read_text().splitlines()]
    damaged = copy / entries[0]["dataFileS3Key"]
    damaged.write_bytes(damaged.read_bytes()[:-10])  # a partial copy
    result = CliRunner().invoke(main, ["backfill", str(copy / stats.folder), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 1
    assert "NOT ARCHIVED" in result.output and "does not match the md5Checksum" in result.output
    assert f"{stats.files - 1} of {stats.files} data files" in result.output


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_backfill_objects_record_the_schema_fingerprint(full, tmp_path, fmt):
    """Like every container the stream writes, a backfill's records the fingerprint of the schema
    it was written with (docs/schema-evolution.md), read here by each format's own library."""
    root, stats = full
    run_cli(str(export_dir(root, stats)), "--lake", str(tmp_path / "lake"), "--format", fmt)
    paths = sorted((tmp_path / "lake" / "archive" / fmt).rglob(f"*.{fmt}"))
    assert paths
    for path in paths:
        type_name = path.relative_to(tmp_path / "lake" / "archive" / fmt).parts[0]
        if fmt == "avro":
            with path.open("rb") as f:
                recorded = fastavro.reader(f).metadata.get(FINGERPRINT_KEY)
        else:
            recorded = pq.ParquetFile(path).metadata.metadata[FINGERPRINT_KEY.encode()].decode()
        assert recorded == REGISTRY[type_name].fingerprint != "", path


def test_dmd_sample_writes_an_export_dmd_backfill_archives(tmp_path):
    """The way to try a backfill without AWS: `dmd sample --export-to`, then the command it prints."""
    result = CliRunner().invoke(
        main,
        ["sample", "--records", "400", "--seed", "5", "--bad-fraction", "0.05", "--export-to", str(tmp_path / "x")],
    )
    assert result.exit_code == 0, result.output
    printed = result.output.split("dmd backfill ", 1)[1].split()[0]
    folder = Path(printed)
    items = sum(json.loads(line)["itemCount"] for line in (folder / "manifest-files.json").read_text().splitlines())
    run_cli(str(folder), "--lake", str(tmp_path / "lake"))
    archived = len(data_rows(tmp_path / "lake"))
    errors = sum(len(doc.entries) for doc in error_documents(tmp_path / "lake"))
    assert archived > 0 and errors > 0
    assert archived + errors == items


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_objects_the_compactor_leaves_alone_get_their_identity_index(full, tmp_path, fmt):
    """An object of ≥ 75% of the target is indexed as it is written (its rows' sequence numbers,
    as fastavro or pyarrow read them), so the compactor's later merges in its partition check it
    for twins without reading it."""
    root, stats = full
    first = tmp_path / "first"
    run_cli(str(export_dir(root, stats)), "--lake", str(first), "--format", fmt)
    keys = sorted(LocalStorage(first).list(f"archive/{fmt}/"))
    schema, rows = rows_of(fmt, LocalStorage(first).get(keys[0]))
    one_row = len(encoded(fmt, schema, rows[:1]))
    # three one-row objects fill the target: two of them merge, the backfill's larger parts are big
    target = 3 * one_row
    lake = tmp_path / "lake"
    run_cli(str(export_dir(root, stats)), "--lake", str(lake), "--format", fmt, "--target-size", str(target))
    storage = LocalStorage(lake)
    indexed = []
    for key in storage.list(f"archive/{fmt}/"):
        body = storage.get(key)
        index_key = layout.identity_key(layout.DEFAULT_STATE_PREFIX, layout.parse_data_key(key, "archive"))
        if len(body) < target * LEFT_ALONE:
            assert not (lake / index_key).exists(), key
            continue
        indexed.append(key)
        seqs = [r["cdc"]["sequenceNumber"] for r in rows_of(fmt, body)[1]]
        assert identity.decode(storage.get(index_key), len(body)) == identity.hashes_of(seqs), key
    assert indexed

    schema, rows = rows_of(fmt, storage.get(indexed[0]))
    folder = layout.folder(indexed[0])
    for key in storage.list(folder):  # the partition's small parts set aside: only the two below merge
        if key not in indexed:
            storage.delete(key)
    added = []
    for n, row in enumerate(renumbered(rows[:2], "s")):  # two small objects of later changes beside it
        added.append(f"{folder}2999-01-01-00-00-0{n}-00000001-0000-0000-0000-000000000000.{fmt}")
        storage.put(added[-1], encoded(fmt, schema, [row]), "application/octet-stream")
    reading = ReadingStorage(lake)
    report = compact(reading, Options(min_age=0, scan_all=True, target_size=target))
    assert report.ok
    assert [sorted(m.sources) for m in report.done if m.target.startswith(folder)] == [added]  # merged ...
    assert not set(indexed) & set(reading.read)  # ... the indexed objects checked without being read
