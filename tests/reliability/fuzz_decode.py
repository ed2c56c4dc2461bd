"""Fuzz target for the decoder entry point (atheris, coverage-guided).

One input is used four ways: as the payload of a Kinesis record (`kinesis.data` decoded), as
the JSON of a Lambda event line, as an inline DynamoDB Streams record, and as an item image
handed straight to every generated decoder. The only outcomes allowed are a parsed record or
an ArchiveError (parse), a record or a DecodeError (decoders), and a batch that conserves its
record (process_batch). Anything else raised is a bug.

Run it for longer (see docs/reliability.md):

    .venv/bin/pip install atheris
    .venv/bin/python tests/reliability/fuzz_decode.py -max_total_time=3600 -rss_limit_mb=4096 fuzz-corpus/

`check_one` is also driven by hypothesis in CI (test_fuzz_decode.py), without atheris.
"""

from __future__ import annotations

import base64
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _imports() -> None:
    global REGISTRY, Settings, StreamRecord, decode_event, read_lines, parse, ArchiveError, Parsed
    global Change, DecodeError, process_batch, MemoryStorage, EnvelopeError
    from memstore import MemoryStorage

    from dmd.generated import REGISTRY
    from dmd.ingest.config import Settings
    from dmd.ingest.envelope import EnvelopeError, StreamRecord, decode_event, read_lines
    from dmd.ingest.parse import ArchiveError, Parsed, parse
    from dmd.ingest.pipeline import process_batch
    from dmd.support.records import Change, DecodeError


SETTINGS: Any = None
WHEN = datetime(2024, 1, 15, tzinfo=UTC)


def check_one(data: bytes) -> None:
    global SETTINGS
    if SETTINGS is None:
        _imports()
        SETTINGS = Settings(format="avro", codec="null")
    settings = SETTINGS.record_settings

    # 1. as the base64-decoded `kinesis.data` of a record
    raw = base64.b64encode(data).decode()
    source = StreamRecord("kinesis", "shard-0", "1", WHEN.timestamp(), payload=data, raw=raw)
    outcome = parse(source, REGISTRY, settings)
    assert type(outcome) in (Parsed, ArchiveError), type(outcome)

    # 2. as one line of an events file
    for batch in read_lines([data], "fuzz.jsonl"):
        for record in batch:
            assert type(parse(record, REGISTRY, settings)) in (Parsed, ArchiveError)

    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return
    # 3. as an inline DynamoDB Streams record, through the whole batch
    storage = MemoryStorage()
    records = [value, {"eventSource": "aws:dynamodb", "dynamodb": {"SequenceNumber": "7"}, **_dict(value)}]
    try:
        sources = decode_event({"Records": records})
    except EnvelopeError:
        raise AssertionError("decode_event raised for a bad record") from None
    result = process_batch(sources, registry=REGISTRY, settings=SETTINGS, storage=storage)
    assert sum(d.records for d in result.data) + result.error_records == len(records)

    # 4. as an item image, to every generated decoder
    if isinstance(value, dict):
        for operation in ("INSERT", "REMOVE"):
            change = Change(operation, False, "1", WHEN, "e")
            for spec in REGISTRY.values():
                try:
                    record = spec.decode(value, change, settings)
                except DecodeError:
                    continue
                spec.partition_date(record, WHEN)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {"payload": value}


def main() -> None:
    import atheris

    with atheris.instrument_imports():
        _imports()
    atheris.Setup(sys.argv, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
