"""Terraform target: a module that deploys the archive: the S3 bucket, the Glue database and one
table per record type (for the chosen lake format) matching the Athena DDL, the archiving Lambda
function with its Kinesis event source mapping (filters generated from the record types), the
scheduled compactor function, the backfill (a Step Functions Distributed Map over a DynamoDB
export's data files, each archived by the backfill function), their IAM roles, and the Athena
views as Glue Data Catalog views.

Python computes every value (HCL-quoted); the templates only lay them out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from dmd.lake import layout
from dmd.lake.formats import FORMATS, LakeFormat
from dmd.lake.metrics import DEFAULT_NAMESPACE

from .. import deploy
from ..model import Model, RecordType
from ..templating import header, render
from . import athena, monitoring
from .catalog import PARTITION_KEY, PARTITION_TYPE, avro_literal, columns, location, projection

TEMPLATES = {
    "versions.tf": "terraform/versions.tf.j2",
    "variables.tf": "terraform/variables.tf.j2",
    "s3.tf": "terraform/s3.tf.j2",
    "glue.tf": "terraform/glue.tf.j2",
    "lambda.tf": "terraform/lambda.tf.j2",
    "iam.tf": "terraform/iam.tf.j2",
    "compactor.tf": "terraform/compactor.tf.j2",
    "backfill.tf": "terraform/backfill.tf.j2",
    "athena.tf": "terraform/athena.tf.j2",
    "outputs.tf": "terraform/outputs.tf.j2",
    "monitoring.tf": "terraform/monitoring.tf.j2",
}
# Templates a file also depends on, for its do-not-edit hash.
ALSO_FROM = {"athena.tf": (athena.CURRENT_BODY, athena.ALL_RECORDS_BODY)}

# Stand-ins replaced by Terraform interpolations once a value has been HCL-quoted.
ROOT, START, END = "@@lake_root@@", "@@projection_start@@", "@@projection_end@@"
INTERPOLATIONS = {ROOT: "${local.lake_root}", START: "${var.projection_start}", END: "${var.projection_end}"}

# The runtime's configuration (dmd.ingest.config), as Terraform sets it on the function.
ENVIRONMENT = (
    ("DMD_BUCKET", "aws_s3_bucket.archive.bucket"),
    ("DMD_PREFIX", "var.prefix"),
    ("DMD_ERRORS_PREFIX", "var.errors_prefix"),
    ("DMD_FORMAT", "var.format"),
    ("DMD_CODEC", "var.codec"),
    ("DMD_SOURCE_SYSTEM_ID", "var.source_system_id"),
    ("DMD_LOG_LEVEL", "var.log_level"),
    ("DMD_STATE_PREFIX", "var.state_prefix"),  # where it leaves one "touched partitions" marker per batch
    ("DMD_METRICS_NAMESPACE", "var.metrics_namespace"),
)
HANDLER = "dmd.ingest.handler.handler"
# The compactor's configuration (dmd.lake.compact_handler), as Terraform sets it on its function.
COMPACTOR_ENVIRONMENT = (
    ("DMD_BUCKET", "aws_s3_bucket.archive.bucket"),
    ("DMD_PREFIX", "var.prefix"),
    ("DMD_STATE_PREFIX", "var.state_prefix"),
    ("DMD_COMPACT_MIN_AGE_SECONDS", "var.compaction_min_age_seconds"),
    ("DMD_COMPACT_TARGET_BYTES", "var.compaction_target_bytes"),
    ("DMD_COMPACT_BUDGET_SECONDS", "var.compaction_budget_seconds"),
    ("DMD_METRICS_NAMESPACE", "var.metrics_namespace"),
    # the metrics' dimension: the workers report under the scheduled function's name too
    ("DMD_COMPACTOR_NAME", "local.compactor_name"),
)
COMPACTOR_HANDLER = "dmd.lake.compact_handler.handler"
# The backfill function (dmd.ingest.backfill_handler): the archiving function's settings, and its own.
BACKFILL_ENVIRONMENT = (
    *ENVIRONMENT,
    ("DMD_BACKFILL_TARGET_BYTES", "var.backfill_target_bytes"),
)
BACKFILL_HANDLER = "dmd.ingest.backfill_handler.handler"
# fan-out mode: the scheduled function plans, sending to this queue; "" runs it all itself
PLANNER_ENVIRONMENT = (("DMD_COMPACT_QUEUE_URL", 'local.fan_out ? aws_sqs_queue.compaction.url : ""'),)
WORKER_HANDLER = "dmd.lake.compact_handler.worker"
# Key prefixes as the runtime accepts them (dmd.ingest.config): S3's safe characters in
# '/'-separated segments; the templates also reject "." and ".." segments. RE2 syntax.
PREFIX_PATTERN = "^[A-Za-z0-9_.*'()!-]+(/[A-Za-z0-9_.*'()!-]+)*$"
# DynamoDB's stream record: the image that holds the item of an event, by event name.
IMAGES = (("NewImage", ("INSERT", "MODIFY")), ("OldImage", ("REMOVE",)))
TYPE_ATTRIBUTE = "type"  # every item names its record type here (the loader requires the field)
MAX_FILTERS = 5  # Lambda's limit of filters per event source mapping
MAX_PATTERN_BYTES = 4096  # and of one filter pattern


def hcl_string(text: str, interpolations: dict[str, str] | None = None) -> str:
    """A quoted HCL string holding `text` literally; then each stand-in becomes its interpolation."""
    if any(ord(c) < 0x20 and c not in "\n\t" for c in text):
        raise ValueError(f"control character in {text[:40]!r}")
    quoted = json.dumps(text, ensure_ascii=False).replace("${", "$${").replace("%{", "%%{")
    for stand_in, expr in (interpolations or {}).items():
        quoted = quoted.replace(stand_in, expr)
    return quoted


def aligned(pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> list[str]:
    """`key = value` lines with the `=` aligned, as `terraform fmt` writes them."""
    width = max((len(k) for k, _ in pairs), default=0)
    return [f"{k.ljust(width)} = {v}" for k, v in pairs]


def filter_patterns(model: Model) -> list[str]:
    """Event filters on the Kinesis records' JSON `data`: one per image side, listing every type,
    so the count does not grow with the number of record types."""
    types = [rt.type_name for rt in model.types]
    patterns = [
        json.dumps(
            {"data": {"eventName": list(events), "dynamodb": {image: {TYPE_ATTRIBUTE: {"S": types}}}}},
            separators=(",", ":"),
        )
        for image, events in IMAGES
    ]
    if len(patterns) > MAX_FILTERS or any(len(p.encode()) > MAX_PATTERN_BYTES for p in patterns):
        raise ValueError("event filters exceed Lambda's limits; shorten the record type names")
    return patterns


@dataclass(frozen=True)
class GlueTable:
    resource: str
    name: str
    format: str
    description: str
    location: str
    parameters: list[str]  # aligned `key = value` lines
    serde: str
    serde_parameters: list[str]
    input_format: str
    output_format: str
    columns: tuple[tuple[str, str, str], ...]  # (name, type, comment), all HCL-quoted


def glue_table(rt: RecordType, fmt: LakeFormat) -> GlueTable:
    q = hcl_string
    table_location = location(ROOT, fmt, rt)
    parameters = {"EXTERNAL": "TRUE", "classification": fmt.classification}
    parameters |= projection(table_location, START, END)
    serde_parameters = {"avro.schema.literal": avro_literal(rt)} if fmt.schema_literal else {}
    return GlueTable(
        resource=f"{rt.table}_{fmt.name}",
        name=q(rt.table),
        format=q(fmt.name),
        description=q(rt.doc),
        location=q(table_location, INTERPOLATIONS),
        parameters=aligned([(q(k), q(v, INTERPOLATIONS)) for k, v in parameters.items()]),
        serde=q(fmt.serde),
        serde_parameters=aligned([(q(k), q(v)) for k, v in serde_parameters.items()]),
        input_format=q(fmt.input_format),
        output_format=q(fmt.output_format),
        # Athena keeps column names in lower case; Glue gets them as Athena's DDL would store them.
        columns=tuple((q(c.name.lower()), q(c.type), q(c.comment)) for c in columns(rt, fmt)),
    )


# --- The Athena views, as Glue Data Catalog views (athena.tf) ---------------------------------
# Athena reads a Glue table as a view it can query when the table is what its own CREATE VIEW
# writes: type VIRTUAL_VIEW, parameters presto_view = "true" and comment = "Presto View" (both
# checked), and view_original_text "/* Presto View: <base64 JSON> */" holding the SQL, the catalog
# and database it runs in and the columns it returns, in the engine's type names; when it reads
# the view it checks those columns against what the SQL returns (same names, types it can coerce).
VIEW_PARAMETERS = (("presto_view", '"true"'), ("comment", '"Presto View"'))
VIEW_CATALOG = "awsdatacatalog"  # Athena's name for the account's Glue Data Catalog


@dataclass(frozen=True)
class GlueView:
    resource: str
    view: str  # the view's name, unquoted: its key in local.athena_view_sql
    name: str
    format: str
    description: str
    columns: tuple[tuple[str, str, str], ...]  # the storage descriptor's (name, Hive type, comment), HCL-quoted
    definition: list[str]  # the `columns` of the view's JSON: `{ name = ..., type = ... }` lines


def view_sql(view: athena.View) -> str:
    """The heredoc body of a view's SQL, its tables qualified by the database's interpolation."""
    if "%{" in view.body or view.body.count("${") != view.body.count(athena.DATABASE):
        raise ValueError(f"view {view.name} cannot be embedded in a heredoc")
    return view.body.replace(athena.DATABASE, "${aws_glue_catalog_database.archive.name}")


def views_context(model: Model) -> dict[str, object]:
    """What athena.tf lays out: each view's SQL (`name = <<-SQL` lines aligned as `terraform fmt`
    aligns them, with the heredoc's body) and its Glue view for each lake format."""
    q = hcl_string
    names, bodies, out = [], [], []
    for view in athena.views(model):
        names.append((view.name, "<<-SQL"))
        bodies.append(view_sql(view))
        for fmt in FORMATS.values():
            columns = view.columns[fmt.name]
            out.append(
                GlueView(
                    resource=f"{view.name}_{fmt.name}",
                    view=view.name,
                    name=q(view.name),
                    format=q(fmt.name),
                    description=q(view.doc),
                    # lower case, as Athena's CREATE VIEW and the tables (glue_table) keep names
                    columns=tuple((q(c.name.lower()), q(c.type), q(c.comment)) for c in columns),
                    definition=[f"{{ name = {q(c.name.lower())}, type = {q(c.presto)} }}," for c in columns],
                )
            )
    return {
        "view_sql": list(zip(aligned(names), bodies, strict=True)),
        "views": out,
        "view_parameters": aligned(VIEW_PARAMETERS),
        "view_catalog": q(VIEW_CATALOG),
    }


def alarm_context(alarm: monitoring.Alarm) -> dict[str, object]:
    return {
        "resource": alarm.resource,
        "suffix": alarm.resource.replace("_", "-"),
        "description": hcl_string(alarm.description),
        "namespace": alarm.namespace,
        "metric": hcl_string(alarm.metric),
        "statistic": hcl_string(alarm.statistic),
        "period": alarm.period,
        "evaluation_periods": alarm.evaluation_periods,
        "variable": alarm.variable,
        "default": alarm.default,
        "variable_description": hcl_string(alarm.variable_description),
        "dimensions": aligned(alarm.dimensions),
    }


def render_terraform(model: Model) -> dict[str, str]:
    tables = [glue_table(t, fmt) for rt in model.types for t in model.tables(rt) for fmt in FORMATS.values()]
    context = {
        "types": [rt.type_name for rt in model.types],
        "tables": tables,
        "table_outputs": aligned([(t.resource, f"one(aws_glue_catalog_table.{t.resource}[*].name)") for t in tables]),
        "formats": [fmt.name for fmt in FORMATS.values()],
        "partition": (hcl_string(PARTITION_KEY), hcl_string(PARTITION_TYPE)),
        "patterns": [hcl_string(p) for p in filter_patterns(model)],
        "environment": aligned(ENVIRONMENT),
        "handler": hcl_string(HANDLER),
        "compactor_environment": aligned(COMPACTOR_ENVIRONMENT + PLANNER_ENVIRONMENT),
        "compactor_handler": hcl_string(COMPACTOR_HANDLER),
        "backfill_environment": aligned(BACKFILL_ENVIRONMENT),
        "backfill_handler": hcl_string(BACKFILL_HANDLER),
        # {state_prefix}/backfill/: a backfill's plan, done markers and the state machine's results
        "backfill": layout.BACKFILL.rstrip("/"),
        "worker_environment": aligned(COMPACTOR_ENVIRONMENT),
        "worker_handler": hcl_string(WORKER_HANDLER),
        # {state_prefix}/touched/: the archiving function's markers, read by the compactor
        "touched": layout.TOUCHED.rstrip("/"),
        # {state_prefix}/identities/: identity indexes of big objects (the backfill writes some)
        "identities": layout.IDENTITIES.rstrip("/"),
        "default_state_prefix": hcl_string(layout.DEFAULT_STATE_PREFIX),
        "prefix_pattern": hcl_string(PREFIX_PATTERN),
        # what the runtime accepts for any format; empty: the format's default
        "codecs": sorted({hcl_string(c) for fmt in FORMATS.values() for c in fmt.codecs}),
        **views_context(model),
        # the Lambda target `dmd package` builds for by default (generator/deploy.py)
        "runtimes": [hcl_string(deploy.lambda_runtime(v)) for v in deploy.PYTHON_VERSIONS],
        "default_runtime": hcl_string(deploy.lambda_runtime(deploy.DEFAULT_PYTHON)),
        "architectures": [hcl_string(a) for a in deploy.ARCHITECTURES],
        "default_architecture": hcl_string(deploy.DEFAULT_ARCHITECTURE),
        "default_namespace": hcl_string(DEFAULT_NAMESPACE),
        "alarms": [alarm_context(a) for a in monitoring.ALARMS],
        "dashboard": monitoring.dashboard_heredoc(model),
    }
    out = {}
    for name, template in TEMPLATES.items():
        templates = [template, *ALSO_FROM.get(name, ())]
        out[f"terraform/{name}"] = render(template, header=header("#", model.types, templates), **context)
    return out
