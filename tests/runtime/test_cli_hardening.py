"""What a user meets at the edges of the `dmd` command and the function's configuration: bad
settings refused at start with one clear line, storage failures explained (the cause, permanent
or not), paths taken literally, and leftovers of killed runs cleaned up."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmd.ingest.config import ConfigError, Settings, from_environment
from dmd.lake.storage import LocalStorage
from dmd.tools.cli import main

EVENTS = Path(__file__).resolve().parents[1] / "data" / "equivalence" / "events.jsonl"


def dmd(*args: str, env: dict | None = None):
    return CliRunner().invoke(main, list(args), env=env)


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"DMD_PREFIX": "errors/archive"}, "must not contain one another"),
        ({"DMD_ERRORS_PREFIX": "archive/errors"}, "must not contain one another"),
        ({"DMD_PREFIX": "p/" * 450}, "over S3's 1024"),
        ({"DMD_BUCKET": "a..b"}, "no '..'"),
        ({"DMD_BUCKET": "192.168.1.1"}, "not an IP address"),
        ({"DMD_BUCKET": "xn--bucket"}, "reserved prefix"),
        ({"DMD_S3_ENDPOINT": "http://localhost:port"}, "not a URL"),
        ({"DMD_S3_ENDPOINT": "ftp://localhost"}, "http(s) URL"),
    ],
)
def test_the_function_refuses_a_configuration_s3_would_break_on(environ, says):
    with pytest.raises(ConfigError, match=r".*" + __import__("re").escape(says)):
        from_environment({"DMD_BUCKET": "dmd-archive"} | environ)


def test_a_configuration_within_the_limits_is_accepted():
    config = from_environment({"DMD_BUCKET": "dmd-archive", "DMD_S3_ENDPOINT": "http://127.0.0.1:5000"})
    assert config.endpoint_url == "http://127.0.0.1:5000"
    assert Settings(prefix="p/" * 300 + "x").prefix  # long, but every key still fits


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("run", "--log-level", "bogus", str(EVENTS)), "'bogus' is not one of"),
        (("run", "no-such-file.jsonl"), "does not exist"),
        (("run", "--lake", "s3://a..b", str(EVENTS)), "bucket name 'a..b'"),
        (("run", "--errors-prefix", "archive/errors", str(EVENTS)), "must not contain one another"),
        (("query", "--lake", "no-such-lake", "SELECT 1"), "does not exist"),
        (("replay", "no-such-folder"), "no-such-folder: no such folder or file"),
    ],
)
def test_usage_errors_are_one_clear_line_not_a_traceback(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    result = dmd(*args)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "Traceback" not in result.output


def test_a_file_without_events_is_refused(tmp_path):
    readme = Path(__file__).resolve().parents[2] / "README.md"
    result = dmd("run", "--lake", str(tmp_path / "lake"), str(readme))
    assert result.exit_code == 2 and "is a Lambda event" in result.output
    assert not (tmp_path / "lake").exists()  # not one error document per line


def test_a_lake_folder_without_a_lake_is_refused(tmp_path):
    result = dmd("query", "--lake", str(tmp_path), "SELECT count(*) FROM all_records")
    assert result.exit_code == 2 and "no lake at" in result.output


def test_run_explains_why_records_were_not_delivered(tmp_path):
    lake = tmp_path / "lake"
    lake.write_text("a file where the lake's folder should be")
    result = dmd("run", "--lake", str(lake), str(EVENTS))
    assert result.exit_code == 1
    assert "NOT DELIVERED" in result.output and "ENOTDIR" in result.output and "fix this, then rerun" in result.output


def test_run_reports_a_missing_bucket_as_permanent(tmp_path, s3, moto_server):
    result = dmd("run", "--lake", "s3://no-such-bucket", "--s3-endpoint", moto_server.url, str(EVENTS))
    assert result.exit_code == 1
    assert "NoSuchBucket" in result.output and "fix this, then rerun" in result.output
    assert "transient" not in result.output


def test_run_logs_each_batch_at_info(tmp_path):
    result = CliRunner().invoke(main, ["run", "--lake", str(tmp_path / "lake"), "--log-level", "INFO", str(EVENTS)])
    assert result.exit_code == 0, result.output
    assert '"message":"batch archived"' in result.stderr and '"records_in"' in result.stderr


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_query_takes_glob_characters_in_the_lake_path_literally(tmp_path, fmt):
    from dmd.tools.query import open_lake

    # `lake[12]` is also a glob that matches `lake1`: the query must read the lake named `lake[12]`
    few = tmp_path / "few.jsonl"
    few.write_bytes(b"".join(EVENTS.read_bytes().splitlines(keepends=True)[:2]))
    assert dmd("run", "--lake", str(tmp_path / "lake1"), "--format", fmt, str(EVENTS)).exit_code == 0
    assert dmd("run", "--lake", str(tmp_path / "lake[12]"), "--format", fmt, str(few)).exit_code == 0
    count = "SELECT count(*) FROM all_records"
    literal = open_lake(tmp_path / "lake[12]").execute(count).fetchone()[0]
    other = open_lake(tmp_path / "lake1").execute(count).fetchone()[0]
    assert 0 < literal < other
    assert dmd("query", "--lake", str(tmp_path / "lake[12]"), count).exit_code == 0


def test_stale_temporary_files_of_a_killed_run_are_removed_on_the_next_write(tmp_path):
    storage = LocalStorage(tmp_path)
    folder = tmp_path / "archive" / "x"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".tmp-killed", folder / ".tmp-in-use"
    stale.write_bytes(b"half a container")
    fresh.write_bytes(b"another writer's")
    old = time.time() - 24 * 3600
    os.utime(stale, (old, old))
    storage.put("archive/x/a.parquet", b"data", "application/octet-stream")
    assert not stale.exists() and fresh.exists()
    assert sorted(p.name for p in folder.iterdir()) == [".tmp-in-use", "a.parquet"]
