"""The lake's container formats: one row each, read by the runtime (encoder, extension, content
type, codecs), by `dmd query` (how DuckDB reads the files) and by the generator (the Athena SerDe
and the column types that differ per format) and by the compactor (how containers are merged).
Adding a format is adding a row here, its encoder in `encode.py` and its merger in `merge.py`.

Importing this module imports no encoding library: the generator and the CLI read the table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The key under which every container records the fingerprint of the schema it was written with
# (RecordSpec.fingerprint): an Avro file's metadata, a Parquet file's key-value metadata.
FINGERPRINT_KEY = "dmd.schema.fingerprint"


@dataclass(frozen=True)
class LakeFormat:
    name: str  # in settings, keys ({prefix}/{name}/{type}/...) and table names
    extension: str
    content_type: str
    codecs: tuple[str, ...]  # the first is the default
    # Athena/Glue: how Hive reads the files of a table of this format
    serde: str
    input_format: str
    output_format: str
    classification: str
    # Athena column types that differ from the model's default for this format, by field kind
    athena_overrides: Mapping[str, str] = field(default_factory=dict)
    # The table needs the writer's schema as `avro.schema.literal`
    schema_literal: bool = False
    # pyarrow.dataset reads the files lazily (`dmd query` hands DuckDB the dataset); None: they
    # are read into Arrow with `dmd.lake.read` first (DuckDB's Avro extension would need a download)
    dataset_format: str | None = None
    # How `dmd compact` merges containers of this format: the name of its `Merger` in
    # dmd.lake.merge ("" : containers of this format are not compacted)
    merge_with: str = ""

    @property
    def default_codec(self) -> str:
        return self.codecs[0]

    def encode(self, spec: Any, records: Sequence[Any], codec: str) -> bytes:
        """One container of `records` (all of one type)."""
        from . import encode

        return encode.encode(self.name, spec, records, codec)

    def encode_groups(self, spec: Any, groups: Sequence[Sequence[Any]], codec: str) -> list[bytes]:
        """One container per group of records of one type; raises if any group cannot be encoded."""
        from . import encode

        return encode.encode_groups(self.name, spec, groups, codec)

    def merger(self) -> Any:
        """The `dmd.lake.merge.Merger` of this format."""
        from . import merge

        if not self.merge_with:
            raise ValueError(f"containers of format {self.name!r} are not compacted")
        return getattr(merge, self.merge_with)


PARQUET = LakeFormat(
    name="parquet",
    extension="parquet",
    content_type="application/vnd.apache.parquet",
    codecs=("snappy", "zstd", "none"),
    serde="org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
    input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    classification="parquet",
    dataset_format="parquet",
    merge_with="PARQUET_MERGER",
)

AVRO = LakeFormat(
    name="avro",
    extension="avro",
    content_type="avro/binary",
    codecs=("deflate", "null", "snappy", "zstandard"),
    serde="org.apache.hadoop.hive.serde2.avro.AvroSerDe",
    input_format="org.apache.hadoop.hive.ql.io.avro.AvroContainerInputFormat",
    output_format="org.apache.hadoop.hive.ql.io.avro.AvroContainerOutputFormat",
    classification="avro",
    # Athena reads Avro with Hive's rules: only timestamp-millis, date and decimal (on bytes)
    # logical types map to Hive types; any other is read as its base type. So a timestamp-micros
    # column of an Avro table is a bigint (µs since the epoch), while Parquet keeps a timestamp.
    athena_overrides={"timestamp-micros": "bigint"},
    schema_literal=True,
    merge_with="AVRO_MERGER",
)

# In the order settings, help texts and generated tables list them (the first is the default).
FORMATS: dict[str, LakeFormat] = {f.name: f for f in (PARQUET, AVRO)}
DEFAULT_FORMAT = next(iter(FORMATS))


def by_extension(key: str) -> LakeFormat | None:
    """The format of a data object, from its key's extension."""
    ext = key.rpartition(".")[2]
    return next((f for f in FORMATS.values() if f.extension == ext), None)
