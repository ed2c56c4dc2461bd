"""A DynamoDB table export of a sample table, laid out byte for byte as AWS writes one (DynamoDB
developer guide, "DynamoDB table export output format"), for tests, the demo and the benchmark.

The table's history is `dmd sample`'s change stream (same records, same seed, same story of
inserts, updates and deletes). A full export holds each item as it was at the export time (after
the last change): `{"Item": {...}}` per line. An incremental export covers a window (the second
half of the stream's time by default) and holds, per item changed in it, one line with the final
state (`Metadata.WriteTimestampMicros` of its last change in the window, `Keys`, and `NewImage`
and/or `OldImage` as the view type keeps them); an item inserted and deleted in the window has
no line. Items are spread over `files` gzipped data files by a hash of their key, as DynamoDB
spreads them by partition (a file may be empty, as one of an empty partition is).

`bad_fraction` of the items are made invalid for the schemas (`BAD_KINDS`), and one line of a
data file may be no JSON at all; `ExportStats.bad` says where each is.

    stats = write_export(LocalStorage(root), "exports", records=1000, seed=7, kind=FULL)
    # -> root/exports/AWSDynamoDB/<export-id>/{manifest-summary.json, manifest-files.json, data/*.json.gz}
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

import orjson

from dmd.lake.storage import Storage
from dmd.tools.sample import REGION, TABLE, sample

FULL, INCREMENTAL = "FULL_EXPORT", "INCREMENTAL_EXPORT"
NEW_AND_OLD_IMAGES, NEW_IMAGE = "NEW_AND_OLD_IMAGES", "NEW_IMAGE"
ACCOUNT = "123456789012"
# How an item is made invalid: a required attribute dropped, an unregistered type, a number that is none.
BAD_KINDS = ("missing-attribute", "unknown-type", "not-a-number")


@dataclass
class ExportStats:
    export_id: str
    folder: str  # key of the export's folder: {prefix}/AWSDynamoDB/{export-id}/
    kind: str
    export_time: datetime
    items: int = 0  # lines with an item, good or bad
    files: int = 0
    by_type: Counter[str] = field(default_factory=Counter)  # good items per record type
    by_operation: Counter[str] = field(default_factory=Counter)  # incremental: INSERT/MODIFY/REMOVE
    bad: list[tuple[str, int, str]] = field(default_factory=list)  # (data file key, line, kind)


def _changes(records: int, seed: int) -> list[dict[str, Any]]:
    """The sample stream's change records (good ones only), in change-time order."""
    events, _ = sample(records, seed)
    docs = [orjson.loads(base64.b64decode(r["kinesis"]["data"])) for e in events for r in e["Records"]]
    return sorted(docs, key=lambda d: d["dynamodb"]["ApproximateCreationDateTime"])


def _micros(ms: int) -> int:
    return ms * 1000


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _spoil(image: dict[str, Any], kind: str, rng: Random) -> dict[str, Any]:
    image = dict(image)
    if kind == "unknown-type":
        image["type"] = {"S": "no-such-type"}
    elif kind == "not-a-number":
        numbers = [k for k, v in image.items() if isinstance(v, dict) and "N" in v]
        image[numbers[0] if numbers else "type"] = {"N": "twelve"}
    else:  # a required attribute of its type (every type has `type`)
        from dmd.generated import REGISTRY

        spec = REGISTRY[image["type"]["S"]]
        required = sorted(
            f.path
            for f in spec.fields
            if f.origin == "image" and not f.optional and "." not in f.path and f.kind != "record"
        )
        droppable = [k for k in required if k in image and k not in ("id", "type")] or ["type"]
        image.pop(droppable[rng.randrange(len(droppable))])
    return image


def write_export(
    storage: Storage,
    prefix: str,
    *,
    records: int,
    seed: int,
    kind: str = FULL,
    view: str = NEW_AND_OLD_IMAGES,
    files: int = 4,
    bad_fraction: float = 0.0,
    unreadable_line: bool = False,
    upto: float = 1.0,
) -> ExportStats:
    """Write an export of the sample table under `prefix` ('' for none) of `storage`, of the
    table as the first `upto` of the stream's changes left it."""
    changes = _changes(records, seed)
    if upto < 1.0 and changes:  # every change up to a moment: none later than the export time
        cut = changes[max(round(len(changes) * upto) - 1, 0)]["dynamodb"]["ApproximateCreationDateTime"]
        changes = [d for d in changes if d["dynamodb"]["ApproximateCreationDateTime"] <= cut]
    rng = Random(f"{seed}:export")
    first_ms = changes[0]["dynamodb"]["ApproximateCreationDateTime"] if changes else 0
    last_ms = changes[-1]["dynamodb"]["ApproximateCreationDateTime"] if changes else 0
    export_ms = last_ms + 1  # the export's point in time: just after the last change it holds
    export_time = datetime.fromtimestamp(export_ms / 1000, UTC)
    export_id = f"{export_ms:014d}-{hashlib.sha256(f'{seed}:{kind}'.encode()).hexdigest()[:8]}"
    base = f"{prefix}/" if prefix else ""
    folder = f"{base}AWSDynamoDB/{export_id}/"
    stats = ExportStats(export_id, folder, kind, export_time)

    lines: list[tuple[str, dict[str, Any]]] = []  # (item key text, line document)
    if kind == FULL:
        state: dict[str, dict[str, Any]] = {}
        for d in changes:
            key = orjson.dumps(d["dynamodb"]["Keys"], option=orjson.OPT_SORT_KEYS).decode()
            if d["eventName"] == "REMOVE":
                state.pop(key, None)
            else:
                state[key] = d["dynamodb"]["NewImage"]
        lines = [(k, {"Item": image}) for k, image in state.items()]
    else:
        window_start = first_ms + (last_ms - first_ms) // 2
        before: dict[str, dict[str, Any] | None] = {}  # state when the window opens
        after: dict[str, tuple[dict[str, Any] | None, int, Any]] = {}  # state when it closes, last write, keys
        for d in changes:
            ddb = d["dynamodb"]
            key = orjson.dumps(ddb["Keys"], option=orjson.OPT_SORT_KEYS).decode()
            new = None if d["eventName"] == "REMOVE" else ddb["NewImage"]
            if ddb["ApproximateCreationDateTime"] < window_start:
                before[key] = new
            else:
                after[key] = (new, ddb["ApproximateCreationDateTime"], ddb["Keys"])
        for key, (new, when_ms, keys) in after.items():
            old = before.get(key)
            if new is None and old is None:
                continue  # inserted and deleted inside the window: the export has nothing
            doc: dict[str, Any] = {"Metadata": {"WriteTimestampMicros": {"N": str(_micros(when_ms))}}, "Keys": keys}
            if new is not None:
                doc["NewImage"] = new
            if old is not None and view == NEW_AND_OLD_IMAGES:
                doc["OldImage"] = old
            stats.by_operation["REMOVE" if new is None else "MODIFY" if old is not None else "INSERT"] += 1
            lines.append((key, doc))

    n_bad = round(len(lines) * bad_fraction)
    bad_at = set(rng.sample(range(len(lines)), n_bad)) if n_bad else set()
    names = [
        base64.b32encode(hashlib.sha256(f"{export_id}:{i}".encode()).digest()).decode()[:26].lower()
        for i in range(files)
    ]
    data_folder = f"{folder}data/" if kind == FULL else f"{base}AWSDynamoDB/data/"
    per_file: list[list[bytes]] = [[] for _ in range(files)]
    for i, (key, doc) in enumerate(lines):
        f = int(hashlib.sha256(key.encode()).hexdigest(), 16) % files
        image_name = "Item" if kind == FULL else "NewImage" if "NewImage" in doc else "OldImage"
        if image_name not in doc:  # a delete in a NEW_IMAGE export: its keys only
            pass
        elif i in bad_at:
            bad_kind = BAD_KINDS[i % len(BAD_KINDS)]
            doc = {**doc, image_name: _spoil(doc[image_name], bad_kind, rng)}
            stats.bad.append((f"{data_folder}{names[f]}.json.gz", len(per_file[f]) + 1, bad_kind))
        else:
            stats.by_type[doc[image_name]["type"]["S"]] += 1
        per_file[f].append(orjson.dumps(doc))
        stats.items += 1
    if unreadable_line:  # the last line of the first file: no other line moves
        per_file[0].append(b'{"Item": {"id": {"S": "cut off')
        stats.bad.append((f"{data_folder}{names[0]}.json.gz", len(per_file[0]), "not-json"))
        stats.items += 1

    manifest = io.BytesIO()
    for name, body_lines in zip(names, per_file, strict=True):
        raw = b"".join(line + b"\n" for line in body_lines)
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
            gz.write(raw)
        body = buf.getvalue()
        key = f"{data_folder}{name}.json.gz"
        storage.put(key, body, "application/gzip")
        digest = hashlib.md5(body, usedforsecurity=False)
        entry = {
            "itemCount": len(body_lines),
            "md5Checksum": base64.b64encode(digest.digest()).decode(),
            "etag": digest.hexdigest(),
            "dataFileS3Key": key,
        }
        manifest.write(orjson.dumps(entry) + b"\n")
    stats.files = files
    files_body = manifest.getvalue()
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}"
    summary: dict[str, Any] = {
        "version": "2023-08-01" if kind == INCREMENTAL else "2020-06-30",
        "exportArn": f"{table_arn}/export/{export_id}",
        "startTime": _iso(export_time + timedelta(seconds=5)),
        "endTime": _iso(export_time + timedelta(minutes=6)),
        "tableArn": table_arn,
        "tableId": "12345a12-abcd-123a-ab12-1234abc12345",
        "exportTime": _iso(export_time),
        "s3Bucket": "exports",
        "s3Prefix": prefix or None,
        "s3SseAlgorithm": "AES256",
        "s3SseKmsKeyId": None,
        "manifestFilesS3Key": f"{folder}manifest-files.json",
        "billedSizeBytes": sum(len(x) for f in per_file for x in f),
        "itemCount": stats.items,
        "outputFormat": "DYNAMODB_JSON",
    }
    if kind == INCREMENTAL:
        summary |= {
            "exportType": INCREMENTAL,
            "exportFromTime": _iso(datetime.fromtimestamp(window_start / 1000, UTC)),
            "exportToTime": _iso(export_time),
            "outputView": view,
        }
    summary_body = orjson.dumps(summary, option=orjson.OPT_INDENT_2)
    storage.put(f"{folder}_started", b"", "application/octet-stream")
    storage.put(f"{folder}manifest-files.json", files_body, "application/json")
    storage.put(
        f"{folder}manifest-files.checksum",
        hashlib.md5(files_body, usedforsecurity=False).hexdigest().encode(),
        "text/plain",
    )
    storage.put(f"{folder}manifest-summary.json", summary_body, "application/json")
    storage.put(
        f"{folder}manifest-summary.checksum",
        hashlib.md5(summary_body, usedforsecurity=False).hexdigest().encode(),
        "text/plain",
    )
    return stats
