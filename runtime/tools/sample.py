"""Realistic sample input, generated from the schemas: Lambda Kinesis events (JSON lines).

Each line is one Lambda event, `{"Records": [...]}`, holding up to `batch_size` Kinesis
records of ONE shard, exactly as the event source mapping delivers them. A record's `data`
is the base64 of the JSON document DynamoDB writes into a Kinesis Data Stream
(`eventName`, `dynamodb.Keys/NewImage/OldImage`, `ApproximateCreationDateTime`, ...).

Everything is driven by `RecordSpec.fields`: the image of an item is built by walking the
`FieldInfo`s whose origin is "image", so a new schema gets samples with no code change.
Field names only add realism (an `email` looks like an e-mail address, a `demandId` points at
a demand item of the sample, a `...Start...` timestamp lies in the future), with a generic
value per kind as the fallback.

The stream tells a story: items are inserted (~70%), later modified (~20%, same id, later
change time, NewImage and OldImage) and removed (~10%, some by TTL), over six weeks starting
2024-01-01. `bad_fraction` of the records are replaced by malformed ones of the kinds in
`MALFORMED_KINDS`, each still in a valid Kinesis envelope (sequence number, eventID) so the
pipeline can report it; `SampleStats.bad_sequence_numbers` says which and of what kind.
Output is a pure function of (records, seed, bad_fraction, batch_size, kinds).

    write_sample(sys.stdout, records=1000, seed=7, bad_fraction=0.05)  # -> SampleStats
"""

from __future__ import annotations

import base64
import hashlib
import string
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any, TextIO

import orjson

from dmd.support.records import FieldInfo, RecordSpec

REGION = "us-east-1"
TABLE = "demand-capture"
STREAM_ARN = f"arn:aws:kinesis:{REGION}:123456789012:stream/{TABLE}"
INVOKE_ARN = "arn:aws:iam::123456789012:role/dmd"
SHARDS = ("shardId-000000000000", "shardId-000000000001")
TTL_IDENTITY: Mapping[str, str] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
SPAN = timedelta(weeks=6)  # change times are spread over this, whatever the record count

# Operation mix of good records (cumulative thresholds), share of TTL among removes.
_P_INSERT, _P_MODIFY = 0.70, 0.90
_P_TTL = 0.3
_P_ABSENT = 0.3  # an optional field (or record) is left out of a new image
_POOL_CAP = 2000  # live items remembered per type (for MODIFY/REMOVE and references)

# Malformed kinds: the envelope-level ones break the record before the image is reached,
# the field-level ones break one attribute of an otherwise valid image.
ENVELOPE_KINDS = (
    "invalid-base64",  # kinesis.data is not base64
    "invalid-json",  # data is a truncated JSON document
    "json-array",  # data is a JSON array, not an object
    "json-scalar",  # data is a JSON number/string/null/boolean
    "deep-nesting",  # data is an array nested 5,000 deep (beyond any parser's depth limit)
    "non-utf8",  # data holds bytes that are not UTF-8 inside a string attribute
    "missing-dynamodb",  # no `dynamodb` object
    "unknown-event-name",  # eventName is not INSERT/MODIFY/REMOVE
    "unknown-type",  # image `type` is not a registered record type (e.g. "venue")
)
FIELD_KINDS = (
    "missing-required",  # a required attribute is absent
    "wrong-tag",  # {"N": ...} where the schema wants a string
    "unknown-enum-symbol",  # an enum value outside the symbols
    "non-integral-integer",  # "2.5" in an int/long field
    "out-of-range-int",  # one past the field's maximum (9 for quantity 1..8, 2**63 for a long)
    "invalid-decimal",  # more places than the scale (49.999), or beyond the precision (1E+10 in decimal(12,2))
    "invalid-timestamp",  # 2024-02-30T10:00:00.000Z and other impossible or malformed instants
    "path-traversal-date",  # ../../x in a date or timestamp field (one that may name a partition)
)
MALFORMED_KINDS = ENVELOPE_KINDS + FIELD_KINDS
_IN_A_FIELD = frozenset((*FIELD_KINDS, "non-utf8"))  # kinds planted in one attribute of the image

_UNKNOWN_TYPES = ("venue", "attraction", "order", "fan")
_BAD_ENUM = ("archived", "unknown", "pending-review", "REQUESTED", "")
_BAD_TIMESTAMPS = (
    "2024-02-30T10:00:00.000Z",
    "2024-13-01T00:00:00.000Z",
    "2024-01-15T25:61:00.000Z",
    "2024-01-15 18:30",
    "yesterday",
)
_TRAVERSALS = ("../../x", "../../../etc/passwd", "2024-01-01/../../x", "..\\..\\x")
_NON_UTF8 = b"caf\xe9 \xff\xfe"
_PLACEHOLDER = "@@dmd-sample-non-utf8@@"

# --- realism -------------------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits
_HEX = "0123456789abcdef"
# Ticketmaster-like ids of the things the domain refers to; anything else gets a uuid.
_ID_STYLES: Mapping[str, tuple[tuple[str, ...], int, int]] = {
    "event": (("vvG1", "G5v", "Z7r9jZ1A", "vv1A", "1AvZ"), 14, 18),
    "venue": (("KovZ", "Za5ju3rKuq", "ZFr9jZ"), 12, 13),
    "attraction": (("K8vZ91", "K8vZ917"), 13, 13),
}
_FIRST = ("alex", "sam", "jordan", "taylor", "morgan", "casey", "riley", "jamie", "maria", "li", "omar", "sofia")
_LAST = ("smith", "garcia", "chen", "patel", "nguyen", "kim", "martin", "lopez", "brown", "silva", "khan", "okafor")
_MAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
_PHONES = (("+1", 10), ("+44", 10), ("+61", 9), ("+52", 10), ("+353", 9))
_CURRENCIES = ("USD", "USD", "USD", "CAD", "GBP", "EUR", "AUD", "MXN")
_TIMEZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Toronto",
    "America/Mexico_City",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Madrid",
    "Australia/Sydney",
)
_BAND_A = ("Midnight", "Electric", "Velvet", "Golden", "Crimson", "Silver", "Neon", "Wild", "Paper", "Northern")
_BAND_B = ("Owls", "Horizon", "Tigers", "Echoes", "Rivers", "Comets", "Saints", "Lanterns", "Parade", "Lights")
_TOURS = ("World Tour", "Live", "in Concert", "Farewell Tour", "Summer Tour 2024", "Unplugged", "")
_CITIES = ("Chicago", "Toronto", "London", "Sydney", "Austin", "Denver", "Boston", "Seattle", "Dublin", "Madrid")
_TEAMS = ("Bears", "Lions", "Hawks", "Wolves", "Kings", "Royals", "Comets", "Storm")
_MESSAGES = (
    "Good news {first}! Tickets you asked for are available: https://tickets.example.com/e/{code}",
    "Reminder: the presale you signed up for starts soon. Your code is {code}.",
    "Sorry {first}, we could not fulfil your request this time.",
    "Your tickets are confirmed. Order {code}.",
)
_PRICE_LEVELS = ("PL1", "PL2", "PL3", "PL4", "PL5", "PL6", "GA", "VIP", "FLOOR", "BALCONY")


class _Record:
    """Marks a present nested record (a DynamoDB map) in a flat image."""

    __slots__ = ()


_RECORD = _Record()


@dataclass(frozen=True, slots=True)
class _Raw:
    """An AttributeValue put into an image verbatim (a corrupted one)."""

    av: Any


@dataclass(frozen=True, slots=True)
class _Slot:
    """One image attribute of a record type: where it sits and what it is."""

    info: FieldInfo
    parent: str  # path of the enclosing record, "" at the top level
    name: str  # attribute name inside its parent
    record: bool


def _plan(spec: RecordSpec) -> tuple[_Slot, ...]:
    """The attributes an item image of this type has, parents before children.

    Only origin "image" fields; a record is kept only if some attribute inside it comes from
    the image (`cdc`, or a `date` map holding just the pipeline's `deleted`, are not).
    """
    image = [f for f in spec.fields if f.origin == "image"]
    leaves = [f.path for f in image if f.kind != "record"]
    slots = []
    for f in image:
        if f.kind == "record" and not any(p.startswith(f.path + ".") for p in leaves):
            continue
        parent, _, name = f.path.rpartition(".")
        slots.append(_Slot(f, parent, name, f.kind == "record"))
    return tuple(slots)


def _ancestors(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


_ITEM_TAG = {"int": "N", "long": "N", "decimal": "N", "boolean": "BOOL"}


def _av(f: FieldInfo, value: Any) -> dict[str, Any]:
    """The DynamoDB AttributeValue of a leaf's wire payload."""
    if isinstance(value, _Raw):
        return value.av
    wire = f.wire or _ITEM_TAG.get(f.kind, "S")
    if wire == "L":
        tag = _ITEM_TAG.get(f.item_kind, "S")
        return {"L": [{tag: v} for v in value]}
    return {wire: value}


def _image(plan: tuple[_Slot, ...], flat: Mapping[str, Any]) -> dict[str, Any]:
    """Nest a flat image (path -> wire payload or _RECORD) into DynamoDB JSON."""
    root: dict[str, Any] = {}
    maps = {"": root}
    for s in plan:
        path = s.info.path
        if path not in flat or s.parent not in maps:
            continue
        value = flat[path]
        if s.record and value is _RECORD:
            inner: dict[str, Any] = {}
            maps[s.parent][s.name] = {"M": inner}
            maps[path] = inner
        else:
            maps[s.parent][s.name] = _av(s.info, value)
    return root


def _ts(t: datetime, micros: bool = False) -> str:
    frac = f"{t.microsecond:06d}" if micros else f"{t.microsecond // 1000:03d}"
    return f"{t:%Y-%m-%dT%H:%M:%S}.{frac}Z"


def _epoch_ms(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


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
    (default: every kind some record type can carry).
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
    ) -> None:
        if records < 0:
            raise ValueError(f"records must be >= 0, got {records}")
        if not 0.0 <= bad_fraction <= 1.0:
            raise ValueError(f"bad_fraction must be within [0, 1], got {bad_fraction}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if registry is None:
            from dmd.generated import REGISTRY as registry
        if not registry:
            raise ValueError("no record types to sample")
        self.records, self.batch_size = records, batch_size
        self.rng = Random(seed)
        self.types = sorted(registry)
        self.plans = {t: _plan(registry[t]) for t in self.types}
        self.pools: dict[str, list[tuple[str, dict[str, Any]]]] = {t: [] for t in self.types}
        self.t0 = BASE_TIME + timedelta(seconds=self.rng.randrange(6 * 3600))
        self.step_us = SPAN // timedelta(microseconds=1) // max(records, 1)
        n_bad = round(records * bad_fraction)
        self.bad_positions = frozenset(Random(f"{seed}:bad-positions").sample(range(records), n_bad))
        self.unknown_type = next((t for t in _UNKNOWN_TYPES if t not in registry), "x-unknown-type")
        # which types can carry each field-level malformation (envelope kinds: every type)
        self.targets: dict[str, dict[str, list[_Slot]]] = {
            kind: {t: c for t in self.types if (c := [s for s in self.plans[t] if _fits(kind, s)])}
            for kind in MALFORMED_KINDS
        }
        unknown = sorted(set(kinds or ()) - set(MALFORMED_KINDS))
        if unknown:
            raise ValueError(f"unknown malformed kinds {unknown}; known: {', '.join(MALFORMED_KINDS)}")
        self.kinds = [k for k in MALFORMED_KINDS if self.targets[k] and (not kinds or k in kinds)]
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
            when = self._clock(i)
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

    def _clock(self, i: int) -> datetime:
        """Change time of the i-th record: increasing, spread evenly over SPAN, ms precision."""
        jitter = self.rng.randrange(max(self.step_us // 2, 1))
        t = self.t0 + timedelta(microseconds=i * self.step_us + jitter)
        return t.replace(microsecond=t.microsecond // 1000 * 1000)

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
        """The JSON document DynamoDB writes into Kinesis for one change."""
        keys = {"id": {"S": item_id}}
        ddb: dict[str, Any] = {
            "ApproximateCreationDateTime": _epoch_ms(when),
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
            "eventID": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "eventName": operation,
            "userIdentity": dict(TTL_IDENTITY) if ttl else None,
            "recordFormat": "application/json",
            "tableName": TABLE,
            "dynamodb": ddb,
            "eventSource": "aws:dynamodb",
        }

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
        pool, plan = self.pools[type_name], self.plans[type_name]
        if not pool:
            operation = "INSERT"
        ttl = False
        if operation == "INSERT":
            item_id = self._new_id(type_name)
            flat = self._values(type_name, item_id, when)
            if len(pool) < _POOL_CAP:
                pool.append((item_id, flat))
            else:
                pool[rng.randrange(_POOL_CAP)] = (item_id, flat)
            doc = self._change(operation, item_id, when, new=_image(plan, flat))
        elif operation == "MODIFY":
            i = rng.randrange(len(pool))
            item_id, old = pool[i]
            flat = self._values(type_name, item_id, when, old)
            pool[i] = (item_id, flat)
            doc = self._change(operation, item_id, when, new=_image(plan, flat), old=_image(plan, old))
        else:
            i = rng.randrange(len(pool))
            item_id, old = pool[i]
            pool[i] = pool[-1]
            pool.pop()
            ttl = rng.random() < _P_TTL
            doc = self._change(operation, item_id, when, old=_image(plan, old), ttl=ttl)
        self.good += 1
        self.by_type[type_name] += 1
        self.by_operation[operation] += 1
        self.ttl_removes += ttl
        return base64.b64encode(orjson.dumps(doc)).decode("ascii"), item_id

    def _values(
        self, type_name: str, item_id: str, when: datetime, old: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A flat image (path -> wire payload, or _RECORD for a present map) of a new item, or
        of the next version of `old`: keys and references kept, `...updated...` set to the
        change time, other attributes changed now and then."""
        rng = self.rng
        flat: dict[str, Any] = {}
        plan = self.plans[type_name]
        for s in plan:
            f, path = s.info, s.info.path
            if s.parent and s.parent not in flat:
                continue
            if s.record:
                if not f.optional:
                    flat[path] = _RECORD
                elif old is not None and rng.random() < 0.8:
                    if path in old:
                        flat[path] = _RECORD
                elif rng.random() >= _P_ABSENT:
                    flat[path] = _RECORD
                continue
            if path == "id":
                flat[path] = item_id
                continue
            if path == "type":
                flat[path] = type_name
                continue
            if old is not None:
                if f.kind.startswith("timestamp") and "updated" in s.name.lower():
                    flat[path] = _ts(when, f.kind.endswith("micros"))
                    continue
                if path in old and (_is_reference(s) or (f.kind.startswith("timestamp") and _is_recent(path))):
                    flat[path] = old[path]  # references, and moments past (created, sent), stay
                    continue
                keep = 0.4 if f.kind == "enum" else 0.8
                if rng.random() < keep and (path in old or f.optional):
                    if path in old:
                        flat[path] = old[path]
                    continue
            if f.optional and rng.random() < _P_ABSENT:
                continue
            flat[path] = self._value(s, type_name, when, flat)
        for s in reversed(plan):  # an optional map with nothing in it is left out
            path = s.info.path
            if s.record and s.info.optional and path in flat and not any(k.startswith(path + ".") for k in flat):
                del flat[path]
        self._sync_dates(plan, type_name, flat)
        if old is not None and flat == old:  # DynamoDB writes no MODIFY for an unchanged item
            mutable = [
                s
                for s in plan
                if not s.record and s.info.path not in ("id", "type") and not _is_reference(s)
                and (not s.parent or s.parent in flat)
            ]  # fmt: skip
            rng.shuffle(mutable)
            for s in (s for s in mutable for _ in range(3)):
                flat[s.info.path] = self._value(s, type_name, when, flat)
                self._sync_dates(plan, type_name, flat)
                if flat != old:
                    break
        return flat

    def _value(self, s: _Slot, type_name: str, when: datetime, flat: Mapping[str, Any]) -> Any:
        f, rng = s.info, self.rng
        kind = f.kind
        if kind == "string":
            return self._string(s.name, type_name)
        if kind == "enum":
            return rng.choice(f.symbols)
        if kind in ("int", "long"):
            return self._int(f)
        if kind == "decimal":
            return self._decimal(s.name, f.precision, f.scale)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind.startswith("timestamp"):
            t = self._instant(f.path, when)
            if _is_recent(f.path):  # after the recent moments before it in its record: created, then sent
                earlier = [
                    v
                    for sib in self.plans[type_name]
                    if sib.parent == s.parent and sib.info.kind == kind and _is_recent(sib.info.path)
                    and isinstance(v := flat.get(sib.info.path), str)
                ]  # fmt: skip
                if earlier and _ts(t, kind.endswith("micros")) < max(earlier):
                    lo = datetime.fromisoformat(max(earlier))
                    t = lo + (when - lo) * rng.random()
                    t = t if kind.endswith("micros") else t.replace(microsecond=t.microsecond // 1000 * 1000)
            return _ts(t, kind.endswith("micros"))
        if kind == "date":
            later = when + timedelta(days=rng.randint(7, 90))
            return self._sibling_date(s, type_name, flat) or later.date().isoformat()
        if kind == "array":
            return self._array(s, type_name, when)
        raise ValueError(f"{type_name}.{f.path}: no sample generator for kind {kind!r}")

    def _sync_dates(self, plan: tuple[_Slot, ...], type_name: str, flat: dict[str, Any]) -> None:
        """An `...end...` timestamp follows the `...start...` beside it (a sale window), and a date
        beside a timestamp is that timestamp's date (a start's local date)."""
        for s in plan:
            v = flat.get(s.info.path)
            if not (s.info.kind.startswith("timestamp") and isinstance(v, str) and "end" in s.name.lower()):
                continue
            for sib in plan:
                start = flat.get(sib.info.path)
                beside = sib.parent == s.parent and sib.info.kind == s.info.kind and "start" in sib.name.lower()
                if beside and isinstance(start, str) and v <= start:
                    later = datetime.fromisoformat(start) + timedelta(days=self.rng.randint(1, 60))
                    flat[s.info.path] = _ts(later, s.info.kind.endswith("micros"))
        for s in plan:
            if s.info.kind == "date" and s.info.path in flat:
                flat[s.info.path] = self._sibling_date(s, type_name, flat) or flat[s.info.path]

    def _sibling_date(self, s: _Slot, type_name: str, flat: Mapping[str, Any]) -> str:
        """The date of a timestamp beside `s` in its record (a start's local date), or ""."""
        for sib in self.plans[type_name]:
            if sib.parent == s.parent and sib.info.kind.startswith("timestamp") and sib.info.path in flat:
                v = flat[sib.info.path]
                if isinstance(v, str):
                    return v[:10]
        return ""

    def _instant(self, path: str, when: datetime) -> datetime:
        low, rng = path.lower(), self.rng
        if "updated" in low.rpartition(".")[2]:
            return when
        if not _is_recent(path):  # a future moment: a show, a sale window
            days = rng.randint(7, 90) if "start" in low else rng.randint(91, 150)
            day = (when + timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
            return day + timedelta(hours=rng.choice((0, 1, 2, 14, 15, 17, 18, 19, 23)), minutes=rng.choice((0, 30)))
        return when - timedelta(milliseconds=rng.randrange(120_000))  # just before the write

    def _string(self, name: str, type_name: str) -> str:
        rng, low = self.rng, name.lower()
        if "email" in low:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            return f"{first}.{last}{rng.randrange(100)}@{rng.choice(_MAIL_DOMAINS)}"
        if "phone" in low:
            prefix, digits = rng.choice(_PHONES)
            return prefix + str(rng.randint(2, 9)) + "".join(rng.choice(string.digits) for _ in range(digits - 1))
        if "currency" in low:
            return rng.choice(_CURRENCIES)
        if "timezone" in low or low == "tz":
            return rng.choice(_TIMEZONES)
        if low == "name" or low.endswith("name"):
            if rng.random() < 0.3:
                return f"{rng.choice(_CITIES)} {rng.choice(_TEAMS)} vs {rng.choice(_CITIES)} {rng.choice(_TEAMS)}"
            tour = rng.choice(_TOURS)
            return f"The {rng.choice(_BAND_A)} {rng.choice(_BAND_B)}" + (f" - {tour}" if tour else "")
        if "message" in low or "body" in low:
            code = "".join(rng.choice(_ALNUM) for _ in range(8))
            return rng.choice(_MESSAGES).format(first=rng.choice(_FIRST).title(), code=code)
        if low == "id":
            return self._new_id(type_name)
        if name.endswith("Id") and len(name) > 2:
            return self._ref_id(name[:-2])
        return f"{name}-{rng.getrandbits(32):08x}"

    def _ref_id(self, ref_type: str) -> str:
        """An id of a `ref_type` item: one of the sample's live items when there is one."""
        pool = self.pools.get(ref_type)
        if pool and self.rng.random() < 0.85:
            return self.rng.choice(pool)[0]
        return self._new_id(ref_type)

    def _new_id(self, type_name: str) -> str:
        rng = self.rng
        style = _ID_STYLES.get(type_name)
        if style is None:
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        prefixes, lo, hi = style
        prefix = rng.choice(prefixes)
        return prefix + "".join(rng.choice(_ALNUM) for _ in range(max(rng.randint(lo, hi) - len(prefix), 4)))

    def _int(self, f: FieldInfo) -> str:
        lo = f.minimum if f.minimum is not None else -(2**31)
        hi = f.maximum if f.maximum is not None else 2**31 - 1
        a = max(lo, min(hi, 1))
        b = min(hi, a + 9_999)
        if a <= 100 <= b and self.rng.random() < 0.03:
            return "1E+2"  # DynamoDB keeps numbers as given: exponents are legal
        return str(self.rng.randint(a, b))

    def _decimal(self, name: str, precision: int, scale: int) -> str:
        rng, low = self.rng, name.lower()
        int_digits = max(precision - scale, 1)
        if int_digits >= 3 and rng.random() < 0.03:
            return "1E+2"
        if low.startswith("min"):
            whole = rng.randint(10, 80)
        elif low.startswith("max"):
            whole = rng.randint(90, 450)
        else:
            whole = rng.randint(1, 500)
        whole = min(whole, 10**int_digits - 1)
        if scale == 0:
            return str(whole)
        places = min(scale, 2)
        cents = rng.choice((0, 0, 50, 99, 25, 75, rng.randrange(10**places)))
        text = f"{whole}.{cents:0{places}d}"
        if rng.random() < 0.1:  # fewer places than the scale: still exact
            text = text.rstrip("0").rstrip(".")
        return text

    def _array(self, s: _Slot, type_name: str, when: datetime) -> list[Any]:
        rng, f = self.rng, s.info
        if f.wire == "SS":  # a string set: non-empty, unique
            n = rng.randint(1, 4)
            out: list[Any] = []
            for _ in range(4 * n):
                v = self._item(s, type_name, when)
                if v not in out:
                    out.append(v)
                if len(out) == n:
                    break
            return out or [f"{s.name}-0"]
        if rng.random() < 0.25:
            return []
        if "price" in s.name.lower() and f.item_kind == "string":
            return rng.sample(_PRICE_LEVELS, rng.randint(1, 4))
        return [self._item(s, type_name, when) for _ in range(rng.randint(1, 4))]

    def _item(self, s: _Slot, type_name: str, when: datetime) -> Any:
        kind, name, rng = s.info.item_kind, s.name, self.rng
        if kind == "string":
            if name.endswith("Ids") and len(name) > 3:
                return self._ref_id(name[:-3])
            singular = name[:-1] if name.endswith("s") else name
            return f"{singular}-{rng.getrandbits(24):06x}"
        if kind in ("int", "long"):
            return str(rng.randint(1, 1000))
        if kind == "decimal":
            return f"{rng.randint(1, 500)}.{rng.randrange(100):02d}"
        if kind == "boolean":
            return rng.random() < 0.5
        if kind.startswith("timestamp"):
            return _ts(self._instant(s.info.path, when), kind.endswith("micros"))
        if kind == "date":
            return (when + timedelta(days=rng.randint(0, 90))).date().isoformat()
        if kind == "enum" and s.info.symbols:
            return rng.choice(s.info.symbols)
        return f"{name}-{rng.getrandbits(24):06x}"

    # -- malformed records ------------------------------------------------------------------------

    def _bad(self, when: datetime) -> tuple[str, str, str]:
        """(kinesis data, partition key, kind) of a malformed record of a random kind."""
        rng = self.rng
        if not self._kind_queue:  # every kind once per round, in a random order
            self._kind_queue = rng.sample(self.kinds, len(self.kinds))
        kind = self._kind_queue.pop()
        targets = self.targets[kind]
        type_name = rng.choice(sorted(targets)) if targets else rng.choice(self.types)
        plan = self.plans[type_name]
        item_id = self._new_id(type_name)
        flat = self._values(type_name, item_id, when)
        if kind in _IN_A_FIELD:
            s = rng.choice(targets[type_name])
            for a in _ancestors(s.info.path):
                flat[a] = _RECORD
            self._corrupt(kind, s, flat)
        elif kind == "unknown-type":
            flat["type"] = self.unknown_type
        image = _image(plan, flat)
        operation = "REMOVE" if rng.random() < 0.15 else "INSERT"
        if operation == "REMOVE":
            doc = self._change(operation, item_id, when, old=image)
        else:
            doc = self._change(operation, item_id, when, new=image)
        if kind == "missing-dynamodb":
            del doc["dynamodb"]
        elif kind == "unknown-event-name":
            doc["eventName"] = rng.choice(("UPSERT", "DELETE", "TRUNCATE", "insert"))
        raw = orjson.dumps(doc)
        if kind == "non-utf8":
            raw = raw.replace(_PLACEHOLDER.encode(), _NON_UTF8)
        elif kind == "invalid-json":
            raw = raw[: rng.randrange(1, len(raw))]  # no proper prefix of an object is JSON
        elif kind == "json-array":
            raw = b"[" + raw + b"]" if rng.random() < 0.7 else b"[]"
        elif kind == "json-scalar":
            raw = rng.choice((b"42", b'"INSERT"', b"null", b"true", b"-1.5e3"))
        elif kind == "deep-nesting":
            raw = b"[" * 5000 + b"]" * 5000
        data = base64.b64encode(raw).decode("ascii")
        if kind == "invalid-base64":
            # a character outside the alphabet, and 4n+1 data characters (undecodable even leniently)
            body = data.rstrip("=")
            body = body[: len(body) // 4 * 4 - 3]
            cut = rng.randrange(len(body))
            data = body[:cut] + rng.choice(("*", "%", "!", "~", " ")) + body[cut:]
        self.by_bad_kind[kind] += 1
        return data, item_id, kind

    def _corrupt(self, kind: str, s: _Slot, flat: dict[str, Any]) -> None:
        f, rng, path = s.info, self.rng, s.info.path
        if kind == "missing-required":
            flat.pop(path, None)
        elif kind == "wrong-tag":
            flat[path] = _Raw({"N": str(rng.randint(1, 99_999))})
        elif kind == "unknown-enum-symbol":
            flat[path] = rng.choice([v for v in _BAD_ENUM if v not in f.symbols])
        elif kind == "non-integral-integer":
            flat[path] = rng.choice(("2.5", "0.1", "7.25", "-3.5"))
        elif kind == "out-of-range-int":
            over = f.maximum is not None and (f.minimum is None or rng.random() < 0.7)
            flat[path] = str(f.maximum + 1) if over else str((f.minimum or 0) - 1)
        elif kind == "invalid-decimal":
            places = "9" * (f.scale + 1)
            flat[path] = rng.choice((f"49.{places}", f"1E+{f.precision - f.scale}", f"-{'9' * (f.precision + 1)}"))
        elif kind == "invalid-timestamp":
            flat[path] = rng.choice(_BAD_TIMESTAMPS)
        elif kind == "path-traversal-date":
            flat[path] = rng.choice(_TRAVERSALS)
        elif kind == "non-utf8":
            flat[path] = _PLACEHOLDER


def _is_reference(s: _Slot) -> bool:
    """An id, or ids, of another item (`eventId`, `attractionIds`): kept by a MODIFY."""
    return not s.record and (s.name.endswith("Id") or s.name.endswith("Ids"))


def _is_recent(path: str) -> bool:
    """A timestamp set when the item was written (requested, created, sent, firstSeen), not a
    future moment of the show or sale (`...start...`, `...end...`)."""
    low = path.lower()
    return "start" not in low and "end" not in low


def _fits(kind: str, s: _Slot) -> bool:
    """Can a field-level malformation of `kind` be put in attribute `s`?"""
    f = s.info
    if s.record:
        return False
    if kind == "missing-required":
        return not f.optional and f.path != "type"
    if kind in ("wrong-tag", "non-utf8"):
        return f.wire == "S" and f.path != "type"
    if kind == "unknown-enum-symbol":
        return f.kind == "enum" and f.wire == "S"
    if kind == "non-integral-integer":
        return f.kind in ("int", "long")
    if kind == "out-of-range-int":
        return f.kind in ("int", "long") and (f.maximum is not None or f.minimum is not None)
    if kind == "invalid-decimal":
        return f.kind == "decimal"
    if kind == "invalid-timestamp":
        return f.kind.startswith("timestamp") and f.wire == "S"
    if kind == "path-traversal-date":
        return (f.kind == "date" or f.kind.startswith("timestamp")) and f.wire == "S"
    return kind in ENVELOPE_KINDS  # any type will do


# --- API -----------------------------------------------------------------------------------------


def sample(
    records: int,
    seed: int,
    bad_fraction: float = 0.0,
    batch_size: int = 100,
    *,
    registry: Mapping[str, RecordSpec] | None = None,
    kinds: Sequence[str] | None = None,
) -> tuple[list[dict[str, Any]], SampleStats]:
    """The events of a sample, in memory, and what they hold."""
    sampler = Sampler(records, seed, bad_fraction, batch_size, registry=registry, kinds=kinds)
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
) -> SampleStats:
    """Write a sample as JSON lines (one Lambda event per line) and say what it holds."""
    sampler = Sampler(records, seed, bad_fraction, batch_size, registry=registry, kinds=kinds)
    for event in sampler.events():
        out.write(orjson.dumps(event).decode("utf-8"))
        out.write("\n")
    return sampler.stats()
