"""AWS Lambda entry point of the backfill: `dmd.ingest.backfill_handler.handler`, invoked by the
generated Step Functions state machine once per data file of an export (a Distributed Map over
the export's manifest-files.json), with the event

    {"bucket": "<export bucket>", "manifest": "<prefix>/AWSDynamoDB/<export-id>/manifest-files.json",
     "file": {"itemCount": ..., "md5Checksum": ..., "etag": ..., "dataFileS3Key": "..."}}

(the state machine's input and the map item: a line of that manifest).

It archives that data file exactly as `dmd backfill` does (dmd.ingest.backfill.backfill_file)
and returns its counts. A failure raises: the state machine retries the file, which writes the
same objects again; a file archived already (its done marker exists) is not read again.

Environment: the archiving function's (dmd.ingest.config: DMD_BUCKET, DMD_PREFIX, DMD_FORMAT, ...)
plus DMD_BACKFILL_TARGET_BYTES (objects at most this big, default 128 MiB) and
DMD_BACKFILL_BUFFER_ROWS (items held before encoding, default 20,000: the memory). Give the
function 2048 MB, 900 s and ephemeral storage of the data file plus the target size.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from dmd.lake.storage import S3Storage

from .backfill import DEFAULT_BUFFER_ROWS, DEFAULT_TARGET_BYTES, Plan, backfill_file, check_plan, open_export
from .config import ConfigError, from_environment
from .export import DataFile

log = logging.getLogger("dmd.backfill")


def _number(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = environ.get(name, "") or str(default)
    if not text.isdigit() or not low <= int(text) <= high:
        raise ConfigError(f"{name} {text!r} must be a whole number from {low} to {high}")
    return int(text)


def configure(environ: Mapping[str, str]) -> tuple[Any, Plan]:
    config = from_environment(environ)
    target = _number(environ, "DMD_BACKFILL_TARGET_BYTES", DEFAULT_TARGET_BYTES, 1 << 20, 5 << 30)
    buffer_rows = _number(environ, "DMD_BACKFILL_BUFFER_ROWS", DEFAULT_BUFFER_ROWS, 100, 10_000_000)
    return config, Plan.of(config.settings, target, buffer_rows)


CONFIG, PLAN = configure(os.environ)  # at cold start: a bad value fails the init, naming it
logging.basicConfig(stream=sys.stderr, level=CONFIG.log_level, format="%(message)s", force=True)
STORAGE = S3Storage(CONFIG.bucket, endpoint_url=CONFIG.endpoint_url, policy=CONFIG.s3_policy)


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    from dmd.generated import REGISTRY

    event = event if isinstance(event, Mapping) else {}
    item, bucket, manifest = event.get("file"), event.get("bucket"), event.get("manifest")
    if (
        not isinstance(item, Mapping)
        or not isinstance(item.get("dataFileS3Key"), str)
        or not isinstance(bucket, str)
        or not isinstance(manifest, str)
    ):
        raise ValueError(
            "expected {'bucket': ..., 'manifest': '.../AWSDynamoDB/<export-id>/manifest-files.json', "
            "'file': <a line of that manifest>}"
        )
    export = open_export(f"s3://{bucket}/{manifest.rpartition('/')[0]}/", CONFIG.endpoint_url)
    summary = export.summary()
    settings = CONFIG.settings
    check_plan(STORAGE, settings.state_prefix, summary.context.export_id, PLAN)
    items = item.get("itemCount")
    data_file = DataFile(item["dataFileS3Key"], items if type(items) is int else 0, str(item.get("md5Checksum", "")))
    result = backfill_file(export, summary, data_file, storage=STORAGE, settings=settings, registry=REGISTRY, plan=PLAN)
    out = {
        "export": summary.context.export_id,
        "data_file": result.data_file,
        "items": result.items,
        "archived": result.archived,
        "errors": result.errors,
        "objects": result.objects,
        "done_before": result.done_before,
    }
    log.info(json.dumps({"message": "backfill file archived", **out}))
    return out
