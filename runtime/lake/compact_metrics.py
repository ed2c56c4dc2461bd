"""The metrics of one compaction run (single, fan-out planner or worker), as the values of one
CloudWatch Embedded Metric Format line (dmd.lake.metrics); the names and units are documented in
docs/operations.md and read by the generated alarms and dashboard. Counts and durations only:
nothing in them names a record value.
"""

from __future__ import annotations

from . import metrics
from .compact import Report
from .metrics import Metric


def run_metrics(report: Report, mode: str, now: float) -> dict[str, Metric]:
    """A run's metrics (docs/operations.md): what it merged, what failed, the backlog it left.
    `mode`: "single" (a whole run), "planner" (fan-out: it sends partitions, compacts none) or
    "worker" (fan-out: it compacts, reads no marker)."""
    d = report.to_dict()
    out = {
        metrics.OBJECTS_MERGED: Metric(d["objects_merged"]),
        metrics.OBJECTS_WRITTEN: Metric(d["objects_written"]),
        metrics.BYTES_MERGED: Metric(d["bytes_in"], "Bytes"),
        metrics.BYTES_WRITTEN: Metric(d["bytes_out"], "Bytes"),
        metrics.DUPLICATES_DROPPED: Metric(d["duplicates_dropped"]),
        metrics.MERGES_FAILED: Metric(len(report.failed) + len(report.stuck) + len(report.errors)),
        metrics.OBJECTS_UNCHECKED: Metric(len(d["unchecked"])),
        metrics.PARTITIONS_COMPACTED: Metric(report.partitions),
        metrics.PARTITIONS_LEFT: Metric(len(set(report.deferred) | set(report.busy)) + len(report.errors)),
        metrics.RUN_DURATION: Metric(round(report.seconds, 3), "Seconds"),
    }
    if mode == "planner":
        out[metrics.PARTITIONS_QUEUED] = Metric(report.queued)
    if mode != "worker":  # the runs that read the touched markers
        out[metrics.MARKERS_LEFT] = Metric(report.markers_read - report.markers_consumed)
        age = 0.0 if report.oldest_marker is None else max(now - report.oldest_marker, 0.0)
        out[metrics.OLDEST_MARKER_AGE] = Metric(round(age, 3), "Seconds")
    return out
