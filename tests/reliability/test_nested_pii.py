"""Nested PII: a fifth schema, in a temporary folder, with PII fields inside (optional) nested
records. Generated, imported and run: a REMOVE is archived with `[redacted]` at every level,
whichever parents are present."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lakecheck import read_container

from dmd.generator.generate import generate
from dmd.ingest.config import Settings
from dmd.lake.encode import encode
from dmd.support.records import REDACTED, Change

ROOT = Path(__file__).resolve().parents[2]
WHEN = datetime(2024, 1, 15, 18, 30, tzinfo=UTC)


def _pii_string(name: str, optional: bool = True) -> dict:
    field = {"name": name, "type": ["null", "string"] if optional else "string", "dmd": {"pii": True}}
    if optional:
        field["default"] = None
    return field


@pytest.fixture(scope="module")
def ticket_spec(tmp_path_factory):
    schemas = tmp_path_factory.mktemp("schemas")
    schema = json.loads((ROOT / "schemas" / "notification.json").read_text())
    schema["name"], schema["namespace"] = "Ticket", "dmd.ticket"
    schema["dmd"]["recordType"] = "ticket"
    emergency = {
        "type": "record",
        "name": "Emergency",
        "fields": [_pii_string("phone"), {"name": "relation", "type": ["null", "string"], "default": None}],
    }
    home = {"type": "record", "name": "Home", "fields": [_pii_string("street", optional=False)]}
    contact = {
        "type": "record",
        "name": "Contact",
        "fields": [
            _pii_string("address", optional=False),
            {"name": "home", "type": home},  # required, under an optional record
            {"name": "emergency", "type": ["null", emergency], "default": None},
        ],
    }
    schema["fields"].insert(5, {"name": "contact", "type": ["null", contact], "default": None, "doc": "Nested PII."})
    (schemas / "ticket.json").write_text(json.dumps(schema))
    out = tmp_path_factory.mktemp("generated")
    generate(schemas, out)
    path = out / "python" / "ticket.py"
    spec = importlib.util.spec_from_file_location("dmd_fifth_ticket", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.SPEC


def image(contact: dict | None) -> dict:
    out = {
        "id": {"S": "t-1"},
        "type": {"S": "ticket"},
        "demandId": {"S": "d-1"},
        "fanId": {"S": "f-1"},
        "channel": {"S": "sms"},
        "email": {"S": "fan@example.com"},
        "messageBody": {"S": "hello"},
        "status": {"S": "sent"},
        "date": {"M": {"created": {"S": "2024-01-15T18:30:00.000Z"}}},
    }
    if contact is not None:
        out["contact"] = {"M": contact}
    return out


CONTACTS = {
    "absent": None,
    "no emergency": {"address": {"S": "1 Main St"}, "home": {"M": {"street": {"S": "Elm"}}}},
    "emergency without phone": {
        "address": {"S": "1 Main St"},
        "home": {"M": {"street": {"S": "Elm"}}},
        "emergency": {"M": {"relation": {"S": "sister"}}},
    },
    "all": {
        "address": {"S": "1 Main St"},
        "home": {"M": {"street": {"S": "Elm"}}},
        "emergency": {"M": {"phone": {"S": "+15550000"}, "relation": {"S": "sister"}}},
    },
}


def test_the_fifth_schema_declares_nested_pii(ticket_spec):
    pii = sorted(f.path for f in ticket_spec.fields if f.pii)
    assert pii == [
        "contact.address",
        "contact.emergency.phone",
        "contact.home.street",
        "email",
        "messageBody",
        "phoneNumber",
    ]


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
@pytest.mark.parametrize("case", sorted(CONTACTS))
def test_remove_redacts_nested_pii_at_every_level(ticket_spec, case, fmt):
    settings = Settings(format=fmt)
    removed = ticket_spec.decode(image(copy.deepcopy(CONTACTS[case])), Change("REMOVE", False, "1", WHEN, "e"), {})
    inserted = ticket_spec.decode(image(copy.deepcopy(CONTACTS[case])), Change("INSERT", False, "2", WHEN, "e"), {})
    body = encode(fmt, ticket_spec, [removed, inserted], settings.codec)
    row_removed, row_inserted = read_container(f"x.{fmt}", body)
    contact = CONTACTS[case]
    assert row_removed["email"] == REDACTED and row_removed["messageBody"] == REDACTED
    if contact is None:
        assert row_removed["contact"] is None
        return
    assert row_removed["contact"]["address"] == REDACTED
    assert row_removed["contact"]["home"]["street"] == REDACTED
    assert row_inserted["contact"]["home"]["street"] == "Elm"
    assert row_inserted["contact"]["address"] == "1 Main St"
    emergency = contact.get("emergency", {}).get("M")
    if emergency is None:
        assert row_removed["contact"]["emergency"] is None
    elif "phone" in emergency:
        assert row_removed["contact"]["emergency"]["phone"] == REDACTED
        assert row_removed["contact"]["emergency"]["relation"] == "sister"  # not PII: kept
        assert row_inserted["contact"]["emergency"]["phone"] == "+15550000"
    else:
        assert row_removed["contact"]["emergency"]["phone"] is None  # absent: nothing to redact
    assert b"1 Main St" not in encode(fmt, ticket_spec, [removed], settings.codec)
