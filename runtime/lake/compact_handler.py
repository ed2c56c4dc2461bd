"""AWS Lambda entry points of the compactor.

`handler`, run on a schedule (EventBridge; the event is ignored): without DMD_COMPACT_QUEUE_URL
(single mode) each invocation compacts the partitions named by the touched markers under the
state prefix (dmd.lake.compact), stops starting merges after DMD_COMPACT_BUDGET_SECONDS and
leaves the rest, markers included, to the next invocation. With DMD_COMPACT_QUEUE_URL (fan-out
mode) it only plans: one SQS message per partition to compact (dmd.lake.fanout).

`worker`, invoked by the SQS event source mapping of that queue: compacts the partitions of its
messages and answers `batchItemFailures` (the mapping needs ReportBatchItemFailures) for those
to deliver again.

Both write one log line with the run's report and one CloudWatch Embedded Metric Format line
(dmd.lake.metrics; names in docs/operations.md) under the dimension `Compactor`.

Give the functions a timeout of the budget plus the time of one merge (a 128 MiB merge takes
well under a minute; e.g. budget 600 s, timeout 900 s), at least 1024 MB of memory (a merge
streams; its peak is measured in docs/compaction.md) and ephemeral storage of twice the target
size (the merged object is written to /tmp, then read back from S3 to be verified).

Environment, read and validated at cold start (a bad value fails the init, naming it):

    DMD_BUCKET                    (required) the lake's bucket
    DMD_PREFIX                    archive      key prefix of data containers
    DMD_STATE_PREFIX              _dmd-state   its own prefix: touched markers, journal, leases, identity indexes
    DMD_COMPACT_MIN_AGE_SECONDS   3600         merge only objects written at least this long ago
    DMD_COMPACT_TARGET_BYTES      134217728    merged objects are at most this big; objects of 75% of it are left alone
    DMD_COMPACT_BUDGET_SECONDS    600          no merge starts after this
    DMD_COMPACT_MARKER_GRACE_SECONDS 900       a touched marker's batch may still be writing this long
    DMD_S3_ENDPOINT               (AWS)        S3 endpoint URL (a local server in tests)
    DMD_COMPACT_QUEUE_URL         (none)       the fan-out queue: set, the scheduled run only plans
    DMD_METRICS_NAMESPACE         dmd-pipeline CloudWatch namespace of the metric lines
    DMD_COMPACTOR_NAME            (the function's name) the metrics' Compactor dimension: the
                                               scheduled function's name, on its workers too

The role needs s3:ListBucket on the data and state prefixes and s3:GetObject, s3:PutObject and
s3:DeleteObject on `{DMD_PREFIX}/*` and `{DMD_STATE_PREFIX}/*`, nothing else. (The ingest
function needs s3:PutObject on `{DMD_STATE_PREFIX}/touched/*` for its markers.) In fan-out mode
the scheduled function also needs sqs:SendMessage on the queue, and the worker sqs:ReceiveMessage,
sqs:DeleteMessage and sqs:GetQueueAttributes (the event source mapping polls with its role).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from . import fanout, metrics
from .compact import MIB, Options, Report, compact
from .compact_metrics import run_metrics
from .layout import DEFAULT_STATE_PREFIX
from .storage import S3Storage

ENVIRONMENT: dict[str, str | None] = {
    "DMD_BUCKET": None,
    "DMD_PREFIX": "archive",
    "DMD_STATE_PREFIX": DEFAULT_STATE_PREFIX,
    "DMD_COMPACT_MIN_AGE_SECONDS": "3600",
    "DMD_COMPACT_TARGET_BYTES": str(128 * MIB),
    "DMD_COMPACT_BUDGET_SECONDS": "600",
    "DMD_COMPACT_MARKER_GRACE_SECONDS": "900",
    "DMD_S3_ENDPOINT": "",
    "DMD_COMPACT_QUEUE_URL": "",
    "DMD_METRICS_NAMESPACE": metrics.DEFAULT_NAMESPACE,
    "DMD_COMPACTOR_NAME": "",
}
_PREFIX = re.compile(r"[A-Za-z0-9_.*'()!-]+(/[A-Za-z0-9_.*'()!-]+)*\Z")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
# name -> (lowest, highest)
_NUMBERS = {
    "DMD_COMPACT_MIN_AGE_SECONDS": (0, 365 * 86400),
    "DMD_COMPACT_TARGET_BYTES": (MIB, 5 * 1024 * MIB),
    "DMD_COMPACT_BUDGET_SECONDS": (1, 900),
    "DMD_COMPACT_MARKER_GRACE_SECONDS": (0, 3600),
}

log = logging.getLogger("dmd.compact")


class ConfigError(ValueError):
    pass


class Config(NamedTuple):
    bucket: str
    endpoint: str | None
    options: Options
    queue_url: str  # "": single mode
    namespace: str
    compactor: str  # the metrics' Compactor dimension


def from_environment(environ: Mapping[str, str]) -> Config:
    """The configuration; raises ConfigError naming every bad variable."""
    values = {name: environ.get(name, default or "") for name, default in ENVIRONMENT.items()}
    problems = []
    if not _BUCKET.match(values["DMD_BUCKET"]):
        problems.append(f"DMD_BUCKET {values['DMD_BUCKET']!r} must be an S3 bucket name (required)")
    for name in ("DMD_PREFIX", "DMD_STATE_PREFIX"):
        segments = values[name].split("/")
        if not _PREFIX.match(values[name]) or "." in segments or ".." in segments:
            problems.append(f"{name} {values[name]!r} must be '/'-separated segments of letters, digits and _.*'()!-")
    a, b = values["DMD_PREFIX"] + "/", values["DMD_STATE_PREFIX"] + "/"
    if a.startswith(b) or b.startswith(a):
        problems.append("DMD_PREFIX and DMD_STATE_PREFIX must not contain one another")
    numbers: dict[str, float] = {}
    for name, (lo, hi) in _NUMBERS.items():
        try:
            numbers[name] = float(values[name])
        except ValueError:
            numbers[name] = float("nan")
        if not lo <= numbers[name] <= hi:
            problems.append(f"{name} {values[name]!r} must be a number from {lo} to {hi}")
    endpoint = values["DMD_S3_ENDPOINT"] or None
    if endpoint and not re.match(r"https?://[^\s/]+", endpoint):
        problems.append(f"DMD_S3_ENDPOINT {endpoint!r} must be an http(s) URL")
    queue_url = values["DMD_COMPACT_QUEUE_URL"]
    if queue_url and not re.match(r"https?://\S+\Z", queue_url):
        problems.append(f"DMD_COMPACT_QUEUE_URL {queue_url!r} must be an SQS queue URL (https://...)")
    if not re.match(metrics.NAMESPACE_PATTERN, values["DMD_METRICS_NAMESPACE"]):
        namespace = values["DMD_METRICS_NAMESPACE"]
        problems.append(f"DMD_METRICS_NAMESPACE {namespace!r} must be 1 to 255 of letters, digits and .-_/#:")
    compactor = values["DMD_COMPACTOR_NAME"] or environ.get("AWS_LAMBDA_FUNCTION_NAME") or "local"
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    options = Options(
        prefix=values["DMD_PREFIX"],
        state_prefix=values["DMD_STATE_PREFIX"],
        min_age=numbers["DMD_COMPACT_MIN_AGE_SECONDS"],
        target_size=int(numbers["DMD_COMPACT_TARGET_BYTES"]),
        budget=numbers["DMD_COMPACT_BUDGET_SECONDS"],
        marker_grace=numbers["DMD_COMPACT_MARKER_GRACE_SECONDS"],
    )
    return Config(values["DMD_BUCKET"], endpoint, options, queue_url, values["DMD_METRICS_NAMESPACE"], compactor)


CONFIG = from_environment(os.environ)
OPTIONS = CONFIG.options
STORAGE = S3Storage(CONFIG.bucket, endpoint_url=CONFIG.endpoint)
QUEUE = fanout.Queue(CONFIG.queue_url) if CONFIG.queue_url else None


def handler(event: Any = None, context: Any = None) -> dict[str, Any]:
    """The scheduled run: the whole compaction (single mode) or its plan (fan-out mode); returns
    the report (counts and keys, never a record value)."""
    if QUEUE is None:
        return _finish(compact(STORAGE, OPTIONS), "single")
    return _finish(fanout.plan(STORAGE, OPTIONS, QUEUE), "planner")


def worker(event: Any = None, context: Any = None) -> dict[str, Any]:
    """A batch of fan-out messages from the SQS event source mapping."""
    records = (event or {}).get("Records", [])
    report, failed = fanout.work(STORAGE, OPTIONS, records)
    _finish(report, "worker", messages=len(records), messages_failed=len(failed))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _finish(report: Report, mode: str, **extra: int) -> dict[str, Any]:
    """Log the report and write the metric line; a fault in the metrics never fails the run."""
    now = time.time()
    d = report.to_dict()
    d.pop("merge_list")
    if not log.handlers and not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    level = logging.INFO if report.ok else logging.ERROR
    log.log(level, json.dumps({"message": "compaction run", "mode": mode, **extra, **d}, default=str))
    try:
        function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or CONFIG.compactor
        metrics.emit(
            CONFIG.namespace,
            {metrics.COMPACTOR: CONFIG.compactor},
            run_metrics(report, mode, now),
            timestamp=now,
            properties={"Function": function, "Mode": mode},
        )
    except (metrics.MetricError, OSError, ValueError) as e:
        log.warning(json.dumps({"message": "metrics not emitted", "error": type(e).__name__}))
    return d
