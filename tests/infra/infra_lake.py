"""Build a local lake the way the runtime lays it out, from records the generated decoders make."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pyarrow.parquet as pq

from dmd.generated import REGISTRY
from dmd.support.records import Change

SETTINGS = {"source_system_id": "x"}
T0 = datetime(2024, 1, 15, 18, 30, tzinfo=UTC)


def demand_image(item: str, *, quantity: int = 1, status: str = "requested", requested: datetime = T0) -> dict:
    return {
        "id": {"S": item},
        "type": {"S": "demand"},
        "eventId": {"S": "E1"},
        "fanId": {"S": "F1"},
        "marketId": {"N": "7"},
        "quantity": {"N": str(quantity)},
        "priceLevels": {"L": [{"S": "PL1"}]},
        "status": {"S": status},
        "email": {"S": "fan@example.com"},
        "date": {"M": {"requested": {"S": requested.strftime("%Y-%m-%dT%H:%M:%S.000Z")}}},
    }


def sale_image(item: str, *, price: str = "10.50") -> dict:
    return {
        "id": {"S": item},
        "type": {"S": "sale"},
        "eventId": {"S": "E1"},
        "saleType": {"S": "presale"},
        "saleStartDateTime": {"S": "2024-02-01T10:00:00.000Z"},
        "priceRange": {"M": {"min": {"N": price}, "currency": {"S": "USD"}}},
    }


@dataclass(frozen=True)
class Version:
    """One stream record of an item: what changed, when, and at which sequence number."""

    image: dict[str, Any]
    operation: str
    sequence: str
    minutes: int  # change time, minutes after T0

    def decode(self, type_name: str) -> Any:
        when = T0 + timedelta(minutes=self.minutes)
        change = Change(self.operation, False, self.sequence, when, f"ev-{self.sequence}")
        return REGISTRY[type_name].decode(self.image, change, SETTINGS)


def write(root: Path, type_name: str, fmt: str, name: str, versions: Sequence[Version], prefix: str = "archive"):
    """One container per partition date, as the runtime groups a batch by (type, partition_date)."""
    spec = REGISTRY[type_name]
    groups: dict[str, list[Any]] = {}
    for v in versions:
        rec = v.decode(type_name)
        groups.setdefault(spec.partition_date(rec, T0).isoformat(), []).append(rec)
    for day, records in groups.items():
        folder = root / prefix / fmt / type_name / f"partition_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{day}-00-00-00-{name}.{fmt}"
        if fmt == "parquet":
            pq.write_table(spec.to_arrow(records), path)
        else:
            with path.open("wb") as f:
                fastavro.writer(f, fastavro.parse_schema(dict(spec.avro_schema)), [spec.to_avro(r) for r in records])
