"""The committed generated code decodes a demand image end to end."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dmd.generated import REGISTRY
from dmd.support.records import Change, DecodeError


def test_registry_holds_a_type_per_schema_file():
    schemas = Path(__file__).resolve().parents[1] / "schemas"
    assert sorted(REGISTRY) == sorted(p.stem for p in schemas.glob("*.json"))


def test_decode_demand_remove_scrubs_pii_and_marks_deleted():
    change = Change("REMOVE", False, "1", datetime(2024, 1, 15, 18, 30, tzinfo=UTC), "e1")
    image = {
        "id": {"S": "u1"},
        "type": {"S": "demand"},
        "eventId": {"S": "E1"},
        "fanId": {"S": "F1"},
        "marketId": {"N": "1E+2"},
        "quantity": {"N": "3"},
        "priceLevels": {"L": []},
        "status": {"S": "requested"},
        "email": {"S": "fan@example.com"},
        "date": {"M": {"requested": {"S": "2024-01-15T18:30:00.000Z"}}},
    }
    rec = REGISTRY["demand"].decode(image, change, {"source_system_id": "sys"})
    assert rec.marketId == 100
    assert rec.email == "[redacted]"
    assert rec.phoneNumber is None
    assert rec.isDeleted is True
    assert rec.date.deleted == change.change_time
    assert rec.reference == "demand:u1"
    assert rec.system == "sys"


def test_decode_names_every_bad_field():
    change = Change("INSERT", False, "1", datetime(2024, 1, 15, tzinfo=UTC), "e1")
    with pytest.raises(DecodeError) as err:
        REGISTRY["demand"].decode({"quantity": {"N": "9"}, "marketId": {"N": "1.5"}}, change, {"source_system_id": "s"})
    problems = err.value.problems
    assert "quantity: '9' is out of range [1, 8]" in problems
    assert "marketId: '1.5' is not an integer" in problems
    assert "id: required attribute is missing" in problems
