"""The one table of `added` kinds: values the pipeline sets on a record instead of reading them
from the DynamoDB image.

Everything about a kind is its row: the meta-schema's `added` enum and the argument a kind
requires (loader.metaschema), the loader's type check and message, the data dictionary's origin
column (targets/docs.py) and the value in generated code (targets/python.py). The kinds' names
become the members of model.Origin, which other targets use to find a field (e.g. the change time).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .kinds import TIMESTAMP_KINDS, Kind

if TYPE_CHECKING:
    from .model import Field  # model.py derives Origin from this table

TIMESTAMPS = (Kind.TIMESTAMP_MILLIS, Kind.TIMESTAMP_MICROS)


@dataclass(frozen=True)
class Added:
    kinds: tuple[Kind, ...]  # the field is one of these kinds
    doc: str  # the data dictionary's origin column (the field's argument follows it)
    # The value in generated code: an expression over `change` (dmd.support.records.Change) and
    # `settings`. {change_time}: the change time at the field's precision; {argument}: the
    # field's argument; {template}: the argument as an f-string over the record's image fields.
    python: str
    optional: bool = False  # the field is optional (True) or required (False)
    symbols: tuple[str, ...] = ()  # an enum field has exactly these symbols
    # Symbol sets of earlier pipelines: a version in generated/history may hold one of them (its
    # files were written then), a schema file may not (today's pipeline writes every symbol).
    earlier_symbols: tuple[tuple[str, ...], ...] = ()
    once: bool = True  # every record type has exactly one such field
    argument: str = ""  # the annotation key of the argument this kind requires, e.g. "template"
    argument_schema: dict[str, Any] = field(default_factory=dict)  # its JSON Schema

    def fits(self, f: Field, past: bool = False) -> bool:
        symbols_fit = f.type.symbols == self.symbols or (past and f.type.symbols in self.earlier_symbols)
        return f.type.kind in self.kinds and f.optional is self.optional and symbols_fit

    @property
    def shape(self) -> str:
        """What a field of this kind must be, for the loader's message."""
        noun = "timestamp" if set(self.kinds) == TIMESTAMP_KINDS else " or ".join(k.value for k in self.kinds)
        text = f"{'an optional' if self.optional else 'a required'} {noun}"
        return text + (f" with symbols {', '.join(self.symbols)}" if self.symbols else "")


# Keyed by the value of `"added"` in a schema file.
ADDED: dict[str, Added] = {
    "is-deleted": Added((Kind.BOOLEAN,), "pipeline: true for a REMOVE", "change.removed"),
    "deleted-at": Added(
        TIMESTAMPS, "pipeline: change time of a REMOVE", "{change_time} if change.removed else None", optional=True
    ),
    "template": Added(
        (Kind.STRING,),
        "pipeline: enrichment",
        "{template}",
        once=False,
        argument="template",
        argument_schema={"type": "string", "minLength": 1},
    ),
    "config": Added(
        (Kind.STRING,),
        "pipeline: configuration",
        "settings[{argument!r}]",
        once=False,
        argument="config",
        argument_schema={"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
    ),
    "cdc.operation": Added(
        (Kind.ENUM,),
        "pipeline: stream eventName (SNAPSHOT: a row of a full table export)",
        "change.operation",
        symbols=("INSERT", "MODIFY", "REMOVE", "SNAPSHOT"),
        earlier_symbols=(("INSERT", "MODIFY", "REMOVE"),),  # before table-export backfills
    ),
    "cdc.ttl-expired": Added((Kind.BOOLEAN,), "pipeline: TTL expiry flag", "change.ttl_expired"),
    "cdc.sequence-number": Added((Kind.STRING,), "pipeline: stream sequence number", "change.sequence_number"),
    "cdc.change-time": Added(TIMESTAMPS, "pipeline: ApproximateCreationDateTime", "{change_time}"),
    "cdc.event-id": Added((Kind.STRING,), "pipeline: stream eventID", "change.event_id"),
}

# Values every record type must carry, computed by the runtime for each change record.
REQUIRED_ADDED: tuple[str, ...] = tuple(value for value, a in ADDED.items() if a.once)


def annotate_metaschema(metaschema: dict[str, Any]) -> dict[str, Any]:
    """The meta-schema with the `added` enum and each kind's required argument filled in."""
    annotation = metaschema["$defs"]["fieldAnnotation"]
    annotation["properties"]["added"] = {"enum": list(ADDED)}
    for value, a in ADDED.items():
        if a.argument:
            annotation["properties"][a.argument] = a.argument_schema
            annotation["dependentRequired"][a.argument] = ["added"]  # an argument without a kind is a typo
            annotation["allOf"].append(
                {
                    "if": {"properties": {"added": {"const": value}}, "required": ["added"]},
                    "then": {"required": [a.argument]},
                }
            )
    return metaschema
