"""The history of every schema version ever generated, kept in generated/history/: the archive
holds files written with each of them, so `dmd generate` checks a schema edit against all of
them (evolution.py) and a file's recorded fingerprint names the version it was written with.

    generated/history/{type}/{version:04d}.json   one per version: its fingerprint, the plain
                                                  Avro schema and the schema file

A version is the schema file without its `doc` texts (a doc edit changes no file): a new one is
recorded when that differs from the type's latest. Unlike the rest of generated/, history is
read back: it is the state that generation adds to, never rewrites.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint as avro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from dmd.lake.layout import table_name

from .loader import record_type_from_doc
from .model import Model, RecordType
from .templating import GENERATOR_COMMAND
from .typemap import record_avro

HISTORY = "history"
FINGERPRINT_ALGORITHM = "SHA-256"  # of the Avro Parsing Canonical Form, as any Avro library computes it
NOTICE = (
    f"Recorded by `{GENERATOR_COMMAND}`: a schema version files of the archive may have been written with. "
    "DO NOT EDIT OR DELETE: the next generation checks the schemas against every version kept here."
)


def fingerprint(avro_schema: Mapping[str, Any]) -> str:
    """The hex SHA-256 fingerprint of a schema's Parsing Canonical Form (the Avro specification's
    "Schema Fingerprints"): what every container records (dmd.lake.formats.FINGERPRINT_KEY).
    The canonical form keeps names, types, fields and symbols; it drops docs, defaults, aliases
    and logical types, so the history (not the fingerprint alone) tells versions that differ
    only in those apart, and evolution.py refuses logical-type changes within a table."""
    return avro_fingerprint(to_parsing_canonical_form(dict(avro_schema)), FINGERPRINT_ALGORITHM)


def without_docs(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_docs(v) for k, v in value.items() if k != "doc"}
    if isinstance(value, list):
        return [without_docs(v) for v in value]
    return value


@dataclass(frozen=True)
class Version:
    type_name: str
    version: int
    fingerprint: str
    avro: dict[str, Any]  # the plain Avro schema its files hold
    schema: dict[str, Any]  # the schema file, docs left out

    @property
    def table_version(self) -> int:
        return self.schema["dmd"].get("tableVersion", 1)

    @property
    def table(self) -> str:
        """The table (and lake folder) its files were written to."""
        return table_name(self.type_name, self.table_version)

    @property
    def path(self) -> str:
        return f"{HISTORY}/{self.type_name}/{self.version:04d}.json"

    def to_json(self) -> str:
        doc = {
            "notice": NOTICE,
            "recordType": self.type_name,
            "version": self.version,
            "fingerprint": {FINGERPRINT_ALGORITHM: self.fingerprint},
            "avro": self.avro,
            "schema": self.schema,
        }
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


History = dict[str, tuple[Version, ...]]  # by type name, oldest first


def read_history(out_dir: Path) -> History:
    """Every recorded version under out_dir/history, by type, oldest first."""
    out: dict[str, list[Version]] = {}
    for path in sorted((out_dir / HISTORY).glob("*/*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        v = Version(
            doc["recordType"],
            doc["version"],
            doc["fingerprint"][FINGERPRINT_ALGORITHM],
            doc["avro"],
            doc["schema"],
        )
        if v.path != path.relative_to(out_dir).as_posix():
            raise ValueError(f"{path}: holds version {v.version} of {v.type_name}, not what its name says")
        out.setdefault(v.type_name, []).append(v)
    return {t: tuple(sorted(vs, key=lambda v: v.version)) for t, vs in out.items()}


def source_schema(rt: RecordType, schema_dir: Path) -> dict[str, Any]:
    """The type's schema file as a version holds it (docs left out)."""
    return without_docs(json.loads((schema_dir / Path(rt.source).name).read_text(encoding="utf-8")))


def current(rt: RecordType, schema: dict[str, Any]) -> Version:
    """The version the schema file is now, numbered after nothing (`updated` numbers it)."""
    avro = record_avro(rt)
    return Version(rt.type_name, 0, fingerprint(avro), avro, schema)


def updated(model: Model, schemas: Mapping[str, dict[str, Any]], history: History) -> History:
    """The history with each type's current schema appended where it differs from the latest
    version; types no longer in the schemas keep theirs (their files stay in the archive)."""
    out = dict(history)
    for rt in model.types:
        versions = history.get(rt.type_name, ())
        now = current(rt, schemas[rt.type_name])
        if versions and versions[-1].schema == now.schema:
            continue
        number = versions[-1].version + 1 if versions else 1
        out[rt.type_name] = (*versions, Version(**{**now.__dict__, "version": number}))
    return out


def retired(model: Model, history: History) -> tuple[RecordType, ...]:
    """The last version of each table of a type that is not the type's current table, oldest
    first: their files stay in the archive, so their tables are generated too."""
    out = []
    for rt in model.types:
        last: dict[str, Version] = {}
        for v in history.get(rt.type_name, ()):
            last[v.table] = v  # oldest first: the last one of each table wins
        out += [
            record_type_from_doc(v.schema, f"generated/{v.path}", rt.type_name, past=True)
            for table, v in last.items()
            if table != rt.table
        ]
    return tuple(out)


def render_history(history: History) -> dict[str, str]:
    return {v.path: v.to_json() for versions in history.values() for v in versions}
