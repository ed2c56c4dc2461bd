"""The kinds of schema types: the runtime's FieldKind, which generated code names too. Their own
module because the table of `added` kinds (added.py) names them and the model (model.py) derives
its `Origin` from that table."""

from __future__ import annotations

from dmd.support.records import FieldKind as Kind  # one enum: the runtime's kinds are the schema's

TIMESTAMP_KINDS = frozenset({Kind.TIMESTAMP_MILLIS, Kind.TIMESTAMP_MICROS})
