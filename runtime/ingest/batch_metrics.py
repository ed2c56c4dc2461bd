"""The metrics of one batch, as CloudWatch Embedded Metric Format lines (dmd.lake.metrics).

One line for the function as a whole and one per record type the batch touched; the names and
units are documented in docs/operations.md and read by the generated alarms and dashboard.
Dimension values are the function's name and registered record types' names only: records whose
type is not known (not JSON, an unregistered `type`...) count under UNKNOWN_TYPE.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from dmd.lake.metrics import (
    BATCH_DURATION,
    BYTES_WRITTEN,
    ERROR_DOCUMENTS,
    ERROR_RECORDS,
    FRESHNESS,
    FUNCTION,
    OBJECTS_WRITTEN,
    RECORD_TYPE,
    RECORDS_ARCHIVED,
    RECORDS_IN,
    RETRY_RECORDS,
    UNKNOWN_TYPE,
    Metric,
)

from .pipeline import BatchResult

Dimensions = dict[str, str]


def batch_metrics(
    result: BatchResult, function: str, duration_ms: float, now: datetime
) -> list[tuple[Dimensions, dict[str, Metric]]]:
    """(dimensions, metrics) of each line: the function's, then one per record type."""
    archived: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    size: Counter[str] = Counter()
    oldest: dict[str, datetime] = {}
    for d in result.data:
        archived[d.type_name] += d.records
        objects[d.type_name] += 1
        size[d.type_name] += d.size
        if d.oldest_change is not None and (d.type_name not in oldest or d.oldest_change < oldest[d.type_name]):
            oldest[d.type_name] = d.oldest_change
    errors: Counter[str] = Counter()
    for d in result.errors:
        errors[d.error_type or UNKNOWN_TYPE] += d.records
    retry: Counter[str] = Counter()
    for f in result.failed:
        retry[f.type_name or UNKNOWN_TYPE] += len(f.sources)

    def age(when: datetime) -> float:
        return round(max((now - when).total_seconds(), 0.0), 3)

    batch = {
        RECORDS_IN: Metric(result.records_in),
        RECORDS_ARCHIVED: Metric(sum(archived.values())),
        ERROR_RECORDS: Metric(sum(errors.values())),
        ERROR_DOCUMENTS: Metric(len(result.errors)),
        RETRY_RECORDS: Metric(sum(retry.values())),
        OBJECTS_WRITTEN: Metric(sum(objects.values())),
        BYTES_WRITTEN: Metric(sum(size.values()), "Bytes"),
        BATCH_DURATION: Metric(round(duration_ms, 1), "Milliseconds"),
    }
    if oldest:
        batch[FRESHNESS] = Metric(age(min(oldest.values())), "Seconds")
    lines = [({FUNCTION: function}, batch)]
    for type_name in sorted(archived.keys() | errors.keys() | retry.keys()):
        per_type = {
            RECORDS_ARCHIVED: Metric(archived[type_name]),
            ERROR_RECORDS: Metric(errors[type_name]),
            RETRY_RECORDS: Metric(retry[type_name]),
            OBJECTS_WRITTEN: Metric(objects[type_name]),
            BYTES_WRITTEN: Metric(size[type_name], "Bytes"),
        }
        if type_name in oldest:
            per_type[FRESHNESS] = Metric(age(oldest[type_name]), "Seconds")
        lines.append(({FUNCTION: function, RECORD_TYPE: type_name}, per_type))
    return lines
