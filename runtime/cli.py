"""The `dmd` command. Heavy modules are imported inside each command, so `dmd run` never
loads jinja2 and `dmd generate` never loads boto3."""

from __future__ import annotations

import sys
from pathlib import Path

import click


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
def generate(schema_dir: Path, out_dir: Path, check_only: bool) -> None:
    """Generate record code, Avro schemas, DDL, Terraform and docs from the schemas."""
    from dmd.generator.generate import generate as run_generate
    from dmd.generator.loader import SchemaError

    try:
        drift = run_generate(schema_dir, out_dir, check_only=check_only)
    except SchemaError as e:
        click.echo(str(e), err=True)
        sys.exit(2)
    if check_only:
        if drift.clean:
            click.echo(f"{out_dir} is up to date with {schema_dir}")
            return
        click.echo(f"{out_dir} is stale; run `dmd generate` and commit the result:\n{drift.report()}", err=True)
        sys.exit(1)
    click.echo(drift.report() or f"{out_dir} already up to date")


# --- dmd query (owned by the infra branch: the local lake through the Athena view definitions) ---


@main.command()
@click.argument("sql")
@click.option(
    "--lake",
    "lake",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Root folder of the local lake (what `dmd run --lake` wrote).",
)
@click.option("--prefix", default="archive", show_default=True, help="Data prefix under the lake root.")
@click.option("--max-rows", default=100, show_default=True, help="Rows to print at most.")
def query(sql: str, lake: Path, prefix: str, max_rows: int) -> None:
    """Run SQL over the lake: views <type>, <type>_current (latest non-deleted version per item) and all_records."""
    import duckdb

    from dmd.runtime.query import open_lake

    con = open_lake(lake, prefix)
    try:
        result = con.sql(sql)
        if result is not None:  # a statement without a result (SET, CREATE ...) prints nothing
            result.show(max_rows=max_rows, max_width=10_000)
    except duckdb.Error as e:
        click.echo(f"query failed: {e}", err=True)
        sys.exit(1)


# --- end of dmd query ---
