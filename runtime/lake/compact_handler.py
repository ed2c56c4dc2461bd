"""AWS Lambda entry point of the compactor: `dmd.lake.compact_handler.handler`, run on a
schedule (e.g. EventBridge every 15 minutes; the event is ignored).

Each invocation compacts the partitions named by the touched markers under the state prefix
(dmd.lake.compact), stops starting merges after DMD_COMPACT_BUDGET_SECONDS and leaves the rest,
markers included, to the next invocation. Give the function a timeout of the budget plus the
time of one merge (a 128 MiB merge takes well under a minute; e.g. budget 600 s, timeout 900 s)
and at least 1024 MB of memory (a merge streams; its peak is measured in docs/compaction.md) and
ephemeral storage of twice the target size (the merged object is written to /tmp, then read
back from S3 to be verified).

Environment, read and validated at cold start (a bad value fails the init, naming it):

    DMD_BUCKET                    (required) the lake's bucket
    DMD_PREFIX                    archive      key prefix of data containers
    DMD_STATE_PREFIX              _dmd-state   the compactor's own prefix: touched markers, journal, leases
    DMD_COMPACT_MIN_AGE_SECONDS   3600         merge only objects written at least this long ago
    DMD_COMPACT_TARGET_BYTES      134217728    merged objects are at most this big; objects of 75% of it are left alone
    DMD_COMPACT_BUDGET_SECONDS    600          no merge starts after this
    DMD_S3_ENDPOINT               (AWS)        S3 endpoint URL (a local server in tests)

The role needs s3:ListBucket on the data and state prefixes and s3:GetObject, s3:PutObject and
s3:DeleteObject on `{DMD_PREFIX}/*` and `{DMD_STATE_PREFIX}/*`, nothing else. (The ingest
function needs s3:PutObject on `{DMD_STATE_PREFIX}/touched/*` for its markers.)
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any

from .compact import MIB, Options, compact
from .layout import DEFAULT_STATE_PREFIX
from .storage import S3Storage

ENVIRONMENT: dict[str, str | None] = {
    "DMD_BUCKET": None,
    "DMD_PREFIX": "archive",
    "DMD_STATE_PREFIX": DEFAULT_STATE_PREFIX,
    "DMD_COMPACT_MIN_AGE_SECONDS": "3600",
    "DMD_COMPACT_TARGET_BYTES": str(128 * MIB),
    "DMD_COMPACT_BUDGET_SECONDS": "600",
    "DMD_S3_ENDPOINT": "",
}
_PREFIX = re.compile(r"[A-Za-z0-9_.*'()!-]+(/[A-Za-z0-9_.*'()!-]+)*\Z")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
# name -> (lowest, highest)
_NUMBERS = {
    "DMD_COMPACT_MIN_AGE_SECONDS": (0, 365 * 86400),
    "DMD_COMPACT_TARGET_BYTES": (MIB, 5 * 1024 * MIB),
    "DMD_COMPACT_BUDGET_SECONDS": (1, 900),
}

log = logging.getLogger("dmd.compact")


class ConfigError(ValueError):
    pass


def from_environment(environ: Mapping[str, str]) -> tuple[str, str | None, Options]:
    """(bucket, endpoint, options); raises ConfigError naming every bad variable."""
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
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    options = Options(
        prefix=values["DMD_PREFIX"],
        state_prefix=values["DMD_STATE_PREFIX"],
        min_age=numbers["DMD_COMPACT_MIN_AGE_SECONDS"],
        target_size=int(numbers["DMD_COMPACT_TARGET_BYTES"]),
        budget=numbers["DMD_COMPACT_BUDGET_SECONDS"],
    )
    return values["DMD_BUCKET"], endpoint, options


BUCKET, ENDPOINT, OPTIONS = from_environment(os.environ)
STORAGE = S3Storage(BUCKET, endpoint_url=ENDPOINT)


def handler(event: Any = None, context: Any = None) -> dict[str, Any]:
    """One compaction run; returns its report (counts and keys, never a record value)."""
    report = compact(STORAGE, OPTIONS).to_dict()
    report.pop("merge_list")
    level = logging.INFO if not (report["failed"] or report["stuck"] or report["errors"]) else logging.ERROR
    if not log.handlers and not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    log.log(level, json.dumps({"message": "compaction run", **report}, default=str))
    return report
