"""The generated alarms and dashboard (generated/terraform/monitoring.tf), parsed with python-hcl2:
every alarm has a threshold variable and notifies the optional SNS topic, the alarms on the
function's own metrics name metrics and dimensions the handler really emits, and the dashboard
has a row per record type of the registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from test_terraform import module, resources, variables

from dmd.generated import REGISTRY
from dmd.ingest.batch_metrics import batch_metrics
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event
from dmd.ingest.pipeline import process_batch
from dmd.lake import metrics as m
from dmd.lake.compact import Report
from dmd.lake.compact_metrics import run_metrics

EVENTS = Path(__file__).resolve().parents[1] / "events"
# What the alarms must watch (issue 14): the stream falling behind, error documents, retries, the
# on-failure queue, function errors and throttles, freshness.
REQUIRED = {"IteratorAge", m.ERROR_DOCUMENTS, m.RETRY_RECORDS, "ApproximateNumberOfMessagesVisible", "Errors"}
REQUIRED |= {"Throttles", m.FRESHNESS}
# and the compactor's failures and backlog
COMPACTOR_REQUIRED = {"Errors", m.MERGES_FAILED, m.OLDEST_MARKER_AGE}
COMPACTOR = "${aws_lambda_function.compactor.function_name}"


class Memory:
    def put(self, key: str, body: bytes, content_type: str) -> str:
        return key


def emitted() -> dict[str, set[str]]:
    """Metric names by dimension set, as the handler's code emits them for a real batch:
    {"Function": {...}, "Function,RecordType": {...}}."""
    event = json.loads((EVENTS / "kinesis-event.json").read_text())
    result = process_batch(decode_event(event), registry=REGISTRY, settings=Settings(), storage=Memory())
    names: dict[str, set[str]] = {}
    for dimensions, values in batch_metrics(result, "fn", 1.0, datetime.now(UTC)):
        names.setdefault(",".join(dimensions), set()).update(values)
    for mode in ("single", "planner", "worker"):  # the compactor's line, whatever its mode
        names.setdefault(m.COMPACTOR, set()).update(run_metrics(Report(), mode, 0.0))
    return names


def alarms() -> dict[str, dict]:
    return resources("aws_cloudwatch_metric_alarm")


def test_the_required_alarms_exist_each_with_a_threshold_variable():
    found = {a["metric_name"] for a in alarms().values()}
    assert found >= REQUIRED
    on_compactor = {
        a["metric_name"]
        for a in alarms().values()
        if COMPACTOR in (a["dimensions"].get("FunctionName"), a["dimensions"].get(m.COMPACTOR))
    }
    assert on_compactor >= COMPACTOR_REQUIRED
    declared = variables()
    for name, alarm in alarms().items():
        threshold = alarm["threshold"]
        assert threshold.startswith("${var.") and threshold.endswith("}"), name
        variable = declared[threshold[6:-1]]
        assert variable["type"] in ("number", "${number}") and isinstance(variable["default"], int | float), name
        assert alarm["comparison_operator"] == "GreaterThanThreshold"
        assert alarm["treat_missing_data"] == "notBreaching"


def test_every_alarm_notifies_the_optional_sns_topic():
    assert variables()["alarm_sns_topic_arn"]["default"] is None
    (local,) = [b for b in module()["locals"] if "alarm_actions" in b]
    assert "var.alarm_sns_topic_arn == null ? [] : [var.alarm_sns_topic_arn]" in local["alarm_actions"]
    for name, alarm in alarms().items():
        assert alarm["alarm_actions"] == alarm["ok_actions"] == "${local.alarm_actions}", name


def test_alarms_on_the_functions_own_metrics_name_what_it_emits():
    names = emitted()
    own = [a for a in alarms().values() if a["namespace"] == "${var.metrics_namespace}"]
    assert own
    for alarm in own:
        dimension_set = ",".join(alarm["dimensions"])
        assert alarm["metric_name"] in names[dimension_set], (alarm["metric_name"], dimension_set)
        assert alarm["dimensions"] in (
            {m.FUNCTION: "${aws_lambda_function.archiver.function_name}"},
            {m.COMPACTOR: COMPACTOR},  # the scheduled compactor's name, which its workers report under
        )
    for name in ("archiver", "compactor", "compaction_worker"):  # the functions the alarms watch
        (env,) = resources("aws_lambda_function")[name]["environment"]
        assert env["variables"]["DMD_METRICS_NAMESPACE"] == "${var.metrics_namespace}", name
        if name != "archiver":
            assert env["variables"]["DMD_COMPACTOR_NAME"] == "${local.compactor_name}", name
    assert resources("aws_lambda_function")["compactor"]["function_name"] == "${local.compactor_name}"
    assert variables()["metrics_namespace"]["default"] == m.DEFAULT_NAMESPACE


def dashboard() -> dict:
    (board,) = resources("aws_cloudwatch_dashboard").values()
    body = board["dashboard_body"]
    for expr, stand_in in [
        ("${var.metrics_namespace}", "NS"),
        ("${aws_lambda_function.archiver.function_name}", "FN"),
        ("${local.monitoring_region}", "REGION"),
        ("${aws_sqs_queue.failures.name}", "QUEUE"),
        (COMPACTOR, "COMPACTOR"),
        ("${aws_lambda_function.compaction_worker.function_name}", "WORKER"),
    ]:
        body = body.replace(expr, stand_in)
    assert "${" not in body
    return json.loads(body)


def test_the_dashboard_has_a_row_per_record_type_with_emitted_metrics():
    names = emitted()
    widgets = dashboard()["widgets"]
    series = [
        tuple(s for s in metric if not isinstance(s, dict))
        for w in widgets
        for metric in w["properties"].get("metrics", [])
    ]
    for type_name in REGISTRY:
        typed = {s[1] for s in series if s[0] == "NS" and s[2:] == (m.FUNCTION, "FN", m.RECORD_TYPE, type_name)}
        assert typed >= {m.RECORDS_ARCHIVED, m.ERROR_RECORDS, m.FRESHNESS}, type_name
        rows = {w["y"] for w in widgets if type_name in json.dumps(w)}
        assert len(rows) == 2, f"{type_name}: a title and one row of widgets"
    for s in series:
        if s[0] == "NS":
            assert s[1] in names[",".join(s[2::2])], s
    # the widgets tile the grid: 24 columns, no overlaps
    cells = set()
    for w in widgets:
        assert w["x"] >= 0 and w["x"] + w["width"] <= 24
        for x in range(w["x"], w["x"] + w["width"]):
            for y in range(w["y"], w["y"] + w["height"]):
                assert (x, y) not in cells, w
                cells.add((x, y))


def test_the_dashboard_has_a_compactor_row():
    widgets = dashboard()["widgets"]
    series = {
        tuple(s for s in metric if not isinstance(s, dict))
        for w in widgets
        for metric in w["properties"].get("metrics", [])
    }
    own = {s[1] for s in series if s[0] == "NS" and s[2:] == (m.COMPACTOR, "COMPACTOR")}
    assert own >= {m.OBJECTS_MERGED, m.DUPLICATES_DROPPED, m.MERGES_FAILED, m.OLDEST_MARKER_AGE, m.PARTITIONS_LEFT}
    assert {("AWS/Lambda", "Errors", "FunctionName", f) for f in ("COMPACTOR", "WORKER")} <= series
