"""Fan-out compaction on AWS's own machinery: the scheduled function plans, Lambda's SQS event
source runs workers in parallel (dmd.lake.compact_handler.handler and .worker).

One scheduled run is enough while it gets through the touched partitions within its budget; a
run that cannot leaves the rest for the next tick, and the backlog grows (OldestMarkerAge). In
fan-out mode (DMD_COMPACT_QUEUE_URL set) the scheduled function only plans:

  1. it reads the touched markers. A marker is *due* once its batch's objects are all old enough
     to be merge candidates (compact.consumable: for a compaction starting now). A due marker is
     deleted when every partition it names has a `settled` stamp covering it (a worker compacted
     the partition in full after that batch); its other partitions are work. Markers not due
     wait; their partitions get no message yet.
  2. partitions with an open journal entry (a merge a killed worker left) are work too;
  3. one message per partition goes to the queue: {"partition": [format, type, date],
     "planned_at": epoch seconds}.

A worker gets a batch of messages (the event source mapping's batch size) and, per message:
skips it if the partition's stamp was written by a compaction that started after `planned_at`
(a duplicate delivery, or work re-planned before it was done); else compacts the partition
(under its lease, journal first: dmd.lake.compact) and, done in full, puts the stamp
`{"listed_at": start, "horizon": start - min_age}`. A message whose partition failed (storage
error, failed merge, stuck journal entry) or was not started within the budget is reported in
`batchItemFailures`: SQS delivers it again after the visibility timeout and, after the
queue's maxReceiveCount, moves it to the dead-letter queue. A partition another compactor holds
(busy) counts as handled: its holder finishes it, or the next plan sends it again.

What a kill, a lost or a duplicate message leaves:
- the planner killed while sending: no marker was deleted; the next tick plans again (messages
  sent twice are skipped by the stamp, else merged once by the lease and the journal);
- a message lost or dead-lettered: its partition gets no stamp, so its markers stay and the next
  tick sends it again (OldestMarkerAge grows meanwhile and alarms if it lasts);
- a worker killed or timed out mid-merge: the journal entry stays; the message comes back after
  the visibility timeout (and the planner sends journal partitions) and the merge is finished or
  undone; killed after its merges but before the stamp: the message comes back, nothing is left
  to merge, the stamp is put;
- a stamp put late by a slower worker with an older start only makes markers wait longer.
A marker is deleted at the first tick after its partitions were done, not by the workers: no
worker needs to know which markers name its partition.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from . import layout
from .compact import Compactor, Options, Report, consumable, journal_partitions, read_markers
from .formats import FORMATS
from .state import Partition
from .storage import Storage, StorageError

JSON = "application/json"
MAX_BATCH = 10  # SQS SendMessageBatch's limit
_TYPE_NAME = re.compile(r"[a-z0-9_]{1,63}\Z")  # the metaschema's record type names


class Queue:
    """The fan-out queue, as the planner sends to it (boto3's standard retries)."""

    def __init__(self, url: str, client: Any = None) -> None:
        self.url = url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "total_max_attempts": 4}, connect_timeout=5, read_timeout=20)
            self._client = boto3.client("sqs", config=config)  # endpoint: AWS_ENDPOINT_URL_SQS if set
        return self._client

    def send(self, bodies: list[str]) -> list[str]:
        """Send every body; the errors of those that could not be sent."""
        from botocore.exceptions import BotoCoreError, ClientError

        errors = []
        for start in range(0, len(bodies), MAX_BATCH):
            entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + MAX_BATCH])]
            try:
                answer = self.client.send_message_batch(QueueUrl=self.url, Entries=entries)
            except (BotoCoreError, ClientError) as e:
                errors += [f"cannot send to the fan-out queue: {e}"] * len(entries)
                continue
            errors += [f"cannot send to the fan-out queue: {f.get('Code')}" for f in answer.get("Failed", ())]
        return errors


def message(p: Partition, planned_at: float) -> str:
    return json.dumps({"partition": p.to_json(), "planned_at": planned_at}, separators=(",", ":"))


def parse_message(body: str) -> tuple[Partition, float]:
    """A message's partition and plan time; ValueError for anything else."""
    try:
        doc = json.loads(body)
        p = Partition.from_json(doc["partition"])
        planned_at = float(doc["planned_at"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"not a fan-out message: {type(e).__name__}") from e
    if p.format not in FORMATS or not _TYPE_NAME.match(p.type_name):
        raise ValueError("not a fan-out message: unknown format or bad type name")
    return p, planned_at


def read_stamp(storage: Storage, state_prefix: str, p: Partition) -> dict[str, float]:
    """A partition's settled stamp; {} if there is none (or it cannot be read: then it is
    compacted again, which is safe)."""
    try:
        doc = json.loads(storage.get(layout.settled_key(state_prefix, p.format, p.type_name, p.day)))
        return {"listed_at": float(doc["listed_at"]), "horizon": float(doc["horizon"])}
    except (StorageError, ValueError, KeyError, TypeError):
        return {}


def plan(storage: Storage, options: Options, queue: Queue) -> Report:
    """The planner's run: consume the markers the stamps cover, send the rest as messages."""
    started, now = time.monotonic(), time.time()
    o = options
    report = Report()
    left: list[float] = []
    work: set[Partition] = set()
    try:
        markers = read_markers(storage, o.state_prefix, report)
        work |= journal_partitions(storage, o.state_prefix)
    except StorageError as e:
        report.errors.append(f"finding work: {e}")
        return report
    horizons: dict[Partition, float] = {}
    for key, (written, partitions) in sorted(markers.items()):
        if not consumable(written, now - o.min_age, o):  # not due: its batch is too young to merge
            left.append(written)
            continue
        for p in partitions - horizons.keys():
            horizons[p] = read_stamp(storage, o.state_prefix, p).get("horizon", float("-inf"))
        uncovered = {p for p in partitions if not consumable(written, horizons[p], o)}
        if uncovered:
            work |= {p for p in uncovered if o.wants(p)}
            left.append(written)
            continue
        try:
            storage.delete(key)
            report.markers_consumed += 1
        except StorageError as e:
            report.errors.append(f"{key}: {e}")
            left.append(written)
    ordered = sorted(work, key=lambda p: (p.format, p.type_name, p.day))
    errors = queue.send([message(p, now) for p in ordered])
    report.queued = len(ordered) - len(errors)
    report.errors += sorted(set(errors))
    report.oldest_marker = min(left, default=None)
    report.seconds = time.monotonic() - started
    return report


def work(storage: Storage, options: Options, records: Iterable[Mapping[str, Any]]) -> tuple[Report, list[str]]:
    """A worker's batch of SQS records: the report of its compactions, and the message ids to
    report as failed (SQS delivers them again)."""
    started = time.monotonic()
    o = options
    total = Report()
    failed: list[str] = []
    for record in records:
        message_id = str(record.get("messageId", ""))
        remaining = None if o.budget is None else o.budget - (time.monotonic() - started)
        try:
            p, planned_at = parse_message(str(record.get("body", "")))
        except ValueError as e:
            total.errors.append(f"message {message_id}: {e}")
            failed.append(message_id)
            continue
        if remaining is not None and remaining <= 0:
            total.deferred.append(str(p))
            failed.append(message_id)
            continue
        if read_stamp(storage, o.state_prefix, p).get("listed_at", float("-inf")) >= planned_at:
            continue  # compacted since it was planned: a duplicate delivery
        compactor = Compactor(storage, replace(o, partitions=frozenset({p}), budget=remaining, scan_all=False))
        begun = time.time()
        report = compactor.run()
        _absorb(total, report)
        if p in compactor.settled:
            stamp = json.dumps({"listed_at": begun, "horizon": begun - o.min_age}).encode()
            try:
                storage.put(layout.settled_key(o.state_prefix, p.format, p.type_name, p.day), stamp, JSON)
            except StorageError as e:
                total.errors.append(f"{p}: stamp: {e}")
                failed.append(message_id)
        elif report.deferred or report.errors or report.failed or report.stuck:
            failed.append(message_id)
        # else busy: another compactor holds the partition; its holder or the next plan covers it
    total.seconds = time.monotonic() - started
    return total, failed


def _absorb(total: Report, one: Report) -> None:
    total.partitions += one.partitions
    for name in ("merges", "recovered", "stuck", "busy", "deferred", "errors"):
        getattr(total, name).extend(getattr(one, name))
