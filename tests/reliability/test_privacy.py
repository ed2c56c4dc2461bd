"""Privacy: PII is redacted in archived REMOVE records, and no record value reaches a log line.

Logs are captured at DEBUG, for the project's logger and for the root logger (where boto3,
botocore and urllib3 log: in Lambda the runtime's handler sits there), over runs of the
handler against a moto S3 server (with and without injected failures), `dmd run` and
`dmd replay`. Every record carries unique marker values; bad records carry markers in the
values their error messages quote. No marker may appear in the captured text.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import logging
import random
import sys
from collections.abc import Iterator

import pytest
from batchgen import TYPES, change_record, image_fields, image_of, kinesis_record, seq_str
from click.testing import CliRunner
from lakecheck import read_lake
from memstore import MemoryStorage

from dmd.generated import REGISTRY
from dmd.ingest import logs
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event
from dmd.ingest.pipeline import process_batch
from dmd.support.records import REDACTED
from dmd.tools.cli import main
from dmd.tools.malform import put

MARK = "pii_marker_"  # "_" never occurs in base64 or hex (request ids, signatures)


class Markers:
    def __init__(self) -> None:
        self.values: list[str] = []

    def new(self, what: str) -> str:
        value = f"{MARK}{len(self.values):04d}{what}"
        self.values.append(value)
        return value


def _strings(image: dict, markers: Markers, type_name: str) -> None:
    """Replace every free-text value of an image (not `type`, enums or dates) by a marker."""
    for f in image_fields(type_name):
        if f.kind not in ("string", "array") or f.path == "type":
            continue
        container = image
        *parents, name = f.path.split(".")
        for p in parents:
            container = container.get(p, {}).get("M", {})
        if name not in container:
            continue
        if f.wire == "SS":
            container[name] = {"SS": [markers.new("set"), markers.new("set")]}
        elif f.wire == "L":
            container[name] = {"L": [{"S": markers.new("list")}]}
        else:
            container[name] = {"S": markers.new(f.path)}


def marked_changes(markers: Markers, operation: str = "", seed: int = 1) -> Iterator[dict]:
    rng = random.Random(seed)
    for type_name in TYPES:
        change = change_record(type_name, rng, operation)
        image = image_of(change)
        _strings(image, markers, type_name)
        change["eventID"] = markers.new("eventID")
        yield change


def full_remove(type_name: str, markers: Markers) -> dict:
    """A REMOVE whose image has every optional field, PII ones holding markers."""
    from batchgen import valid_image

    change = change_record(type_name, random.Random(3), "REMOVE")
    change["dynamodb"]["OldImage"] = image = valid_image(type_name, random.Random(4), all_present=True)
    _strings(image, markers, type_name)
    return change


def event_of(changes: list[dict], start: int = 0) -> dict:
    return {
        "Records": [
            kinesis_record(start + i, base64.b64encode(json.dumps(c).encode()).decode(), 1_705_343_400.0)
            for i, c in enumerate(changes)
        ]
    }


def bad_changes(markers: Markers) -> list[dict]:
    """Records whose error messages quote (a prefix of) a value: markers there too."""
    rng = random.Random(9)
    out = []
    for type_name in TYPES:
        change = change_record(type_name, rng)
        image = image_of(change)
        _strings(image, markers, type_name)
        if type_name != "event":
            enum = next(f for f in image_fields(type_name) if f.kind == "enum")
            image[enum.path] = {"S": markers.new("enum")}
        ts = next(f for f in image_fields(type_name) if f.kind.startswith("timestamp"))
        put(image, ts.path, {"S": markers.new("ts")})
        out.append(change)
    unknown = change_record("demand", rng)
    image_of(unknown)["type"] = {"S": markers.new("type")}
    out.append(unknown)
    wrong = change_record("notification", rng)
    image_of(wrong)["messageBody"] = {"N": markers.new("N")}
    out.append(wrong)
    name = change_record("demand", rng)
    name["eventName"] = markers.new("eventName")
    out.append(name)
    return out


# --- PII redaction in the archive -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
@pytest.mark.parametrize("type_name", TYPES)
def test_archived_remove_records_carry_redacted_in_every_pii_field(type_name, fmt):
    markers = Markers()
    settings = Settings(format=fmt)
    remove = full_remove(type_name, markers)
    remove_pii = {
        path: _at_image(remove["dynamodb"]["OldImage"], path)
        for path in (f.path for f in REGISTRY[type_name].fields if f.pii)
    }
    insert = json.loads(json.dumps(remove))
    insert["eventName"] = "INSERT"
    insert["dynamodb"]["NewImage"] = insert["dynamodb"].pop("OldImage")
    _strings(insert["dynamodb"]["NewImage"], markers, type_name)  # its own values
    storage = MemoryStorage()
    result = process_batch(
        decode_event(event_of([remove, insert])), registry=REGISTRY, settings=settings, storage=storage
    )
    assert not result.errors and not result.failed
    rows = read_lake(storage.objects, storage.get, settings).rows_by_sequence()
    removed, inserted = rows[seq_str(0)][0][1], rows[seq_str(1)][0][1]
    pii = [f.path for f in REGISTRY[type_name].fields if f.pii]
    for path in pii:
        assert _at(removed, path) == REDACTED, path
        assert _at(inserted, path) not in (None, REDACTED), path  # an INSERT keeps it
    blob = b"".join(storage.objects.values()).decode("latin-1")  # statistics and dictionaries too
    for path, value in remove_pii.items():
        assert value and value not in blob, f"PII of the REMOVE archived: {path}"
    assert removed["isDeleted"] is True


def _at(row: dict, path: str):
    for part in path.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


def _at_image(image: dict, path: str):
    *parents, name = path.split(".")
    for p in parents:
        image = image[p]["M"]
    return image[name]["S"]


# The PII that shared/domain.md names for the domain's record types; a type added later declares its own.
DOMAIN_PII = {
    "demand": ["email", "phoneNumber"],
    "event": [],
    "notification": ["email", "messageBody", "phoneNumber"],
    "sale": [],
}


def test_every_domain_schema_declares_the_pii_the_domain_names():
    for type_name, pii in DOMAIN_PII.items():
        if type_name in REGISTRY:
            assert sorted(f.path for f in REGISTRY[type_name].fields if f.pii) == pii, type_name


# --- no record value in any log line ----------------------------------------------------------------


@pytest.fixture
def captured_logs():
    """Everything logged at DEBUG: the dmd logger and the root logger (boto3, botocore, urllib3)."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handler = logging.StreamHandler(buffer)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(old_level)
    logs.configure("INFO")


def load_handler(monkeypatch, endpoint: str, **env: str):
    monkeypatch.setenv("DMD_BUCKET", "dmd-test")
    monkeypatch.setenv("DMD_S3_ENDPOINT", endpoint)
    monkeypatch.setenv("DMD_LOG_LEVEL", "DEBUG")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("dmd.ingest.handler", None)
    return importlib.import_module("dmd.ingest.handler")


def assert_no_marker(text: str, markers: Markers) -> None:
    assert text.strip(), "nothing was logged: the capture is broken"
    leaked = [m for m in markers.values if m in text]
    assert not leaked, f"record values in logs: {leaked[:5]}"
    assert MARK not in text, "a marker prefix reached the logs"


@pytest.mark.parametrize("codec", ["null", "deflate"])
def test_no_record_value_in_logs_of_the_handler(s3, fault_proxy, monkeypatch, captured_logs, capsys, codec):
    handler = load_handler(monkeypatch, fault_proxy.url, DMD_FORMAT="avro", DMD_CODEC=codec, DMD_S3_MAX_ATTEMPTS="2")
    logs.configure("DEBUG", captured_logs)
    markers = Markers()
    changes = [*marked_changes(markers), *marked_changes(markers, "REMOVE", 2), *bad_changes(markers)]
    event = event_of(changes)
    assert handler.handler(event, None) == {"batchItemFailures": []}
    # and a run that fails: the ERROR line lists failed objects and storage reasons
    fault_proxy.plan = lambda method, path: "error500" if method == "PUT" and "notification" in path else None
    response = handler.handler(event_of(changes, start=500), None)
    assert response["batchItemFailures"]
    fault_proxy.plan = lambda method, path: "error500" if method == "PUT" else None
    handler.handler(event_of(changes, start=900), None)
    text = captured_logs.getvalue()
    assert '"batch partly failed"' in text and "botocore" in text
    assert_no_marker(text, markers)
    # the metric lines (CloudWatch EMF on stdout): dimensions name the function and record types only
    metric_lines = [json.loads(t) for t in capsys.readouterr().out.splitlines() if '"_aws"' in t]
    assert len(metric_lines) >= 3, "no metric lines captured"
    assert_no_marker("\n".join(json.dumps(m) for m in metric_lines), markers)
    for m in metric_lines:
        for dimension_set in m["_aws"]["CloudWatchMetrics"][0]["Dimensions"]:
            assert {m[d] for d in dimension_set if d != "Function"} <= set(REGISTRY) | {"(unknown)"}


def test_no_record_value_in_logs_of_run_and_replay(tmp_path, captured_logs):
    markers = Markers()
    changes = [*marked_changes(markers), *marked_changes(markers, "REMOVE", 2), *bad_changes(markers)]
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(event_of(changes)) + "\n" + "not an event " + markers.new("line") + "\n")
    lake = tmp_path / "lake"
    runner = CliRunner()
    run = runner.invoke(main, ["run", str(events), "--lake", str(lake), "--log-level", "DEBUG"])
    replay = runner.invoke(main, ["replay", str(lake / "errors"), "--lake", str(lake), "--log-level", "DEBUG"])
    assert run.exit_code == 0 and replay.exit_code == 0, run.output + replay.output
    text = captured_logs.getvalue() + run.output + replay.output
    text += (run.stderr if run.stderr_bytes is not None else "") + (
        replay.stderr if replay.stderr_bytes is not None else ""
    )
    assert "replay finished" in text
    assert_no_marker(text, markers)
    # the lake health report groups error messages by cause, their quoted values blanked
    page = tmp_path / "stats.html"
    stats = runner.invoke(main, ["stats", "--lake", str(lake), "--html", str(page)])
    assert stats.exit_code == 0 and "error documents:" in stats.output, stats.output
    assert_no_marker(stats.output + page.read_text(), markers)
    # ...while the error documents do keep them: the error prefix holds PII
    kept = "".join(p.read_text() for p in (lake / "errors").rglob("*.json"))
    assert any(m in kept for m in markers.values)


def test_no_record_value_in_logs_and_metrics_of_the_compactor(
    s3, moto_server, fault_proxy, monkeypatch, captured_logs, capsys
):
    """The compactor's report, log lines and metric lines (single run, fan-out planner and worker,
    and runs whose deletes fail) name keys, partitions and counts, never a record value."""
    import boto3

    from dmd.lake.storage import S3Policy, S3Storage

    markers = Markers()
    changes = [*marked_changes(markers), *marked_changes(markers, "REMOVE", 2)]
    storage = S3Storage("dmd-test", endpoint_url=moto_server.url)
    for start in (0, 300, 600, 900):  # the same changes in several batches: several objects per partition
        process_batch(decode_event(event_of(changes, start)), registry=REGISTRY, settings=Settings(), storage=storage)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_server.url)
    sqs = boto3.client("sqs", endpoint_url=moto_server.url, region_name="us-east-1")
    url = sqs.create_queue(QueueName="dmd-privacy")["QueueUrl"]
    for name, value in {
        "DMD_BUCKET": "dmd-test",
        "DMD_S3_ENDPOINT": fault_proxy.url,
        "DMD_COMPACT_MIN_AGE_SECONDS": "0",
        "DMD_COMPACT_MARKER_GRACE_SECONDS": "0",
        "DMD_COMPACT_QUEUE_URL": url,
    }.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop("dmd.lake.compact_handler", None)
    handler = importlib.import_module("dmd.lake.compact_handler")
    handler.STORAGE.policy = S3Policy(max_attempts=1)  # a failed delete fails at once
    logs.configure("DEBUG", captured_logs)  # the dmd loggers, dmd.compact included
    handler.handler({}, None)  # the plan
    records = []
    while answer := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        records += [{"messageId": m["MessageId"], "body": m["Body"]} for m in answer]
    assert records
    # half the workers' deletes of data fail: failed merges and their errors are logged
    fault_proxy.plan = lambda method, path: "error500" if method == "DELETE" and "/archive/" in path else None
    failed = handler.worker({"Records": records[: len(records) // 2]}, None)["batchItemFailures"]
    fault_proxy.plan = lambda method, path: None
    handler.worker({"Records": records}, None)
    monkeypatch.setattr(handler, "QUEUE", None)  # single mode: the whole run itself
    report = handler.handler({}, None)
    assert failed and report["merges"] == 0  # the workers did it all
    text = captured_logs.getvalue() + capsys.readouterr().out
    assert "compaction run" in text and "cannot delete s3://dmd-test/archive/" in text  # the failures' reasons
    metric_lines = [json.loads(t) for t in text.splitlines() if t.startswith("{") and '"_aws"' in t]
    assert {m["Mode"] for m in metric_lines} == {"planner", "worker", "single"}
    assert_no_marker(text, markers)
