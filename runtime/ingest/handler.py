"""AWS Lambda entry point: `dmd.ingest.handler.handler`.

Configuration is read and validated at import (the cold start), so a bad setting fails the
init with a clear message instead of failing every batch. Bad records never raise: they go to
error documents. Records whose data container or error document could not be written are
returned as batchItemFailures, so Lambda retries them from the lowest sequence number.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3  # noqa: F401  # at init, like any Lambda; the S3 client itself is made on the first put

from dmd.generated import REGISTRY
from dmd.lake import metrics
from dmd.lake.storage import S3Storage

from . import logs
from .batch_metrics import batch_metrics
from .config import from_environment
from .envelope import decode_event
from .pipeline import gc_paused, process_batch, summary


class WrongRuntime(RuntimeError):
    """The package was built for another Python or instruction set than the one running it."""


TARGET_FILE = Path(__file__).with_name("lambda_target.json")  # written by `dmd package`


def check_target(target_file: Path = TARGET_FILE) -> None:
    """Refuse, at cold start, a package built for another runtime (`dmd package` records its
    target): its native libraries would fail to import somewhere in the first batch instead."""
    if not target_file.exists():  # not a package: a checkout or an installed distribution
        return
    target = json.loads(target_file.read_text())
    running = f"{sys.version_info.major}.{sys.version_info.minor}", platform.machine()
    if running != (target["python"], target["machine"]):
        raise WrongRuntime(
            f"this package was built for python{target['python']} on {target['architecture']} "
            f"(`dmd package --python {target['python']} --arch {target['architecture']}`), but runs on "
            f"python{running[0]} on {running[1]}: rebuild it with the function's runtime and architecture"
        )


check_target()
CONFIG = from_environment(os.environ)
logs.configure(CONFIG.log_level)
STORAGE = S3Storage(CONFIG.bucket, endpoint_url=CONFIG.endpoint_url, policy=CONFIG.s3_policy)
FUNCTION_NAME = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or "local"  # the metrics' Function dimension


class UnreportableFailure(RuntimeError):
    """A record without a sequence number could not be stored: fail the whole batch."""


def handler(event: Any, context: Any = None) -> dict[str, list[dict[str, str]]]:
    started = time.perf_counter()
    with gc_paused():
        sources = decode_event(event)
        result = process_batch(sources, registry=REGISTRY, settings=CONFIG.settings, storage=STORAGE)
    failures = result.failed_sequence_numbers()
    duration_ms = (time.perf_counter() - started) * 1000
    emit_metrics(result, duration_ms)
    fields = summary(result) | {"duration_ms": round(duration_ms, 1)}
    logs.event(
        "batch archived" if not failures else "batch partly failed",
        logging.INFO if not failures else logging.ERROR,
        **fields,
    )
    if "" in failures:
        raise UnreportableFailure("a record without a sequence number could not be stored; retrying the batch")
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failures]}


def emit_metrics(result: Any, duration_ms: float) -> None:
    """The batch's EMF lines on stdout. The batch is stored by now: a fault here must not fail
    it (Lambda would retry records already archived), so it is logged instead."""
    try:
        now = datetime.now(UTC)
        for dimensions, values in batch_metrics(result, FUNCTION_NAME, duration_ms, now):
            metrics.emit(CONFIG.metrics_namespace, dimensions, values, timestamp=now)
    except Exception as e:
        logs.event("metrics not emitted", logging.WARNING, error=type(e).__name__)
