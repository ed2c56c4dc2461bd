"""One large data container written a slice of records at a time to a local file, in the
large-file settings of the compactor's merges (dmd.lake.merge: Parquet dictionaries and statistics
on, a row group per slice; Avro blocks of about 1 MiB), so a backfill writes objects near the
compaction target from the start instead of one small object per batch.

The container's header is what the small files of the stream have (the same Avro writer schema
text, the same Arrow schema), so the compactor can later merge both kinds in one partition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dmd.support.records import RecordSpec

from .formats import FORMATS
from .identity import hashes_of


class PartitionFile:
    """Rows of one record type appended to `path`; `close()` before uploading it."""

    def __init__(self, fmt: str, spec: RecordSpec, codec: str, path: Path, name: str) -> None:
        self.fmt, self.spec, self.codec, self.path = fmt, spec, codec, path
        self.rows = 0
        # of the rows, in order: the container's identity index (dmd.lake.identity), which spares
        # the compactor reading the object when it checks a merge for twins in it
        self.hashes = bytearray()
        self._file: Any = None
        self._writer: Any = None
        # A container's sync marker from its name: a rerun writes the same bytes.
        self._sync = hashlib.md5(name.encode(), usedforsecurity=False).digest()

    @property
    def extension(self) -> str:
        return FORMATS[self.fmt].extension

    def size(self) -> int:
        """Bytes in the file so far (a Parquet file's footer and an Avro block in hand not counted)."""
        return self.path.stat().st_size if self.path.exists() else 0

    def append(self, records: Sequence[Any]) -> list[tuple[Any, str]]:
        """Append what encodes; return (record, reason) of each record the encoder rejects, so one
        bad record never costs the others."""
        if self.fmt == "avro":
            return self._append_avro(records)
        return self._append_parquet(records)

    def _append_parquet(self, records: Sequence[Any]) -> list[tuple[Any, str]]:
        from .encode import arrow_memory
        from .merge import parquet_writer

        arrow_memory()
        rejected: list[tuple[Any, str]] = []
        try:
            table = self.spec.to_arrow(records)
        except Exception:
            good = []
            for r in records:
                try:
                    self.spec.to_arrow([r])
                    good.append(r)
                except Exception as e:
                    rejected.append((r, f"{self.spec.type_name}: cannot encode as parquet: {e}"))
            if not good:
                return rejected
            records = good
            table = self.spec.to_arrow(good)
        if self._writer is None:
            self._writer = parquet_writer(self.path, table.schema, self.codec)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows += table.num_rows
        self.hashes += hashes_of(r.cdc.sequenceNumber for r in records)
        return rejected

    def _append_avro(self, records: Sequence[Any]) -> list[tuple[Any, str]]:
        from .encode import _avro_schema_json
        from .merge import AvroWriter

        if self._writer is None:
            self._file = self.path.open("wb")
            self._writer = AvroWriter(
                self._file, _avro_schema_json(self.spec), self.codec, self._sync, self.spec.fingerprint or None
            )
        write = self.spec.avro_write or _fastavro_write(self.spec)
        rejected: list[tuple[Any, str]] = []
        buf = bytearray()
        written = []
        for r in records:
            mark = len(buf)
            try:
                write(r, buf)
                written.append(r)
            except Exception as e:
                del buf[mark:]
                rejected.append((r, f"{self.spec.type_name}: cannot encode as avro: {e}"))
        if written:
            self._writer.append(len(written), bytes(buf))
            self.rows += len(written)
            self.hashes += hashes_of(r.cdc.sequenceNumber for r in written)
        return rejected

    def close(self) -> None:
        if self._writer is None:
            return
        if self.fmt == "avro":
            self._writer.flush()
            self._file.close()
        else:
            from .encode import metadata

            if metadata(self.spec):  # the schema's fingerprint, as every container records it
                self._writer.add_key_value_metadata(dict(metadata(self.spec)))
            self._writer.close()
        self._writer = None


def _fastavro_write(spec: RecordSpec) -> Any:
    """A record type without a generated Avro writer: fastavro's, datum by datum."""
    import io

    import fastavro

    from .encode import _parsed_avro_schema

    parsed = _parsed_avro_schema(spec)

    def write(record: Any, out: bytearray) -> None:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, spec.to_avro(record))
        out += buf.getvalue()

    return write
