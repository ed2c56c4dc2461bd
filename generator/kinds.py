"""The kinds of schema types. Their own module because the table of `added` kinds (added.py)
names them and the model (model.py) derives its `Origin` from that table."""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    STRING = "string"
    BOOLEAN = "boolean"
    INT = "int"
    LONG = "long"
    DECIMAL = "decimal"
    TIMESTAMP_MILLIS = "timestamp-millis"
    TIMESTAMP_MICROS = "timestamp-micros"
    DATE = "date"
    ENUM = "enum"
    ARRAY = "array"
    RECORD = "record"


TIMESTAMP_KINDS = frozenset({Kind.TIMESTAMP_MILLIS, Kind.TIMESTAMP_MICROS})
