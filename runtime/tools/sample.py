"""Realistic sample input, generated from the schemas: Lambda Kinesis events (JSON lines).

Each line is one Lambda event, `{"Records": [...]}`, holding up to `batch_size` Kinesis
records of ONE shard, exactly as the event source mapping delivers them. A record's `data`
is the base64 of the JSON document DynamoDB writes into a Kinesis Data Stream
(`eventName`, `dynamodb.Keys/NewImage/OldImage`, `ApproximateCreationDateTime`, ...).

Everything is driven by `RecordSpec.fields`: the image of an item is built by walking the
`FieldInfo`s whose origin is "image" and taking values from `dmd.tools.synth`, so a new schema
gets samples with no code change. Field names only add realism (an `email` looks like an
e-mail address, a `demandId` points at a demand item of the sample), with a generic value per
kind as the fallback.

The stream tells a story: items are inserted (~70%), later modified (~20%, same id, later
change time, NewImage and OldImage) and removed (~10%, some by TTL). Changes arrive at `rate`
records per second (Poisson arrivals) from a moment on 2024-01-01, so a Lambda batch spans
seconds, as on a live table. The moments inside an item spread as the domain's do: those the
item was written at (`requested`, `created`, `sent`, `updated`) lie just before its change,
so demand and notifications partition around their arrival; a `firstSeen` lies up to weeks
before, a show's or a sale's `start` weeks ahead, so events and sales partition over dates of
their own. Moments of one item's life keep their order (created <= sent, start < end).

`bad_fraction` of the records are replaced by malformed ones (`dmd.tools.malform`), each still
in a valid Kinesis envelope (sequence number, eventID) so the pipeline can report it;
`SampleStats.bad_sequence_numbers` says which and of what kind. Output is a pure function of
(records, seed, bad_fraction, batch_size, kinds, rate).

    write_sample(sys.stdout, records=1000, seed=7, bad_fraction=0.05)  # -> SampleStats
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any, TextIO

import orjson

from dmd.support.records import FieldInfo, RecordSpec
from dmd.tools import malform
from dmd.tools.synth import ABSENT, Node, Values, image_nodes, is_recent, ts

REGION = "us-east-1"
TABLE = "demand-capture"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:123456789012:stream/{TABLE}"
INVOKE_ARN = "arn:aws:iam::123456789012:role/dmd"
SHARDS = ("shardId-000000000000", "shardId-000000000001")
TTL_IDENTITY: Mapping[str, str] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
DEFAULT_RATE = 50.0  # changes per second: a 100-record batch of one of the two shards spans ~4 s

# Operation mix of good records (cumulative thresholds), share of TTL among removes.
_P_INSERT, _P_MODIFY = 0.70, 0.90
_P_TTL = 0.3
_P_ABSENT = 0.3  # an optional field (or record) is left out of a new image
_POOL_CAP = 2000  # live items remembered per type (for MODIFY/REMOVE and references)

# The malformed kinds a sample can hold: the catalogue's Kinesis ones but a record without a
# sequence number (the stats name each malformed record by its sequence number). Rare ones
# (1 MB records) only when asked for by name.
MALFORMED_KINDS = tuple(k for k in malform.KINESIS if k != "missing-sequence-number")
DEFAULT_KINDS = tuple(k for k in MALFORMED_KINDS if not malform.CATALOGUE[k].rare)


class _Record:
    """Marks a present nested record (a DynamoDB map) in a flat image."""

    __slots__ = ()


_RECORD = _Record()


def _image(nodes: list[Node], flat: Mapping[str, Any]) -> dict[str, Any]:
    """Nest a flat image (path -> AttributeValue or _RECORD) into DynamoDB JSON."""
    root: dict[str, Any] = {}
    maps = {"": root}
    for n in nodes:
        path = n.info.path
        parent = path.rpartition(".")[0]
        if path not in flat or parent not in maps:
            continue
        value = flat[path]
        if n.record and value is _RECORD:
            inner: dict[str, Any] = {}
            maps[parent][n.name] = {"M": inner}
            maps[path] = inner
        else:
            maps[parent][n.name] = value
    return root


def _parent(n: Node) -> str:
    return n.info.path.rpartition(".")[0]


def _epoch_ms(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def change_document(
    operation: str, keys: Any, when_ms: int, event_id: str, new: Any = None, old: Any = None, ttl: bool = False
) -> dict[str, Any]:
    """The JSON document DynamoDB writes into Kinesis for one change."""
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": when_ms,
        "ApproximateCreationDateTimePrecision": "MILLISECOND",
        "Keys": keys,
    }
    if new is not None:
        ddb["NewImage"] = new
    if old is not None:
        ddb["OldImage"] = old
    ddb["SizeBytes"] = sum(len(orjson.dumps(x)) for x in (keys, new, old) if x is not None)
    return {
        "awsRegion": REGION,
        "eventID": event_id,
        "eventName": operation,
        "userIdentity": dict(TTL_IDENTITY) if ttl else None,
        "recordFormat": "application/json",
        "tableName": TABLE,
        "dynamodb": ddb,
        "eventSource": "aws:dynamodb",
    }


# --- statistics ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SampleStats:
    """What a sample holds: `records == good + bad`, every record in exactly one event."""

    records: int
    good: int
    bad: int
    events: int  # Lambda events (JSON lines)
    by_type: Mapping[str, int]  # good records per record type
    by_operation: Mapping[str, int]  # good records per eventName
    ttl_removes: int  # good REMOVEs made by TTL expiry
    by_bad_kind: Mapping[str, int]  # malformed records per kind
    bad_sequence_numbers: Mapping[str, str]  # sequenceNumber of each malformed record -> its kind

    def summary(self) -> str:
        types = " ".join(f"{t}={n}" for t, n in sorted(self.by_type.items()))
        ops = " ".join(f"{o}={n}" for o, n in sorted(self.by_operation.items()))
        return (
            f"{self.records} records ({self.good} good, {self.bad} malformed) in {self.events} events; "
            f"types: {types or '-'}; operations: {ops or '-'} ({self.ttl_removes} by TTL)"
        )


# --- the generator -------------------------------------------------------------------------------


class Sampler:
    """One sample run. Iterate `events()` once; `stats()` describes what it yielded.

    `registry` defaults to the generated one; `kinds` restricts the malformed kinds used
    (default: every kind of `DEFAULT_KINDS` some record type can carry).
    """

    def __init__(
        self,
        records: int,
        seed: int,
        bad_fraction: float = 0.0,
        batch_size: int = 100,
        *,
        registry: Mapping[str, RecordSpec] | None = None,
        kinds: Sequence[str] | None = None,
        rate: float = DEFAULT_RATE,
    ) -> None:
        if records < 0:
            raise ValueError(f"records must be >= 0, got {records}")
        if not 0.0 <= bad_fraction <= 1.0:
            raise ValueError(f"bad_fraction must be within [0, 1], got {bad_fraction}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not rate > 0:
            raise ValueError(f"rate must be > 0 records per second, got {rate}")
        if registry is None:
            from dmd.generated import REGISTRY as registry
        if not registry:
            raise ValueError("no record types to sample")
        self.records, self.batch_size = records, batch_size
        self.rng = Random(seed)
        self.values = Values(self.rng, wild=False, refs=self._known_id)
        self.types = sorted(registry)
        self.nodes = {t: image_nodes(registry[t].fields) for t in self.types}
        self.pools: dict[str, list[tuple[str, dict[str, Any]]]] = {t: [] for t in self.types}
        self.rate = rate
        self.now_ms = _epoch_ms(BASE_TIME) + self.rng.randrange(6 * 3600 * 1000)  # the last change time
        n_bad = round(records * bad_fraction)
        self.bad_positions = frozenset(Random(f"{seed}:bad-positions").sample(range(records), n_bad))
        unknown = sorted(set(kinds or ()) - set(MALFORMED_KINDS))
        if unknown:
            raise ValueError(f"unknown malformed kinds {unknown}; known: {', '.join(MALFORMED_KINDS)}")
        # the types that can carry each kind (a field-level kind needs a field that fits)
        self.fitting = {
            k: [t for t in self.types if malform.applies(malform.CATALOGUE[k], self.nodes[t])] for k in MALFORMED_KINDS
        }
        self.kinds = [k for k in (kinds or DEFAULT_KINDS) if self.fitting[k]]
        if n_bad and not self.kinds:
            raise ValueError(f"none of the malformed kinds {list(kinds or ())} fits the record types {self.types}")
        self._kind_queue: list[str] = []
        # Kinesis positions: a 56-digit sequence number per shard, increasing
        self.seq = [49 * 10**54 + self.rng.randrange(10**52) + i * 10**53 for i in range(len(SHARDS))]
        self.arrival = [0.0] * len(SHARDS)
        self.buffers: list[list[dict[str, Any]]] = [[] for _ in SHARDS]
        # statistics
        self.good = self.events_out = self.ttl_removes = 0
        self.by_type: Counter[str] = Counter()
        self.by_operation: Counter[str] = Counter()
        self.by_bad_kind: Counter[str] = Counter()
        self.bad_seqs: dict[str, str] = {}

    # -- stream -----------------------------------------------------------------------------------

    def events(self) -> Iterator[dict[str, Any]]:
        for i in range(self.records):
            when = self._clock()
            if i in self.bad_positions:
                data, key, kind = self._bad(when)
            else:
                (data, key), kind = self._good(when), ""
            event = self._put(data, key, when, kind)
            if event is not None:
                yield event
        for shard, buf in enumerate(self.buffers):
            if buf:
                self.buffers[shard] = []
                self.events_out += 1
                yield {"Records": buf}

    def stats(self) -> SampleStats:
        bad = sum(self.by_bad_kind.values())
        return SampleStats(
            records=self.good + bad,
            good=self.good,
            bad=bad,
            events=self.events_out,
            by_type=dict(sorted(self.by_type.items())),
            by_operation=dict(sorted(self.by_operation.items())),
            ttl_removes=self.ttl_removes,
            by_bad_kind=dict(sorted(self.by_bad_kind.items())),
            bad_sequence_numbers=dict(self.bad_seqs),
        )

    def _clock(self) -> datetime:
        """The next change time: Poisson arrivals at `rate` per second, increasing, in ms."""
        self.now_ms += max(1, round(self.rng.expovariate(self.rate) * 1000))
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=self.now_ms)

    def _put(self, data: str, key: str, when: datetime, bad_kind: str) -> dict[str, Any] | None:
        """Wrap `data` in a Kinesis record on the shard its partition key hashes to."""
        rng = self.rng
        partition_key = hashlib.md5(key.encode()).hexdigest().upper()
        shard = int(hashlib.md5(partition_key.encode()).hexdigest(), 16) >> 127  # Kinesis' own hash
        self.seq[shard] += rng.randrange(10**18, 10**20)
        seq = str(self.seq[shard])
        arrival = max(self.arrival[shard] + 0.001, _epoch_ms(when) / 1000 + rng.randrange(50, 1500) / 1000)
        self.arrival[shard] = arrival = round(arrival, 3)
        if bad_kind:
            self.bad_seqs[seq] = bad_kind
        buf = self.buffers[shard]
        buf.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": partition_key,
                    "sequenceNumber": seq,
                    "data": data,
                    "approximateArrivalTimestamp": arrival,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{SHARDS[shard]}:{seq}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": INVOKE_ARN,
                "awsRegion": REGION,
                "eventSourceARN": STREAM_ARN,
            }
        )
        if len(buf) < self.batch_size:
            return None
        self.buffers[shard] = []
        self.events_out += 1
        return {"Records": buf}

    def _change(
        self, operation: str, item_id: str, when: datetime, new: Any = None, old: Any = None, ttl: bool = False
    ) -> dict[str, Any]:
        event_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return change_document(operation, {"id": {"S": item_id}}, _epoch_ms(when), event_id, new, old, ttl)

    # -- good records -----------------------------------------------------------------------------

    def _good(self, when: datetime) -> tuple[str, str]:
        """(kinesis data, item id) of the next change of the story."""
        rng = self.rng
        if self.good < len(self.types):  # every type shows up from the start
            operation, type_name = "INSERT", self.types[self.good]
        else:
            r = rng.random()
            operation = "INSERT" if r < _P_INSERT else "MODIFY" if r < _P_MODIFY else "REMOVE"
            type_name = rng.choice(self.types)
        pool, nodes = self.pools[type_name], self.nodes[type_name]
        if not pool:
            operation = "INSERT"
        ttl = False
        if operation == "INSERT":
            item_id = self.values.new_id(type_name)
            flat = self._values(type_name, item_id, when)
            if len(pool) < _POOL_CAP:
                pool.append((item_id, flat))
            else:
                pool[rng.randrange(_POOL_CAP)] = (item_id, flat)
            doc = self._change(operation, item_id, when, new=_image(nodes, flat))
        elif operation == "MODIFY":
            i = rng.randrange(len(pool))
            item_id, old = pool[i]
            flat = self._values(type_name, item_id, when, old)
            pool[i] = (item_id, flat)
            doc = self._change(operation, item_id, when, new=_image(nodes, flat), old=_image(nodes, old))
        else:
            i = rng.randrange(len(pool))
            item_id, old = pool[i]
            pool[i] = pool[-1]
            pool.pop()
            ttl = rng.random() < _P_TTL
            doc = self._change(operation, item_id, when, old=_image(nodes, old), ttl=ttl)
        self.good += 1
        self.by_type[type_name] += 1
        self.by_operation[operation] += 1
        self.ttl_removes += ttl
        return base64.b64encode(orjson.dumps(doc)).decode("ascii"), item_id

    def _known_id(self, type_name: str) -> str | None:
        """An id of a live item of the sample for a reference (`demandId`), most of the time."""
        pool = self.pools.get(type_name)
        if pool and self.rng.random() < 0.85:
            return self.rng.choice(pool)[0]
        return None

    def _values(
        self, type_name: str, item_id: str, when: datetime, old: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A flat image (path -> AttributeValue, or _RECORD for a present map) of a new item, or
        of the next version of `old`: keys and references kept, `...updated...` set to the
        change time, other attributes changed now and then."""
        rng = self.rng
        flat: dict[str, Any] = {}
        nodes = self.nodes[type_name]
        for n in nodes:
            f, path, parent = n.info, n.info.path, _parent(n)
            if parent and parent not in flat:
                continue
            if n.record:
                if not f.optional:
                    flat[path] = _RECORD
                elif old is not None and rng.random() < 0.8:
                    if path in old:
                        flat[path] = _RECORD
                elif rng.random() >= _P_ABSENT:
                    flat[path] = _RECORD
                continue
            if path == "id":
                flat[path] = {"S": item_id}
                continue
            if path == "type":
                flat[path] = {"S": type_name}
                continue
            if old is not None:
                if _is_timestamp(f) and "updated" in n.name.lower():
                    flat[path] = {"S": ts(when, f.kind == "timestamp-micros")}
                    continue
                if _stays(n, old):
                    flat[path] = old[path]
                    continue
                keep = 0.4 if f.kind == "enum" else 0.8
                if rng.random() < keep and (path in old or f.optional):
                    if path in old:
                        flat[path] = old[path]
                    continue
            if f.optional and rng.random() < _P_ABSENT:
                continue
            flat[path] = self._value(n, type_name, when, flat)
        for n in reversed(nodes):  # an optional map with nothing in it is left out
            path = n.info.path
            if n.record and n.info.optional and path in flat and not any(k.startswith(path + ".") for k in flat):
                del flat[path]
        self._sync_dates(nodes, flat)
        if old is not None and flat == old:  # DynamoDB writes no MODIFY for an unchanged item
            mutable = [
                n
                for n in nodes
                if not n.record and n.info.path not in ("id", "type") and not _stays(n, old)
                and (not _parent(n) or _parent(n) in flat)
            ]  # fmt: skip
            rng.shuffle(mutable)
            for n in (n for n in mutable for _ in range(3)):
                flat[n.info.path] = self._value(n, type_name, when, flat)
                self._sync_dates(nodes, flat)
                if flat != old:
                    break
        return flat

    def _value(self, n: Node, type_name: str, when: datetime, flat: Mapping[str, Any]) -> Any:
        f, rng = n.info, self.rng
        av, _ = self.values.leaf(f, when, type_name)
        # a moment of the item's life comes after those before it in its record: created, then sent
        if _is_timestamp(f) and is_recent(f.path):
            earlier = [
                v["S"]
                for sib in self.nodes[type_name]
                if _parent(sib) == _parent(n) and sib.info.kind == f.kind and is_recent(sib.info.path)
                and isinstance(v := flat.get(sib.info.path), dict)
            ]  # fmt: skip
            if earlier and av["S"] < max(earlier):
                lo = datetime.fromisoformat(max(earlier))
                t = lo + (when - lo) * rng.random()
                micros = f.kind == "timestamp-micros"
                av = {"S": ts(t if micros else t.replace(microsecond=t.microsecond // 1000 * 1000), micros)}
        return av

    def _sync_dates(self, nodes: list[Node], flat: dict[str, Any]) -> None:
        """An `...end...` timestamp follows the `...start...` beside it (a sale window), and a date
        beside a timestamp is that timestamp's date (a start's local date)."""
        for n in nodes:
            v = flat.get(n.info.path)
            if not (_is_timestamp(n.info) and isinstance(v, dict) and "end" in n.name.lower()):
                continue
            for sib in nodes:
                start = flat.get(sib.info.path)
                beside = _parent(sib) == _parent(n) and sib.info.kind == n.info.kind and "start" in sib.name.lower()
                if beside and isinstance(start, dict) and v["S"] <= start["S"]:
                    later = datetime.fromisoformat(start["S"]) + timedelta(days=self.rng.randint(1, 60))
                    flat[n.info.path] = {"S": ts(later, n.info.kind == "timestamp-micros")}
        for n in nodes:
            if n.info.kind == "date" and n.info.path in flat:
                day = self._sibling_date(n, nodes, flat)
                if day:
                    flat[n.info.path] = {"S": day}

    def _sibling_date(self, n: Node, nodes: list[Node], flat: Mapping[str, Any]) -> str:
        """The date of a timestamp beside `n` in its record (a start's local date), or ""."""
        for sib in nodes:
            if _parent(sib) == _parent(n) and _is_timestamp(sib.info) and isinstance(flat.get(sib.info.path), dict):
                return flat[sib.info.path]["S"][:10]
        return ""

    # -- malformed records ------------------------------------------------------------------------

    def _bad(self, when: datetime) -> tuple[Any, str, str]:
        """(kinesis data, partition key, kind) of a malformed record: kinds dealt evenly, in a
        random order, each planted in a valid change of a type that can carry it."""
        rng = self.rng
        if not self._kind_queue:
            self._kind_queue = rng.sample(self.kinds, len(self.kinds))
        kind = self._kind_queue.pop()
        type_name = rng.choice(self.fitting[kind])
        item_id = self.values.new_id(type_name)
        image = _image(self.nodes[type_name], self._values(type_name, item_id, when))
        if rng.random() < 0.15:
            doc = self._change("REMOVE", item_id, when, old=image)
        else:
            doc = self._change("INSERT", item_id, when, new=image)
        broken = malform.breaking(malform.CATALOGUE[kind], rng, doc, self.nodes[type_name], self.types)
        data = base64.b64encode(broken.payload).decode("ascii") if broken.data is ABSENT else broken.data
        self.by_bad_kind[kind] += 1
        return data, item_id, kind


def _is_timestamp(f: FieldInfo) -> bool:
    return f.kind in ("timestamp-millis", "timestamp-micros")


def _stays(n: Node, old: Mapping[str, Any]) -> bool:
    """Does a MODIFY keep this attribute of the old version? References do, and moments past
    (created, sent): changing `created` after `sent` would put them out of order."""
    return n.info.path in old and (_is_reference(n) or (_is_timestamp(n.info) and is_recent(n.info.path)))


def _is_reference(n: Node) -> bool:
    """An id, or ids, of another item (`eventId`, `attractionIds`): kept by a MODIFY."""
    return not n.record and (n.name.endswith("Id") or n.name.endswith("Ids"))


# --- API -----------------------------------------------------------------------------------------


def sample(
    records: int,
    seed: int,
    bad_fraction: float = 0.0,
    batch_size: int = 100,
    *,
    registry: Mapping[str, RecordSpec] | None = None,
    kinds: Sequence[str] | None = None,
    rate: float = DEFAULT_RATE,
) -> tuple[list[dict[str, Any]], SampleStats]:
    """The events of a sample, in memory, and what they hold."""
    sampler = Sampler(records, seed, bad_fraction, batch_size, registry=registry, kinds=kinds, rate=rate)
    events = list(sampler.events())
    return events, sampler.stats()


def write_sample(
    out: TextIO,
    records: int,
    seed: int,
    bad_fraction: float = 0.0,
    batch_size: int = 100,
    *,
    registry: Mapping[str, RecordSpec] | None = None,
    kinds: Sequence[str] | None = None,
    rate: float = DEFAULT_RATE,
) -> SampleStats:
    """Write a sample as JSON lines (one Lambda event per line) and say what it holds."""
    sampler = Sampler(records, seed, bad_fraction, batch_size, registry=registry, kinds=kinds, rate=rate)
    for event in sampler.events():
        out.write(orjson.dumps(event).decode("utf-8"))
        out.write("\n")
    return sampler.stats()
