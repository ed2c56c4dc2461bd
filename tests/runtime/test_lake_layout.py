"""dmd.lake.layout and dmd.lake.errordoc: every key the lake holds is built and taken apart in one
place, and an error document reads back as it was written."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from dmd.generated import REGISTRY
from dmd.lake import layout
from dmd.lake.errordoc import ErrorDocument, ErrorEntry
from dmd.lake.formats import FORMATS

segments = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith("_")
)


@given(
    prefix=st.lists(segments, min_size=1, max_size=3).map("/".join),
    fmt=st.sampled_from(sorted(FORMATS)),
    type_name=st.sampled_from(sorted(REGISTRY)),
    day=st.dates(date(1, 1, 1), date(9999, 12, 31)),
    arrival=st.datetimes(datetime(1970, 1, 2), datetime(9999, 12, 30), timezones=st.just(UTC)),
    parts=st.lists(st.text(), max_size=4),
)
def test_a_data_key_is_taken_apart_into_what_built_it(prefix, fmt, type_name, day, arrival, parts):
    key = layout.data_key(prefix, FORMATS[fmt], type_name, day, arrival, layout.object_id(*parts))
    parsed = layout.parse_data_key(key, prefix)
    assert parsed is not None and parsed.key == key
    assert (parsed.format.name, parsed.type_name, parsed.day) == (fmt, type_name, day)
    assert key.startswith(layout.partition_prefix(prefix, fmt, type_name, day))
    assert layout.stamp_of(key) == arrival.replace(microsecond=0)


def test_what_is_not_a_data_container_is_not_taken_for_one():
    ok = "archive/parquet/sale/partition_date=2024-01-05/2024-01-05-00-00-00-x.parquet"
    assert layout.parse_data_key(ok, "archive")
    for key in (
        ok.replace("archive/", "other/"),
        ok.replace("2024-01-05-00-00-00-x", "_compacting-x"),  # hidden: Athena ignores it
        ok.replace("2024-01-05-00-00-00-x", ".tmp-x"),
        ok.replace("partition_date=2024-01-05", "partition_date=20240105"),
        ok.replace("partition_date=", "day="),
        ok.replace(".parquet", ".avro"),  # not the extension of its format's folder
        ok.replace("/parquet/", "/orc/"),
        "archive/parquet/sale/x.parquet",
    ):
        assert layout.parse_data_key(key, "archive") is None, key


def test_replayed_documents_sit_beside_the_originals():
    assert layout.replayed_key("errors/2024-x.json") == "errors/replayed/2024-x.json"
    assert layout.replayed_key("x.json") == "replayed/x.json"
    assert layout.is_replayed("errors/replayed/2024-x.json") and not layout.is_replayed("errors/2024-x.json")


@given(
    message=st.text(),
    entries=st.lists(
        st.builds(
            ErrorEntry,
            st.text(),
            st.sampled_from(["kinesis", "dynamodb", "line", "unknown"]),
            st.text(),
            st.text(),
            st.sampled_from(["kinesis-data", "text", "base64"]),
        ),
        max_size=4,
    ),
)
def test_an_error_document_reads_back_as_written(message, entries):
    now = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    doc = ErrorDocument(now, message, tuple(entries))
    back = ErrorDocument.from_json(doc.to_json())
    assert back.timestamp == now
    assert [(e.source, e.shard, e.sequence_number, e.encoding) for e in back.entries] == [
        (e.source, e.shard, e.sequence_number, e.encoding) for e in entries
    ]
    # lone surrogates cannot cross JSON as UTF-8: the writer escapes them, the reader gets them back
    assert [e.text for e in back.entries] == [e.text for e in entries]
    assert back.message == message
