"""The `dmd` command. Heavy modules are imported inside each command, so `dmd run` never
loads jinja2 and `dmd generate` never loads boto3."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from dmd.generator.deploy import ARCHITECTURES, DEFAULT_ARCHITECTURE, DEFAULT_PYTHON, PYTHON_VERSIONS
from dmd.ingest.config import Settings
from dmd.lake.formats import DEFAULT_FORMAT, FORMATS
from dmd.lake.storage import Storage

if TYPE_CHECKING:
    from dmd.ingest.pipeline import BatchResult


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """dmd-pipeline: archive DynamoDB change records as Avro/Parquet in a date-partitioned lake."""


@main.command()
@click.option(
    "--schemas",
    "schema_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("schemas"),
    show_default=True,
    help="Folder of schema files, one per record type.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("generated"),
    show_default=True,
    help="Folder the artefacts are written to.",
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Write nothing; exit 1 if OUT differs from what the schemas generate (CI's drift check).",
)
@click.option(
    "--allow-pii-removal",
    "allow_pii_removal",
    multiple=True,
    metavar="TYPE.FIELD",
    help="Accept dropping the `pii` flag of this field (older REMOVE rows stay redacted, newer ones will not be).",
)
def generate(schema_dir: Path, out_dir: Path, check_only: bool, allow_pii_removal: tuple[str, ...]) -> None:
    """Generate record code, Avro schemas, DDL, Terraform and docs from the schemas.

    Every schema change is first checked against each version in OUT/history (the archive holds
    files of all of them): an incompatible one is refused, one line per problem, and nothing is
    written. See docs/schema-evolution.md.
    """
    from dmd.generator.evolution import EvolutionError
    from dmd.generator.generate import generate as run_generate
    from dmd.generator.loader import SchemaError

    try:
        drift, verdict = run_generate(schema_dir, out_dir, check_only=check_only, allow_pii_removal=allow_pii_removal)
    except SchemaError as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    except EvolutionError as e:
        count = len(e.verdict.refused)
        click.echo(
            f"refused {count} schema change{'s' if count > 1 else ''} the archive cannot take; "
            f"nothing written (docs/schema-evolution.md):\n{e}",
            err=True,
        )
        sys.exit(1)
    if verdict.accepted or verdict.notes:
        click.echo(verdict.report())
    if check_only:
        if drift.clean:
            click.echo(f"{out_dir} is up to date with {schema_dir}")
            return
        click.echo(f"{out_dir} is stale; run `dmd generate` and commit the result:\n{drift.report()}", err=True)
        sys.exit(1)
    click.echo(drift.report() or f"{out_dir} already up to date")


# --- run ------------------------------------------------------------------------------------------


_LAKE_OPTIONS = (
    click.option("--lake", default="lake", show_default=True, help="Local directory, or s3://bucket[/base]."),
    click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default=DEFAULT_FORMAT, show_default=True),
    click.option(
        "--codec",
        default="",
        help="; ".join(f"{f.name}: {'|'.join(f.codecs)}" for f in FORMATS.values()) + " (the first is the default).",
    ),
    click.option("--prefix", default="archive", show_default=True, help="Key prefix of data containers."),
    click.option("--errors-prefix", default="errors", show_default=True, help="Key prefix of error documents."),
    click.option("--source-system-id", default="demand-capture", show_default=True, help="Value of `system`."),
    click.option(
        "--state-prefix",
        default="_dmd-state",
        show_default=True,
        help="Where each batch records the partitions it wrote, for `dmd compact` ('' records nothing).",
    ),
    click.option(
        "--s3-endpoint", envvar="DMD_S3_ENDPOINT", default=None, help="S3 endpoint URL (e.g. a local server)."
    ),
    click.option(
        "--log-level",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
        default="WARNING",
        show_default=True,
        help="JSON logs on stderr at this level.",
    ),
)


@dataclass(frozen=True)
class Lake:
    """Where and how records are archived, from the options `run` and `replay` share."""

    location: str
    settings: Settings
    storage: Storage
    s3_endpoint: str | None


def lake_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add the lake options to a command and hand it one `lake: Lake` instead."""

    @functools.wraps(command)
    def with_lake(
        *args: Any,
        lake: str,
        fmt: str,
        codec: str,
        prefix: str,
        errors_prefix: str,
        source_system_id: str,
        state_prefix: str,
        s3_endpoint: str | None,
        log_level: str,
        **kwargs: Any,
    ) -> None:
        from dmd.ingest import logs
        from dmd.ingest.config import ConfigError
        from dmd.lake.storage import open_storage

        try:
            settings = Settings(fmt, codec, prefix, errors_prefix, source_system_id, state_prefix)
            storage = open_storage(lake, s3_endpoint)
        except (ConfigError, ValueError) as e:
            raise click.UsageError(str(e)) from None
        logs.configure(log_level.upper(), sys.stderr)
        command(*args, lake=Lake(lake, settings, storage, s3_endpoint), **kwargs)

    for option in reversed(_LAKE_OPTIONS):
        with_lake = option(with_lake)
    return with_lake


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True, allow_dash=True, dir_okay=False))
@lake_options
def run(inputs: tuple[str, ...], lake: Lake) -> None:
    """Archive JSON-lines files of Lambda events (Kinesis or DynamoDB Streams), batch by batch,
    as the Lambda function would. INPUTS default to stdin ("-")."""
    from dmd.generated import REGISTRY
    from dmd.ingest import logs
    from dmd.ingest.envelope import read_lines
    from dmd.ingest.pipeline import process_batch

    for name in inputs:
        if name != "-" and (problem := _not_events(Path(name))):
            raise click.UsageError(f"{name}: {problem}; is it a file of Lambda events (see `dmd sample`)?")
    totals = RunTotals()
    for name in inputs or ("-",):
        with click.open_file(name, "rb") as f:
            size = Path(name).stat().st_size if name != "-" else 0
            show = sys.stderr.isatty() and size > 0
            with click.progressbar(length=size, label=name, file=sys.stderr, hidden=not show) as bar:
                for batch in read_lines(_counting(f, bar), name):
                    result = process_batch(batch, registry=REGISTRY, settings=lake.settings, storage=lake.storage)
                    totals.add(result)
                    logs.event("batch archived" if not result.failed else "batch partly failed", **_counts(result))
    click.echo(totals.report(lake.location))
    if totals.failed:
        sys.exit(1)


EVENT_PROBE_LINES = 100  # a file none of whose first lines is an event is refused


def _not_events(path: Path) -> str:
    """Why `path` is not a file of Lambda events (none of its first non-blank lines is a JSON
    object with a `Records` list), or "" if it is one, or is empty."""
    import orjson

    seen = 0
    with path.open("rb") as f:
        for line in f:
            line = line.removeprefix(b"\xef\xbb\xbf").strip() if seen == 0 else line.strip()
            if not line:
                continue
            seen += 1
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("Records"), list):
                return ""
            if seen >= EVENT_PROBE_LINES:
                break
    return f"none of its first {seen} lines is a Lambda event (a JSON object with a Records list)" if seen else ""


def _counts(result: BatchResult) -> dict[str, Any]:
    """A batch in a log line: counts only."""
    return {
        "records_in": result.records_in,
        "delivered": result.delivered_by_type,
        "error_records": result.error_records,
        "failed_records": result.failed_records,
        "objects": len(result.data),
        "error_objects": len(result.errors),
    }


def _counting(f: IO[bytes], bar: Any) -> Iterator[bytes]:
    for line in f:
        bar.update(len(line))
        yield line


class RunTotals:
    def __init__(self) -> None:
        self.records = self.errors = self.failed = self.batches = 0
        self.delivered: dict[str, int] = {}
        self.objects = self.error_objects = 0
        # (permanent, cause) -> [records, objects, an example key]
        self.failures: dict[tuple[bool, str], list[Any]] = {}

    def add(self, result: BatchResult) -> None:
        self.batches += 1
        self.records += result.records_in
        self.errors += result.error_records
        self.failed += result.failed_records
        self.objects += len(result.data)
        self.error_objects += len(result.errors)
        for type_name, n in result.delivered_by_type.items():
            self.delivered[type_name] = self.delivered.get(type_name, 0) + n
        for f in result.failed:
            entry = self.failures.setdefault((f.permanent, f.cause), [0, 0, f.key])
            entry[0] += len(f.sources)
            entry[1] += 1

    def report(self, lake: str) -> str:
        lines = [f"{self.records} records in {self.batches} batches -> {lake}"]
        lines += [f"  {t:<14} {n:>8} archived" for t, n in sorted(self.delivered.items())]
        lines.append(f"  {'errors':<14} {self.errors:>8} in {self.error_objects} error documents")
        if self.failed:
            lines.append(f"  {'NOT DELIVERED':<14} {self.failed:>8} records, because:")
            for (permanent, cause), (records, objects, key) in sorted(self.failures.items()):
                fix = "fix this, then rerun" if permanent else "transient: rerun to retry"
                lines.append(f"    {cause}: {records} records in {objects} objects, e.g. {key} ({fix})")
        lines.append(f"  {self.objects} data objects written")
        return "\n".join(lines)


# --- sample (runtime/sample.py) --------------------------------------------------------------------


@main.command()
@click.option("--records", type=click.IntRange(min=0), default=1000, show_default=True, help="Records in all.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same output, byte for byte.")
@click.option(
    "--bad-fraction",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Share of records replaced by malformed ones (invalid base64/JSON/fields, unknown type, ...).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Records per Lambda event (each event holds records of one shard).",
)
@click.option(
    "--bad-kind",
    "bad_kinds",
    multiple=True,
    help="Only malformed records of this kind (repeatable; default: every kind but 1 MB ones). See dmd.tools.malform.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.001),
    default=50.0,
    show_default=True,
    help="Changes per second on the table (Poisson arrivals): how much time a batch spans.",
)
@click.option("--out", "out", default="-", show_default=True, help="JSON-lines file to write, or - for stdout.")
@click.option(
    "--export-to",
    "export_to",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Instead of events: write a DynamoDB table export of the table these changes leave, laid out as "
    "AWS writes one (manifests, gzipped DynamoDB JSON data files) under this folder, for `dmd backfill`.",
)
@click.option(
    "--export-type",
    type=click.Choice(["full", "incremental"]),
    default="full",
    show_default=True,
    help="With --export-to: a full export (the items) or an incremental one (the changes).",
)
def sample(
    records: int,
    seed: int,
    bad_fraction: float,
    batch_size: int,
    bad_kinds: tuple[str, ...],
    rate: float,
    out: str,
    export_to: Path | None,
    export_type: str,
) -> None:
    """Write realistic Lambda Kinesis events (JSON lines) generated from the schemas: every record
    type, INSERT/MODIFY/REMOVE, optional fields sometimes absent, changes arriving at --rate per
    second from 2024-01-01; demand and notifications dated at their arrival, events and sales over
    dates of their own. With --export-to, a DynamoDB table export of the same table instead."""
    from .sample import MALFORMED_KINDS, write_sample

    if export_to is not None:
        from dmd.lake.storage import LocalStorage

        from .tableexport import FULL, INCREMENTAL, write_export

        kind = {"full": FULL, "incremental": INCREMENTAL}[export_type]
        stats = write_export(
            LocalStorage(export_to), "", records=records, seed=seed, kind=kind, bad_fraction=bad_fraction
        )
        folder = export_to / stats.folder
        click.echo(f"sample: {stats.items} items in {stats.files} data files ({len(stats.bad)} invalid) -> {folder}")
        click.echo(f"archive it with: dmd backfill {folder} --lake LAKE", err=True)
        return
    unknown = sorted(set(bad_kinds) - set(MALFORMED_KINDS))
    if unknown:
        raise click.BadParameter(f"{unknown}; known: {', '.join(MALFORMED_KINDS)}", param_hint="--bad-kind")
    with click.open_file(out, "w", encoding="utf-8", atomic=out != "-") as f:
        stats = write_sample(f, records, seed, bad_fraction, batch_size, kinds=bad_kinds or None, rate=rate)
    click.echo(f"sample: {stats.summary()} -> {out}", err=True)


# --- end of sample ---------------------------------------------------------------------------------


# --- dmd query (owned by the infra branch: the local lake through the Athena view definitions) ---


@main.command()
@click.argument("sql")
@click.option(
    "--lake",
    "lake",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    required=True,
    help="Root folder of the local lake (what `dmd run --lake` wrote).",
)
@click.option("--prefix", default="archive", show_default=True, help="Data prefix under the lake root.")
@click.option("--max-rows", default=100, show_default=True, help="Rows to print at most.")
def query(sql: str, lake: Path, prefix: str, max_rows: int) -> None:
    """Run SQL over the lake: views <type>, <type>_current (latest non-deleted version per item) and all_records."""
    import duckdb

    from dmd.tools.query import open_lake

    if not (lake / prefix).is_dir():
        raise click.UsageError(f"no lake at {lake}: it has no {prefix}/ folder (the --lake of `dmd run`)")
    con = open_lake(lake, prefix)
    try:
        result = con.sql(sql)
        if result is not None:  # a statement without a result (SET, CREATE ...) prints nothing
            result.show(max_rows=max_rows, max_width=10_000)
    except duckdb.Error as e:
        click.echo(f"query failed: {e}", err=True)
        sys.exit(1)


# --- end of dmd query ---


# --- replay (reliability) ---------------------------------------------------------------------------


@main.command()
@click.argument("source")
@lake_options
def replay(source: str, lake: Lake) -> None:
    """Re-drive the error documents under SOURCE (a directory, one document, or an
    s3://bucket/prefix; usually the lake's error prefix, e.g. lake/errors) through the current
    schemas. Records that now parse are archived in the lake; the rest go to error documents
    again. Each replayed document is then moved to `replayed/` under SOURCE, never deleted
    before its records are stored. Running it twice is harmless."""
    from dmd.generated import REGISTRY
    from dmd.ingest import logs

    from .replay import locate
    from .replay import replay as run_replay

    if not source.startswith("s3://") and not Path(source).exists():
        raise click.UsageError(f"{source}: no such folder or file")
    where = locate(source, lake.location, lake.storage, lake.s3_endpoint, None)
    report = run_replay(where, lake_storage=lake.storage, registry=REGISTRY, settings=lake.settings)
    logs.event(
        "replay finished",
        documents=len(report.documents),
        records=report.records,
        archived=report.archived,
        still_failing=report.still_failing,
        not_stored=report.not_stored,
        moved=report.moved,
    )
    click.echo(report.text(lake.location))
    if report.not_stored or any(d.note.startswith("not replayed") for d in report.documents):
        sys.exit(1)


# --- end replay (reliability) -----------------------------------------------------------------------


# --- backfill (issue 15) -----------------------------------------------------------------------------


@main.command()
@click.argument("export")
@lake_options
@click.option(
    "--target-size", default="128MiB", show_default=True, help="Size of an object at most (the compaction target)."
)
@click.option(
    "--buffer-rows",
    type=click.IntRange(min=100),
    default=20_000,
    show_default=True,
    help="Parsed items a worker holds before encoding them (its memory).",
)
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes [default: one per core].")
def backfill(export: str, lake: Lake, target_size: str, buffer_rows: int, workers: int | None) -> None:
    """Archive the items of a DynamoDB table export (EXPORT: s3://bucket/prefix/AWSDynamoDB/<export-id>/
    or a local copy of that folder; DynamoDB JSON, full or incremental) through the same decoders,
    validation, PII rules and encoders as the stream, in objects near the target size, one data
    file per process. A full export's items are archived as SNAPSHOT rows at the export time.
    Interrupted? Run the same command again: archived data files are not read again."""
    from dmd.ingest.backfill import PlanMismatch
    from dmd.ingest.export import ExportError

    from .backfill import Job, describe
    from .backfill import backfill as run_backfill

    if not lake.settings.state_prefix:
        raise click.UsageError("--state-prefix must not be empty: a backfill keeps its progress there")
    job = Job(
        export,
        lake.s3_endpoint,
        lake.location,
        lake.s3_endpoint,
        lake.settings,
        _backfill_plan(lake.settings, _size(target_size), buffer_rows),
    )
    try:
        _, files = describe(job)
        total = sum(f.items for f in files)
        show = sys.stderr.isatty() and total > 0
        with click.progressbar(length=total, label="items", file=sys.stderr, hidden=not show) as bar:
            report = run_backfill(job, lake.storage, workers=workers, progress=bar.update)
    except (ExportError, PlanMismatch) as e:
        raise click.ClickException(str(e)) from None
    click.echo(report.text(lake.location))
    if not report.ok:
        sys.exit(1)


def _backfill_plan(settings: Settings, target_bytes: int, buffer_rows: int) -> Any:
    from dmd.ingest.backfill import Plan

    return Plan.of(settings, target_bytes, buffer_rows)


# --- stats (issue 14) ----------------------------------------------------------------------------


@main.command()
@click.option("--lake", required=True, help="Local directory, or s3://bucket[/base].")
@click.option("--prefix", default="archive", show_default=True, help="Key prefix of data containers.")
@click.option("--errors-prefix", default="errors", show_default=True, help="Key prefix of error documents.")
@click.option("--s3-endpoint", envvar="DMD_S3_ENDPOINT", default=None, help="S3 endpoint URL (e.g. a local server).")
@click.option(
    "--html",
    "html_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write the report as a self-contained HTML page with charts.",
)
def stats(lake: str, prefix: str, errors_prefix: str, s3_endpoint: str | None, html_file: Path | None) -> None:
    """A health report of the lake: per type and partition day rows, objects, bytes and rows per
    object; error documents by cause and the oldest not replayed; freshness."""
    from dmd.lake.storage import open_storage

    from .stats import collect, text

    if not lake.startswith("s3://") and not Path(lake).is_dir():
        raise click.UsageError(f"{lake}: no such folder")
    try:
        storage = open_storage(lake, s3_endpoint)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    report = collect(storage, lake, prefix, errors_prefix)
    click.echo(text(report))
    if html_file is not None:
        from .stats_html import render

        html_file.write_text(render(report), encoding="utf-8")
        click.echo(f"\nHTML report: {html_file}")
    if report.unreadable:
        sys.exit(1)


# --- end stats ---------------------------------------------------------------------------------------


# --- compact (issue 12) -----------------------------------------------------------------------------

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def _duration(text: str) -> float:
    """Seconds from `90`, `90s`, `30m`, `1h`, `2d`."""
    t = text.strip().lower()
    unit = t[-1] if t and t[-1] in _DURATION_UNITS else "s"
    try:
        value = float(t.rstrip("smhd") or "x") * _DURATION_UNITS[unit]
    except ValueError:
        raise click.BadParameter(f"{text!r}: a number of seconds, or with s, m, h or d") from None
    if value < 0:
        raise click.BadParameter(f"{text!r} is negative")
    return value


def _size(text: str) -> int:
    """Bytes from `134217728`, `128MiB`, `64MB`."""
    t = text.strip().lower().replace(" ", "")
    number = t.rstrip("kmgib")
    try:
        value = int(float(number) * _SIZE_UNITS[t[len(number) :]])
    except (ValueError, KeyError):
        raise click.BadParameter(f"{text!r}: bytes, or with KB, MB, GB, KiB, MiB or GiB") from None
    if value < 1:
        raise click.BadParameter(f"{text!r} must be positive")
    return value


@main.command()
@click.option("--lake", default="lake", show_default=True, help="Local directory, or s3://bucket[/base].")
@click.option("--prefix", default="archive", show_default=True, help="Key prefix of data containers.")
@click.option("--state-prefix", default="_dmd-state", show_default=True, help="Key prefix of the compactor's state.")
@click.option(
    "--format", "formats", multiple=True, type=click.Choice(list(FORMATS)), help="Only this format (repeatable)."
)
@click.option("--type", "types", multiple=True, help="Only this record type (repeatable).")
@click.option("--from", "first_day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First partition date.")
@click.option("--to", "last_day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last partition date.")
@click.option("--min-age", default="1h", show_default=True, help="Merge only objects written at least this long ago.")
@click.option("--target-size", default="128MiB", show_default=True, help="Size of a merged object at most.")
@click.option(
    "--budget", default=None, help="Start no merge after this long (e.g. 10m); the rest is left for the next run."
)
@click.option(
    "--all", "scan_all", is_flag=True, help="List the whole data prefix instead of the touched markers (bootstrap)."
)
@click.option(
    "--codec", default=None, help="Codec of merged objects (default: Avro keeps the sources', Parquet snappy)."
)
@click.option("--lease-seconds", default="15m", show_default=True, help="S3: a partition lease expires after this.")
@click.option("--marker-grace", default="15m", show_default=True, help="Consume a touched marker only this old.")
@click.option("--dry-run", is_flag=True, help="Print what would be merged; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--s3-endpoint", envvar="DMD_S3_ENDPOINT", default=None, help="S3 endpoint URL (e.g. a local server).")
def compact(
    lake: str,
    prefix: str,
    state_prefix: str,
    formats: tuple[str, ...],
    types: tuple[str, ...],
    first_day: Any,
    last_day: Any,
    min_age: str,
    target_size: str,
    budget: str | None,
    scan_all: bool,
    codec: str | None,
    lease_seconds: str,
    marker_grace: str,
    dry_run: bool,
    as_json: bool,
    s3_endpoint: str | None,
) -> None:
    """Merge the lake's small data objects per (type, partition date) into objects near the
    target size, dropping duplicates of the same change. Crash-safe: rerun after any failure."""
    import json

    from dmd.generated import REGISTRY, TABLES
    from dmd.lake.compact import Options
    from dmd.lake.compact import compact as run_compact
    from dmd.lake.storage import open_storage

    unknown = sorted(set(types) - set(REGISTRY))
    if unknown:
        raise click.BadParameter(f"{unknown}; known: {', '.join(REGISTRY)}", param_hint="--type")
    options = Options(
        prefix=prefix,
        state_prefix=state_prefix,
        formats=frozenset(formats) or None,
        # a type's folders: its table's and its older table versions' (docs/schema-evolution.md)
        types=frozenset(table for table, spec in TABLES.items() if spec.type_name in types) or None,
        first_day=first_day.date() if first_day else None,
        last_day=last_day.date() if last_day else None,
        min_age=_duration(min_age),
        target_size=_size(target_size),
        budget=_duration(budget) if budget else None,
        dry_run=dry_run,
        scan_all=scan_all,
        codec=codec,
        lease_seconds=_duration(lease_seconds),
        marker_grace=_duration(marker_grace),
    )
    report = run_compact(open_storage(lake, s3_endpoint), options)
    click.echo(json.dumps(report.to_dict(), indent=1) if as_json else report.text())
    if not report.ok:
        sys.exit(1)


# --- package (issue 6) -------------------------------------------------------------------------------
# Lambda's limits for a zip package: 50 MB zipped (direct upload), 250 MB unzipped.
PACKAGE_LIMITS = {"zipped": 50 * 2**20, "unzipped": 250 * 2**20}
PACKAGE_TARGETS = {"zipped": 50 * 2**20, "unzipped": 150 * 2**20}


@main.command()
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("dist/lambda.zip"), show_default=True
)
@click.option(
    "--python",
    "python_version",
    type=click.Choice(PYTHON_VERSIONS),
    default=DEFAULT_PYTHON,
    show_default=True,
    help="The function's Lambda Python runtime (the generated Terraform's lambda_runtime default).",
)
@click.option(
    "--arch",
    "architecture",
    type=click.Choice(list(ARCHITECTURES)),
    default=DEFAULT_ARCHITECTURE,
    show_default=True,
    help="The function's architecture (arm64: Graviton, cheaper per GB-second).",
)
def package(out: Path, python_version: str, architecture: str) -> None:
    """Build the Lambda deployment zip: runtime, generated code and manylinux wheels of the
    dependencies for the target Python and architecture, minus boto3 and what the function never
    imports. The zip records its target; the function refuses to start on another."""
    from .package import build

    result = build(out, python_version, architecture)
    mb = {"zipped": result.zipped_bytes / 2**20, "unzipped": result.unzipped_bytes / 2**20}
    click.echo(
        f"{result.path}: python{result.python} {result.architecture}, {mb['zipped']:.1f} MB zipped, "
        f"{mb['unzipped']:.1f} MB unzipped, {result.files} files "
        f"(targets <= {PACKAGE_TARGETS['zipped'] >> 20} MB / <= {PACKAGE_TARGETS['unzipped'] >> 20} MB)"
    )
    if not result.compiled:
        click.echo(
            f"  no .pyc files: they can only be made by Python {result.python} itself (this is "
            f"{sys.version_info.major}.{sys.version_info.minor}); each cold start compiles the modules it imports",
            err=True,
        )
    if result.zipped_bytes > PACKAGE_LIMITS["zipped"] or result.unzipped_bytes > PACKAGE_LIMITS["unzipped"]:
        click.echo("over Lambda's size limits for a zip package", err=True)
        sys.exit(1)
