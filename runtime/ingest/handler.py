"""AWS Lambda entry point: `dmd.ingest.handler.handler`.

Configuration is read and validated at import (the cold start), so a bad setting fails the
init with a clear message instead of failing every batch. Bad records never raise: they go to
error documents. Records whose data container or error document could not be written are
returned as batchItemFailures, so Lambda retries them from the lowest sequence number.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import boto3  # noqa: F401  # at init, like any Lambda; the S3 client itself is made on the first put

from dmd.generated import REGISTRY
from dmd.lake.storage import S3Storage

from . import logs
from .config import from_environment
from .envelope import decode_event
from .pipeline import gc_paused, process_batch, summary

CONFIG = from_environment(os.environ)
logs.configure(CONFIG.log_level)
STORAGE = S3Storage(CONFIG.bucket, endpoint_url=CONFIG.endpoint_url, policy=CONFIG.s3_policy)


class UnreportableFailure(RuntimeError):
    """A record without a sequence number could not be stored: fail the whole batch."""


def handler(event: Any, context: Any = None) -> dict[str, list[dict[str, str]]]:
    started = time.perf_counter()
    with gc_paused():
        sources = decode_event(event)
        result = process_batch(sources, registry=REGISTRY, settings=CONFIG.settings, storage=STORAGE)
    failures = result.failed_sequence_numbers()
    fields = summary(result) | {"duration_ms": round((time.perf_counter() - started) * 1000, 1)}
    logs.event(
        "batch archived" if not failures else "batch partly failed",
        logging.INFO if not failures else logging.ERROR,
        **fields,
    )
    if "" in failures:
        raise UnreportableFailure("a record without a sequence number could not be stored; retrying the batch")
    return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failures]}
