"""CloudWatch metrics as log lines: the Embedded Metric Format (EMF).

In Lambda, a JSON line on stdout shaped as below becomes CloudWatch metrics when CloudWatch Logs
ingests it: no PutMetricData call, no latency, no API cost. The ingest handler emits one line
per batch and one per record type of the batch; the compactor can emit its own with `emit`.

    {"_aws": {"Timestamp": 1705343400000,
              "CloudWatchMetrics": [{"Namespace": "dmd-pipeline",
                                     "Dimensions": [["Function", "RecordType"]],
                                     "Metrics": [{"Name": "RecordsArchived", "Unit": "Count"}]}]},
     "Function": "dmd-archive", "RecordType": "demand", "RecordsArchived": 118}

Written here rather than with Powertools' Metrics: the format is one JSON object, and the
handler's cold import stays free of another package (docs/operations.md has the measurements).
The rules checked below are the specification's; tests validate the lines against its JSON
schema too. Dimensions are few, fixed names (function, record type), never a record value:
every distinct dimension value is a separate, billed metric.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import orjson

# CloudWatch's units (MetricDatum.Unit), as the EMF schema lists them.
UNITS = frozenset(
    (
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    )
)
MAX_DIMENSIONS = 9  # per dimension set
MAX_METRICS = 100  # per directive
MAX_VALUES = 100  # per metric given as a list of values
MAX_NAME = 255  # namespace, dimension and metric names


# --- the archiving function's metrics: written by dmd.ingest.batch_metrics, read by the generated
# alarms and dashboard (generator/targets/terraform.py); docs/operations.md describes each.
DEFAULT_NAMESPACE = "dmd-pipeline"
FUNCTION = "Function"  # dimension: the Lambda function's name
RECORD_TYPE = "RecordType"  # dimension: a registered record type, or UNKNOWN_TYPE
UNKNOWN_TYPE = "(unknown)"  # never a type name: the metaschema allows [a-z0-9_] only
RECORDS_IN = "RecordsIn"
RECORDS_ARCHIVED = "RecordsArchived"
ERROR_RECORDS = "ErrorRecords"
ERROR_DOCUMENTS = "ErrorDocuments"
RETRY_RECORDS = "RetryRecords"
OBJECTS_WRITTEN = "ObjectsWritten"
BYTES_WRITTEN = "BytesWritten"
BATCH_DURATION = "BatchDuration"
FRESHNESS = "Freshness"  # seconds from the oldest archived record's change time to its archiving
NAMESPACE_PATTERN = r"[A-Za-z0-9.\-_/#:]{1,255}\Z"  # CloudWatch's namespace characters

# --- the compactor's metrics: one line per run (dmd.lake.compact_handler), read by the generated
# alarms and dashboard; docs/operations.md describes each. The fan-out planner and its workers
# report under the same `Compactor` dimension (the scheduled function's name), so one alarm
# covers every compaction of the lake.
COMPACTOR = "Compactor"  # dimension: the scheduled compactor function's name
OBJECTS_MERGED = "ObjectsMerged"  # sources merged (and deleted); OBJECTS_WRITTEN: merged objects
BYTES_MERGED = "BytesMerged"  # bytes of those sources; BYTES_WRITTEN: bytes of the merged objects
DUPLICATES_DROPPED = "DuplicatesDropped"
MERGES_FAILED = "MergesFailed"  # failed merges, stuck journal entries, partitions a storage error stopped
OBJECTS_UNCHECKED = "ObjectsUnchecked"  # big objects no merge could check for twins: unreadable
PARTITIONS_COMPACTED = "PartitionsCompacted"  # partitions looked at
PARTITIONS_LEFT = "PartitionsLeft"  # not finished: the budget ran out, busy, failed (the backlog)
PARTITIONS_QUEUED = "PartitionsQueued"  # the fan-out planner's messages
MARKERS_LEFT = "MarkersLeft"  # touched markers still there after the run
OLDEST_MARKER_AGE = "OldestMarkerAge"  # seconds since the oldest of those was written
RUN_DURATION = "RunDuration"


class MetricError(ValueError):
    """A metric line the specification would reject (or CloudWatch would drop silently)."""


@dataclass(frozen=True, slots=True)
class Metric:
    value: float | int | tuple[float | int, ...]  # several values: CloudWatch aggregates them
    unit: str = "Count"


def line(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Mapping[str, Metric],
    *,
    timestamp: datetime | float | None = None,
    properties: Mapping[str, Any] | None = None,
) -> str:
    """One EMF document as a single line of JSON. `properties` are logged beside the metrics
    (searchable in Logs Insights) but are not metrics or dimensions."""
    _check_name("namespace", namespace)
    if len(dimensions) > MAX_DIMENSIONS:
        raise MetricError(f"{len(dimensions)} dimensions: at most {MAX_DIMENSIONS}")
    if not metrics or len(metrics) > MAX_METRICS:
        raise MetricError(f"{len(metrics)} metrics: from 1 to {MAX_METRICS}")
    doc: dict[str, Any] = {}
    for name, value in (properties or {}).items():
        if name == "_aws" or name in dimensions or name in metrics:
            raise MetricError(f"property {name!r} would shadow a dimension or metric")
        doc[name] = value
    for name, value in dimensions.items():
        _check_name("dimension", name)
        if type(value) is not str or not value:
            raise MetricError(f"dimension {name!r}: its value must be a non-empty string")
        doc[name] = value
    definitions = []
    for name, metric in metrics.items():
        _check_name("metric", name)
        if name in dimensions or name == "_aws":
            raise MetricError(f"metric {name!r} has the name of a dimension")
        if metric.unit not in UNITS:
            raise MetricError(f"metric {name!r}: unit {metric.unit!r} is not a CloudWatch unit")
        doc[name] = _value(name, metric.value)
        definitions.append({"Name": name, "Unit": metric.unit})
    directive = {"Namespace": namespace, "Dimensions": [list(dimensions)], "Metrics": definitions}
    doc["_aws"] = {"Timestamp": _millis(timestamp), "CloudWatchMetrics": [directive]}
    return orjson.dumps(doc).decode()


def emit(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Mapping[str, Metric],
    *,
    timestamp: datetime | float | None = None,
    properties: Mapping[str, Any] | None = None,
    stream: TextIO | None = None,
) -> str:
    """Write one EMF line to `stream` (stdout: what Lambda sends to CloudWatch Logs); returns it."""
    text = line(namespace, dimensions, metrics, timestamp=timestamp, properties=properties)
    out = stream or sys.stdout
    out.write(text + "\n")
    out.flush()
    return text


def _check_name(what: str, name: str) -> None:
    if type(name) is not str or not 1 <= len(name) <= MAX_NAME or not name.isprintable():
        raise MetricError(f"{what} name {name!r}: 1 to {MAX_NAME} printable characters")


def _value(name: str, value: Any) -> float | int | list[float | int]:
    values = list(value) if isinstance(value, tuple | list) else [value]
    if not 1 <= len(values) <= MAX_VALUES:
        raise MetricError(f"metric {name!r}: 1 to {MAX_VALUES} values")
    for v in values:
        if type(v) not in (int, float) or not math.isfinite(v):
            raise MetricError(f"metric {name!r}: values must be finite numbers")
    return values if isinstance(value, tuple | list) else value


def _millis(timestamp: datetime | float | None) -> int:
    if timestamp is None:
        return int(time.time() * 1000)
    if isinstance(timestamp, datetime):
        return int(timestamp.timestamp() * 1000)
    return int(timestamp * 1000)
