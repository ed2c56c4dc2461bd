"""Adding a fifth record type is adding one schema file and generating: no other code change.

The new type (cases/extensibility/venue.json) has its own nested records, an enum, PII at two
levels, a boolean, lists of ints, enums, decimals, timestamps and dates, a string set, a bounded
long, a microsecond timestamp, and a two-step partition date with a fallback: generated code
paths the four domain types do not reach.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import avro.schema
import pytest
from click.testing import CliRunner
from gen_image_strategies import avro_roundtrip, parquet_roundtrip
from test_differential import differential
from test_generated_roundtrip import roundtrips

from dmd.generator.loader import load_model
from dmd.support.records import Change, DecodeError
from dmd.tools.cli import main

ROOT = Path(__file__).resolve().parents[2]
VENUE = Path(__file__).parent / "cases" / "extensibility" / "venue.json"
SETTINGS = {"source_system_id": "sys-7"}
INSERT = Change("INSERT", False, "7", datetime(2024, 5, 1, 12, 0, 0, 250999, tzinfo=UTC), "ev-9")
REMOVE = Change("REMOVE", True, "8", datetime(2024, 5, 2, 12, 0, 0, 250999, tzinfo=UTC), "ev-10")

IMAGE = {
    "id": {"S": "v-1"},
    "type": {"S": "venue"},
    "name": {"S": "Ziggo Dome"},
    "venueType": {"S": "arena"},
    "capacity": {"N": "1.7E+4"},
    "sectionSizes": {"L": [{"N": "500"}, {"N": "1200.0"}]},
    "contactEmail": {"S": "box@example.com"},
    "tags": {"SS": ["indoor", "amsterdam"]},
    "accessible": {"BOOL": True},
    "facilities": {"L": [{"S": "bar"}, {"S": "parking"}]},
    "ticketPrices": {"L": [{"N": "49.5"}, {"N": "1E+2"}]},
    "renovations": {"L": [{"S": "2019-03-01T10:00:00+01:00"}]},
    "closedDays": {"L": [{"S": "2024-12-25"}]},
    "seatsSold": {"N": "123456789012"},
    "lastScan": {"S": "2024-05-01T20:15:00.123456Z"},
    "address": {
        "M": {
            "line1": {"S": "De Passage 100"},
            "city": {"S": "Amsterdam"},
            "geo": {"M": {"lat": {"N": "52.3133"}, "lon": {"N": "4.9372000"}}},
        }
    },
    "date": {"M": {"listed": {"S": "2012-07-01"}}},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A schema folder with the four domain types plus venue.json, generated into generated/."""
    base = tmp_path_factory.mktemp("fifth-type")
    shutil.copytree(ROOT / "schemas", base / "schemas")
    shutil.copy(VENUE, base / "schemas" / "venue.json")
    args = ["generate", "--schemas", str(base / "schemas"), "--out", str(base / "generated")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return base


@contextmanager
def imported(folder: Path) -> Iterator[ModuleType]:
    """A generated python/ folder imported as a package under a name of its own (its modules
    import each other relatively and the runtime as `dmd.runtime`)."""
    name = f"dmd_generated_{uuid.uuid4().hex}"
    init = folder / "__init__.py"
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


@pytest.fixture(scope="module")
def package(project) -> Iterator[ModuleType]:
    with imported(project / "generated" / "python") as module:
        yield module


@pytest.fixture(scope="module")
def venue(package):
    return package.REGISTRY["venue"]


def test_generate_check_is_clean_and_other_types_are_untouched(project):
    result = CliRunner().invoke(
        main, ["generate", "--schemas", str(project / "schemas"), "--out", str(project / "generated"), "--check"]
    )
    assert result.exit_code == 0, result.output
    new = {p.relative_to(project / "generated").as_posix() for p in (project / "generated").rglob("*") if p.is_file()}
    assert {"python/venue.py", "avro/venue.avsc"} <= new
    for type_name in ("demand", "event", "notification", "sale"):
        for rel in (f"python/{type_name}.py", f"avro/{type_name}.avsc"):
            assert (project / "generated" / rel).read_bytes() == (ROOT / "generated" / rel).read_bytes(), rel
    docs = (project / "generated" / "docs" / "data-dictionary.md").read_text()
    assert "## `venue` — A place where events happen." in docs
    assert "| `address.line1` |" in docs


def test_registry_holds_the_fifth_type(package):
    shipped = sorted(p.stem for p in (ROOT / "schemas").glob("*.json"))
    assert sorted(package.REGISTRY) == sorted([*shipped, "venue"])
    assert package.venue.TYPE_NAME == "venue"


def test_decode_a_venue(venue):
    rec = venue.decode(IMAGE, INSERT, SETTINGS)
    assert (rec.id, rec.name, rec.venueType, rec.capacity) == ("v-1", "Ziggo Dome", "arena", 17000)
    assert type(rec.capacity) is int
    assert rec.sectionSizes == [500, 1200] and all(type(n) is int for n in rec.sectionSizes)
    assert sorted(rec.tags) == ["amsterdam", "indoor"]
    assert rec.accessible is True
    assert rec.facilities == ["bar", "parking"]
    assert [str(p) for p in rec.ticketPrices] == ["49.50", "100.00"]
    assert rec.renovations == [datetime(2019, 3, 1, 9, 0, tzinfo=UTC)]
    assert rec.closedDays == [date(2024, 12, 25)]
    assert rec.seatsSold == 123456789012
    assert rec.lastScan == datetime(2024, 5, 1, 20, 15, 0, 123456, tzinfo=UTC)
    assert rec.contactEmail == "box@example.com"
    assert (rec.address.line1, rec.address.city, rec.address.postcode) == ("De Passage 100", "Amsterdam", None)
    assert (str(rec.address.geo.lat), str(rec.address.geo.lon)) == ("52.313300", "4.937200")
    assert rec.date.opened is None and rec.date.listed == date(2012, 7, 1) and rec.date.deleted is None
    assert rec.isDeleted is False
    assert rec.reference == "venue:v-1"
    assert (rec.cdc.operation, rec.cdc.changeTime, rec.cdc.eventId) == ("INSERT", INSERT.change_time, "ev-9")


def test_partition_date_follows_the_declared_paths(venue):
    processing = datetime(2030, 1, 1, 23, 30, tzinfo=UTC)
    rec = venue.decode(IMAGE, INSERT, SETTINGS)
    assert venue.partition_date(rec, processing) == date(2012, 7, 1)  # date.listed
    opened = {**IMAGE, "date": {"M": {"opened": {"S": "2013-04-27T21:30:00.000+02:00"}}}}
    assert venue.partition_date(venue.decode(opened, INSERT, SETTINGS), processing) == date(2013, 4, 27)
    none = {k: v for k, v in IMAGE.items() if k != "date"}
    assert venue.partition_date(venue.decode(none, INSERT, SETTINGS), processing) == date(2030, 1, 1)


def test_remove_scrubs_pii_at_every_level(venue):
    rec = venue.decode(IMAGE, REMOVE, SETTINGS)
    assert rec.contactEmail == "[redacted]" and rec.address.line1 == "[redacted]"
    assert rec.address.city == "Amsterdam"
    assert rec.isDeleted is True
    assert rec.date.deleted == datetime(2024, 5, 2, 12, 0, 0, 250000, tzinfo=UTC)


def test_bad_venue_names_every_field(venue):
    image = {
        **IMAGE,
        "capacity": {"N": "2147483648"},
        "sectionSizes": {"L": [{"N": "1"}, {"N": "0.5"}]},
        "accessible": {"S": "yes"},
        "facilities": {"L": [{"S": "pool"}]},
        "ticketPrices": {"L": [{"N": "1.001"}]},
        "renovations": {"L": [{"S": "2019-03-01"}]},
        "closedDays": {"L": [{"S": "2024-02-30"}]},
        "seatsSold": {"N": "-1"},
        "lastScan": {"S": "2024-05-01T20:15:00.1234567Z"},
        "venueType": {"S": "field"},
        "address": {"M": {"city": {"S": "Amsterdam"}, "geo": {"M": {"lat": {"N": "52.1234567"}, "lon": {"N": "4"}}}}},
    }
    with pytest.raises(DecodeError) as err:
        venue.decode(image, INSERT, SETTINGS)
    assert err.value.problems == [
        "venueType: 'field' is not one of arena, club, stadium, theatre",
        "capacity: '2147483648' is out of range [-2147483648, 2147483647]",
        "sectionSizes[1]: '0.5' is not an integer",
        "accessible: expected type tag 'BOOL', got type tag 'S'",
        "facilities[0]: 'pool' is not one of bar, cloakroom, parking",
        "ticketPrices[0]: '1.001' has more than 2 decimal places for decimal(8,2)",
        "renovations[0]: '2019-03-01' is not an ISO-8601 timestamp with a time zone",
        "closedDays[0]: '2024-02-30' is not a valid calendar date",
        "seatsSold: '-1' is out of range [0, 1000000000000]",
        "lastScan: '2024-05-01T20:15:00.1234567Z' is more precise than the schema's 6 fraction digits",
        "address.line1: required attribute is missing",
        "address.geo.lat: '52.1234567' has more than 6 decimal places for decimal(9,6)",
    ]


def test_venue_round_trips_through_avro_and_parquet(project, venue):
    no_geo = {**IMAGE, "address": {"M": {"line1": {"S": "Main St 1"}, "city": {"S": "Utrecht"}}}}
    # a null struct (address.geo) whose fields are required: Parquet must still take it
    records = [venue.decode(img, change, SETTINGS) for img in (IMAGE, no_geo) for change in (INSERT, REMOVE)]
    datums = [venue.to_avro(r) for r in records]

    avsc = (project / "generated" / "avro" / "venue.avsc").read_text()
    assert json.loads(avsc) == venue.avro_schema
    assert avro.schema.parse(avsc).fullname == "dmd.venue.Venue"
    back = avro_roundtrip(venue.avro_schema, datums)
    assert back == datums
    assert back[0]["address"]["geo"]["lat"] == Decimal("52.313300")

    table = parquet_roundtrip(venue.to_arrow(records))
    assert table.schema.remove_metadata() == venue.arrow_schema()
    assert table.to_pylist() == datums


def test_venue_decoder_agrees_with_boto3(project, venue):
    rt = load_model(project / "schemas").type("venue")
    differential(venue, max_examples=100, rt=rt)()


def test_random_venues_round_trip_through_avro_and_parquet(venue):
    roundtrips(venue, max_examples=40)()


def test_enums_whose_names_differ_only_in_case_keep_their_own_symbols(tmp_path):
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    sale = json.loads((ROOT / "schemas" / "sale.json").read_text())
    sale["fields"][3:3] = [
        {"name": "kind", "type": {"type": "enum", "name": "LowerKind", "symbols": ["a"]}},
        {"name": "Kind", "type": {"type": "enum", "name": "UpperKind", "symbols": ["b"]}},
    ]
    (schemas / "sale.json").write_text(json.dumps(sale))
    result = CliRunner().invoke(main, ["generate", "--schemas", str(schemas), "--out", str(tmp_path / "generated")])
    assert result.exit_code == 0, result.output
    image = {
        "id": {"S": "s-1"},
        "type": {"S": "sale"},
        "eventId": {"S": "e-1"},
        "kind": {"S": "a"},
        "Kind": {"S": "b"},
        "saleType": {"S": "presale"},
        "saleStartDateTime": {"S": "2024-01-15T18:30:00Z"},
    }
    with imported(tmp_path / "generated" / "python") as package:
        rec = package.REGISTRY["sale"].decode(image, INSERT, SETTINGS)
        assert (rec.kind, rec.Kind) == ("a", "b")
        with pytest.raises(DecodeError) as err:
            package.REGISTRY["sale"].decode({**image, "kind": {"S": "b"}, "Kind": {"S": "a"}}, INSERT, SETTINGS)
        assert err.value.problems == ["kind: 'b' is not one of a", "Kind: 'a' is not one of b"]


def test_schema_docs_with_quotes_backslashes_pipes_and_newlines(tmp_path):
    """Free text from a schema never breaks the generated Python or the data dictionary."""
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    sale = json.loads((ROOT / "schemas" / "sale.json").read_text())
    sale["doc"] = 'A sale "window" of C:\\events\\ and """more"""'
    sale["fields"][2]["doc"] = "The event | its id\nsecond line"
    (schemas / "sale.json").write_text(json.dumps(sale))
    out = tmp_path / "generated"
    result = CliRunner().invoke(main, ["generate", "--schemas", str(schemas), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with imported(out / "python") as package:
        assert package.sale.Sale.__doc__ == sale["doc"]
        assert package.sale.__doc__.endswith(sale["doc"])
    docs = (out / "docs" / "data-dictionary.md").read_text()
    assert "| `eventId` | string | required |  | DynamoDB image | The event \\| its id second line |\n" in docs
