"""`dmd stats`: its numbers equal the lake's, counted independently (every row decoded by
pyarrow / fastavro, sizes from the file system), in the terminal and on the HTML page as headless
Chromium renders it."""

from __future__ import annotations

import io
import itertools
import os
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import fastavro
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dmd.lake import layout
from dmd.lake.errordoc import ErrorDocument
from dmd.lake.storage import LocalStorage, open_storage
from dmd.tools.cli import main
from dmd.tools.stats import cause_of, collect, rows_in


def build_lake(tmp_path: Path, fmt: str) -> Path:
    runner = CliRunner()
    events, lake = tmp_path / "events.jsonl", tmp_path / "lake"
    out = runner.invoke(
        main, ["sample", "--records", "800", "--seed", "5", "--bad-fraction", "0.05", "--out", str(events)]
    )
    assert out.exit_code == 0, out.output
    out = runner.invoke(main, ["run", str(events), "--lake", str(lake), "--format", fmt])
    assert out.exit_code == 0, out.output
    # one error document replayed (moved to replayed/ as `dmd replay` does), so both kinds exist
    storage = LocalStorage(lake)
    first = next(k for k in storage.list("errors/") if layout.is_error_document(k))
    storage.put(layout.replayed_key(first), storage.get(first), "application/json")
    storage.delete(first)
    return lake


class Expected:
    """The lake counted without dmd.tools.stats: every file read whole."""

    def __init__(self, lake: Path) -> None:
        self.rows: Counter[tuple[str, str]] = Counter()
        self.objects: Counter[tuple[str, str]] = Counter()
        self.bytes: Counter[tuple[str, str]] = Counter()
        self.error_documents = self.error_records = self.replayed = 0
        self.causes: Counter[str] = Counter()
        unreplayed = []
        for path in sorted(p for p in lake.rglob("*") if p.is_file()):
            key = path.relative_to(lake).as_posix()
            parsed = layout.parse_data_key(key, "archive")
            if key.startswith(layout.DEFAULT_STATE_PREFIX + "/"):  # the compactor's, not the lake's
                continue
            if parsed is not None:
                cell = (parsed.type_name, parsed.day.isoformat())
                body = path.read_bytes()
                if parsed.format.name == "avro":
                    n = sum(1 for _ in fastavro.reader(io.BytesIO(body)))
                else:
                    n = pq.read_table(io.BytesIO(body)).num_rows
                self.rows[cell] += n
                self.objects[cell] += 1
                self.bytes[cell] += path.stat().st_size
            elif layout.is_error_document(key) and layout.is_replayed(key):
                self.replayed += 1
            elif layout.is_error_document(key):
                doc = ErrorDocument.from_json(path.read_bytes())
                self.error_documents += 1
                self.error_records += len(doc.entries)
                self.causes[cause_of(doc.message)] += len(doc.entries)
                unreplayed.append(key)
        self.oldest_unreplayed = min(unreplayed, key=lambda k: k.rpartition("/")[2])
        assert self.rows and self.error_documents and self.replayed


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_stats_equal_the_lake(tmp_path, fmt):
    lake = build_lake(tmp_path, fmt)
    expected = Expected(lake)
    stats = collect(LocalStorage(lake), str(lake))
    assert {(d.type_name, d.day.isoformat()): d.rows for d in stats.days} == dict(expected.rows)
    assert {(d.type_name, d.day.isoformat()): d.objects for d in stats.days} == dict(expected.objects)
    assert {(d.type_name, d.day.isoformat()): d.bytes for d in stats.days} == dict(expected.bytes)
    assert (stats.error_documents, stats.error_records) == (expected.error_documents, expected.error_records)
    assert stats.replayed_documents == expected.replayed
    assert stats.oldest_unreplayed and stats.oldest_unreplayed[0] == expected.oldest_unreplayed
    assert {c.cause: c.records for c in stats.causes} == dict(expected.causes)
    assert not stats.unreadable
    by_day = stats.by_day()
    assert sum(r for _, r, _ in by_day) == sum(expected.rows.values())
    assert [(b - a).days for (a, _, _), (b, _, _) in itertools.pairwise(by_day)] == [1] * (len(by_day) - 1)

    result = CliRunner().invoke(main, ["stats", "--lake", str(lake)])
    assert result.exit_code == 0, result.output
    for t in stats.by_type():
        total = sum(n for (type_name, _), n in expected.rows.items() if type_name == t.type_name)
        assert any(line.startswith(t.type_name) and f"{total:,}" in line for line in result.output.splitlines())
    assert expected.oldest_unreplayed in result.output


def test_row_counts_come_from_metadata_alone():
    import pyarrow as pa

    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": list(range(7))}), buffer)
    assert rows_in(buffer.getvalue(), "parquet") == 7
    buffer = io.BytesIO()
    schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]}
    fastavro.writer(buffer, schema, [{"x": i} for i in range(9)], sync_interval=16)  # several blocks
    assert rows_in(buffer.getvalue(), "avro") == 9


def test_causes_group_messages_without_their_values():
    a = "invalid demand record in dynamodb.NewImage: quantity: '9' is out of range [1, 8]"
    b = "invalid demand record in dynamodb.NewImage: quantity: '12' is out of range [1, 8]"
    assert (
        cause_of(a) == cause_of(b) == "invalid demand record in dynamodb.NewImage: quantity: '…' is out of range [1, 8]"
    )
    cut = "eventName: 'a very long value cut short by the message…"
    assert "very long" not in cause_of(cut)
    assert cause_of("record: not valid JSON (unexpected character: line 1 column 7 (char 6))") == cause_of(
        "record: not valid JSON (unexpected character: line 1 column 9 (char 8))"
    )


def test_a_corrupt_container_is_reported_not_counted(tmp_path):
    lake = build_lake(tmp_path, "parquet")
    victim = next(p for p in (lake / "archive").rglob("*.parquet"))
    victim.write_bytes(b"PAR1 not really PAR1")
    result = CliRunner().invoke(main, ["stats", "--lake", str(lake)])
    assert result.exit_code == 1 and "UNREADABLE: 1 objects" in result.output


# --- the HTML page in headless Chromium -------------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CI") == "true":
        pytest.fail("chromium is missing in CI: .ci/run installs Debian's `chromium` package")
    pytest.skip("chromium is not installed (Debian package `chromium`; .ci/run installs it in CI)")


class Cells(HTMLParser):
    """Every element's data-* attributes, from the DOM Chromium dumps."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str]] = []
        self.ids: dict[str, dict[str, str]] = {}
        self.svgs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.svgs += tag == "svg"
        if "data-metric" in a:
            self.cells.append(a)
        if "id" in a:
            self.ids[a["id"]] = a


def test_html_report_renders_in_chromium_with_the_lakes_numbers(tmp_path):
    browser = chromium()
    lake = build_lake(tmp_path, "parquet")
    expected = Expected(lake)
    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["stats", "--lake", str(lake), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert "http://" not in page.read_text().replace("http://www.w3.org/2000/svg", "")  # self-contained
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    shot = tmp_path / "report.png"
    run = subprocess.run(
        [*flags, "--window-size=1000,1600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0 and shot.stat().st_size > 10_000, run.stderr.decode()[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dom = subprocess.run(
        [*flags, "--dump-dom", page.as_uri()], capture_output=True, timeout=120, check=True
    ).stdout.decode()
    cells = Cells()
    cells.feed(dom)
    assert cells.svgs >= 3, "the charts: objects per day, rows per day, errors by cause"

    def on_page(metric: str) -> dict[tuple[str, str], int]:
        return {
            (c["data-type"], c["data-day"]): int(c["data-value"])
            for c in cells.cells
            if c.get("data-metric") == metric and "data-day" in c
        }

    assert on_page("rows") == dict(expected.rows)
    assert on_page("objects") == dict(expected.objects)
    assert on_page("bytes") == dict(expected.bytes)
    per_type = {
        c["data-type"]: int(c["data-value"]) for c in cells.cells if c["data-metric"] == "rows" and "data-day" not in c
    }
    assert per_type == {t: sum(n for (u, _), n in expected.rows.items() if u == t) for t in per_type}
    assert set(per_type) == {t for t, _ in expected.rows}
    causes = {c["data-cause"]: int(c["data-value"]) for c in cells.cells if c["data-metric"] == "records"}
    assert causes == dict(expected.causes)
    assert int(cells.ids["error-documents"]["data-value"]) == expected.error_documents
    assert int(cells.ids["error-records"]["data-value"]) == expected.error_records
    assert int(cells.ids["replayed"]["data-value"]) == expected.replayed
    assert cells.ids["oldest-unreplayed"]["data-value"] == expected.oldest_unreplayed


def test_stats_of_an_s3_lake_equal_those_of_the_same_local_lake(s3, moto_server, tmp_path):
    local = build_lake(tmp_path, "avro")
    for path in sorted(p for p in local.rglob("*") if p.is_file()):  # the same objects, in a bucket
        s3.put_object(Bucket="dmd-test", Key=path.relative_to(local).as_posix(), Body=path.read_bytes())
    here = collect(LocalStorage(local), "local")
    result = CliRunner().invoke(main, ["stats", "--lake", "s3://dmd-test", "--s3-endpoint", moto_server.url])
    assert result.exit_code == 0, result.output
    there = collect(open_storage("s3://dmd-test", moto_server.url), "s3://dmd-test", now=here.now)
    assert there.days == here.days
    assert (there.causes, there.oldest_unreplayed) == (here.causes, here.oldest_unreplayed)
    assert (there.error_documents, there.replayed_documents) == (here.error_documents, here.replayed_documents)
    assert sum(d.rows for d in here.days) > 0
