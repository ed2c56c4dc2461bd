"""The archive's alarms and CloudWatch dashboard, for the Terraform target (monitoring.tf).

Alarms watch the functions from outside (AWS/Lambda, AWS/SQS) and through the metrics they write
themselves in Embedded Metric Format (dmd.lake.metrics holds their names, so the runtime and these
alarms cannot drift apart): the archiving function's, and the compactor's (its failures and its
backlog). Each alarm has a threshold variable; all notify the optional SNS topic. The dashboard
has a row for the archiving function's health, one for the compactor's, and one per record type.

Python computes every value (HCL-quoted); the template only lays them out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dmd.lake import metrics as m

from ..model import Model

# Stand-ins replaced by Terraform interpolations in the dashboard's JSON.
NAMESPACE, FUNCTION_NAME, REGION, QUEUE = "@@namespace@@", "@@function@@", "@@region@@", "@@queue@@"
COMPACTOR_NAME, WORKER_NAME = "@@compactor@@", "@@worker@@"
INTERPOLATIONS = {
    NAMESPACE: "${var.metrics_namespace}",
    FUNCTION_NAME: "${aws_lambda_function.archiver.function_name}",
    REGION: "${local.monitoring_region}",
    QUEUE: "${aws_sqs_queue.failures.name}",
    COMPACTOR_NAME: "${aws_lambda_function.compactor.function_name}",
    WORKER_NAME: "${aws_lambda_function.compaction_worker.function_name}",
}
OWN = "var.metrics_namespace"  # the namespace of the function's own (EMF) metrics
OWN_DIMENSIONS = ((m.FUNCTION, "aws_lambda_function.archiver.function_name"),)
LAMBDA_DIMENSIONS = (("FunctionName", "aws_lambda_function.archiver.function_name"),)
# the compactor's own metrics: its fan-out workers report under the scheduled function's name too
COMPACTOR_DIMENSIONS = ((m.COMPACTOR, "aws_lambda_function.compactor.function_name"),)
HOUR = 3600  # the compactor's metrics come once per run: hourly by default (compaction_schedule)


@dataclass(frozen=True)
class Alarm:
    resource: str  # the aws_cloudwatch_metric_alarm's name, and the alarm name's suffix
    description: str
    namespace: str  # an HCL expression
    metric: str
    statistic: str
    period: int  # seconds
    evaluation_periods: int
    variable: str  # the threshold's variable
    default: int
    variable_description: str
    dimensions: tuple[tuple[str, str], ...]  # (name, HCL expression)


ALARMS = (
    Alarm(
        "iterator_age",
        "The stream is falling behind: the age of the newest record the function read exceeds the threshold.",
        '"AWS/Lambda"',
        "IteratorAge",
        "Maximum",
        60,
        5,
        "alarm_iterator_age_ms",
        300_000,
        "Alarm when the event source's iterator age (ms) stays above this for 5 minutes.",
        LAMBDA_DIMENSIONS,
    ),
    Alarm(
        "error_documents",
        "Records are going to error documents (replay them with `dmd replay` once fixed).",
        OWN,
        m.ERROR_DOCUMENTS,
        "Sum",
        60,
        1,
        "alarm_error_documents_per_minute",
        10,
        "Alarm when more error documents than this are written in a minute.",
        OWN_DIMENSIONS,
    ),
    Alarm(
        "retry_records",
        "Records are reported for retry: their data container or error document could not be written.",
        OWN,
        m.RETRY_RECORDS,
        "Sum",
        300,
        1,
        "alarm_retry_records",
        0,
        "Alarm when more records than this are reported for retry in 5 minutes.",
        OWN_DIMENSIONS,
    ),
    Alarm(
        "failure_queue",
        "Batches exhausted their retries: the on-failure queue holds their positions (see docs/reliability.md).",
        '"AWS/SQS"',
        "ApproximateNumberOfMessagesVisible",
        "Maximum",
        300,
        1,
        "alarm_failure_queue_messages",
        0,
        "Alarm when the on-failure queue holds more messages than this.",
        (("QueueName", "aws_sqs_queue.failures.name"),),
    ),
    Alarm(
        "function_errors",
        "The function failed whole invocations (a bad deployment, a timeout, an unreportable failure).",
        '"AWS/Lambda"',
        "Errors",
        "Sum",
        300,
        1,
        "alarm_function_errors",
        0,
        "Alarm when the function fails more invocations than this in 5 minutes.",
        LAMBDA_DIMENSIONS,
    ),
    Alarm(
        "throttles",
        "Invocations of the function were throttled (account or reserved concurrency).",
        '"AWS/Lambda"',
        "Throttles",
        "Sum",
        300,
        1,
        "alarm_function_throttles",
        0,
        "Alarm when more invocations than this are throttled in 5 minutes.",
        LAMBDA_DIMENSIONS,
    ),
    Alarm(
        "freshness",
        "Archived records are old: the oldest record of a batch was changed longer ago than the threshold.",
        OWN,
        m.FRESHNESS,
        "Maximum",
        300,
        1,
        "alarm_freshness_seconds",
        900,
        "Alarm when a batch archives a record changed longer ago than this (seconds).",
        OWN_DIMENSIONS,
    ),
    Alarm(
        "compactor_errors",
        "The compactor failed whole runs (a timeout, a crash, a bad setting); the next run resumes from its journal.",
        '"AWS/Lambda"',
        "Errors",
        "Sum",
        HOUR,
        1,
        "alarm_compactor_errors",
        0,
        "Alarm when the compactor (scheduled function) fails more invocations than this in an hour.",
        (("FunctionName", "aws_lambda_function.compactor.function_name"),),
    ),
    Alarm(
        "compaction_worker_errors",
        "Fan-out compaction workers failed whole invocations (timeouts, crashes); their messages are delivered again.",
        '"AWS/Lambda"',
        "Errors",
        "Sum",
        HOUR,
        1,
        "alarm_compaction_worker_errors",
        0,
        "Alarm when the compaction workers fail more invocations than this in an hour.",
        (("FunctionName", "aws_lambda_function.compaction_worker.function_name"),),
    ),
    Alarm(
        "compaction_failures",
        "Compaction failed: merges that failed, journal entries stuck for an operator, storage errors.",
        OWN,
        m.MERGES_FAILED,
        "Sum",
        HOUR,
        1,
        "alarm_compaction_failures",
        0,
        "Alarm when compaction runs report more failures (MergesFailed) than this in an hour.",
        COMPACTOR_DIMENSIONS,
    ),
    Alarm(
        "compaction_backlog",
        "Compaction is falling behind: a touched marker (a batch's partitions) has waited longer than the threshold.",
        OWN,
        m.OLDEST_MARKER_AGE,
        "Maximum",
        HOUR,
        1,
        "alarm_compaction_backlog_seconds",
        14_400,
        "Alarm when the oldest touched marker a compaction run leaves is older than this (seconds). Normally "
        "below marker grace + min age + one schedule interval (two in fan-out mode): 3 h 15 min with the defaults.",
        COMPACTOR_DIMENSIONS,
    ),
    Alarm(
        "compaction_dead_letters",
        "Partitions failed fan-out compaction compaction_max_receive_count times (their messages are in the "
        "compaction dead-letter queue; the next plan sends them again).",
        '"AWS/SQS"',
        "ApproximateNumberOfMessagesVisible",
        "Maximum",
        300,
        1,
        "alarm_compaction_dead_letters",
        0,
        "Alarm when the compaction dead-letter queue holds more messages than this.",
        (("QueueName", "aws_sqs_queue.compaction_dead.name"),),
    ),
)


def _metric(namespace: str, name: str, *dimensions: str, **options: object) -> list[object]:
    return [namespace, name, *dimensions, *([options] if options else [])]


def _widget(title: str, metrics: list[list[object]], x: int, y: int, width: int, stat: str = "Sum") -> dict:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": width,
        "height": 6,
        "properties": {
            "title": title,
            "region": REGION,
            "view": "timeSeries",
            "stat": stat,
            "period": 60,
            "metrics": metrics,
        },
    }


def dashboard(model: Model) -> dict:
    """The dashboard's JSON (with stand-ins): the function's health, then a row per record type."""
    own = (m.FUNCTION, FUNCTION_NAME)
    fn = ("FunctionName", FUNCTION_NAME)
    widgets: list[dict] = [
        {
            "type": "text",
            "x": 0,
            "y": 0,
            "width": 24,
            "height": 1,
            "properties": {"markdown": "## Archiving function"},
        },
        _widget(
            "Records per minute",
            [_metric(NAMESPACE, n, *own) for n in (m.RECORDS_ARCHIVED, m.ERROR_RECORDS, m.RETRY_RECORDS)],
            0,
            1,
            6,
        ),
        _widget("Iterator age (ms)", [_metric("AWS/Lambda", "IteratorAge", *fn)], 6, 1, 6, "Maximum"),
        _widget("Freshness (s)", [_metric(NAMESPACE, m.FRESHNESS, *own)], 12, 1, 6, "Maximum"),
        _widget(
            "Invocations, errors, throttles",
            [_metric("AWS/Lambda", n, *fn) for n in ("Invocations", "Errors", "Throttles")],
            18,
            1,
            6,
        ),
        _widget(
            "Batch duration (ms)",
            [
                _metric(NAMESPACE, m.BATCH_DURATION, *own, stat="Average"),
                _metric(NAMESPACE, m.BATCH_DURATION, *own, stat="Maximum"),
            ],
            0,
            7,
            6,
        ),
        _widget(
            "Objects and bytes written",
            [_metric(NAMESPACE, m.OBJECTS_WRITTEN, *own), _metric(NAMESPACE, m.BYTES_WRITTEN, *own, yAxis="right")],
            6,
            7,
            6,
        ),
        _widget("Error documents", [_metric(NAMESPACE, m.ERROR_DOCUMENTS, *own)], 12, 7, 6),
        _widget(
            "On-failure queue (messages)",
            [_metric("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", QUEUE)],
            18,
            7,
            6,
            "Maximum",
        ),
    ]
    widgets += compactor_row(13)
    y = 20
    for rt in model.types:
        typed = (*own, m.RECORD_TYPE, rt.type_name)
        widgets.append(
            {
                "type": "text",
                "x": 0,
                "y": y,
                "width": 24,
                "height": 1,
                "properties": {"markdown": f"## {rt.type_name}"},
            }
        )
        widgets += [
            _widget(f"{rt.type_name}: records archived", [_metric(NAMESPACE, m.RECORDS_ARCHIVED, *typed)], 0, y + 1, 8),
            _widget(f"{rt.type_name}: error records", [_metric(NAMESPACE, m.ERROR_RECORDS, *typed)], 8, y + 1, 8),
            _widget(
                f"{rt.type_name}: freshness (s)", [_metric(NAMESPACE, m.FRESHNESS, *typed)], 16, y + 1, 8, "Maximum"
            ),
        ]
        y += 7
    return {"widgets": widgets}


def compactor_row(y: int) -> list[dict]:
    """The compactor's health: what it merged, failures, backlog, and its functions' errors."""
    own = (m.COMPACTOR, COMPACTOR_NAME)
    return [
        {"type": "text", "x": 0, "y": y, "width": 24, "height": 1, "properties": {"markdown": "## Compactor"}},
        _widget(
            "Objects merged, written, duplicates dropped",
            [_metric(NAMESPACE, n, *own) for n in (m.OBJECTS_MERGED, m.OBJECTS_WRITTEN, m.DUPLICATES_DROPPED)],
            0,
            y + 1,
            6,
        ),
        _widget(
            "Bytes merged and written",
            [_metric(NAMESPACE, n, *own) for n in (m.BYTES_MERGED, m.BYTES_WRITTEN)],
            6,
            y + 1,
            6,
        ),
        _widget(
            "Backlog: oldest marker (s), partitions left",
            [
                _metric(NAMESPACE, m.OLDEST_MARKER_AGE, *own),
                _metric(NAMESPACE, m.PARTITIONS_LEFT, *own, stat="Sum", yAxis="right"),
            ],
            12,
            y + 1,
            6,
            "Maximum",
        ),
        _widget(
            "Failures: merges, unreadable big objects, invocations",
            [
                _metric(NAMESPACE, m.MERGES_FAILED, *own),
                _metric(NAMESPACE, m.OBJECTS_UNCHECKED, *own),
                _metric("AWS/Lambda", "Errors", "FunctionName", COMPACTOR_NAME),
                _metric("AWS/Lambda", "Errors", "FunctionName", WORKER_NAME),
            ],
            18,
            y + 1,
            6,
        ),
    ]


def dashboard_heredoc(model: Model) -> str:
    """The dashboard's JSON as a heredoc body, stand-ins replaced by interpolations."""
    widgets = ",\n".join("    " + json.dumps(w) for w in dashboard(model)["widgets"])  # a widget a line
    text = '{\n  "widgets": [\n' + widgets + "\n  ]\n}"
    if "${" in text or "%{" in text:
        raise ValueError("the dashboard's JSON cannot be embedded in a heredoc")
    for stand_in, expr in INTERPOLATIONS.items():
        text = text.replace(stand_in, expr)
    return text
