"""Golden tests of the athena and terraform targets: each case under golden/ holds schemas/ and the
expected/ output, which must also parse (sqlglot, python-hcl2, Python) so a broken golden file fails.

Regenerate after an intended change:  DMD_UPDATE_GOLDEN=1 .venv/bin/pytest tests/infra/test_golden_infra.py
"""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

import hcl2
import pytest
import sqlglot
from infra_ddl import parse_table, view_sql

from dmd.generator.loader import load_model
from dmd.generator.targets.athena import render_athena
from dmd.generator.targets.terraform import render_terraform
from dmd.generator.typemap import record_avro

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "schemas").is_dir())
UPDATE = os.environ.get("DMD_UPDATE_GOLDEN") == "1"
# The header hash covers the generator's own code, so any generator change moves it; the golden
# files hold a placeholder (tests/generator/test_determinism.py tests the hash itself).
HEADER_HASH = re.compile(r"sha256:[0-9a-f]{64}\b")


def rendered(case: str) -> dict[str, str]:
    """The SQL and HCL of a case (python/views.py is left out: ruff would reformat a golden copy;
    test_current_views checks that module against the SQL)."""
    model = load_model(GOLDEN / case / "schemas")
    files = {**render_athena(model), **render_terraform(model)}
    return {
        path: HEADER_HASH.sub("sha256:<hash>", text) for path, text in files.items() if not path.startswith("python/")
    }


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str):
    expected_dir = GOLDEN / case / "expected"
    files = rendered(case)
    if UPDATE:
        for path in expected_dir.rglob("*"):
            if path.is_file() and path.relative_to(expected_dir).as_posix() not in files:
                path.unlink()
        for rel, text in files.items():
            (expected_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (expected_dir / rel).write_text(text)
    on_disk = {p.relative_to(expected_dir).as_posix() for p in expected_dir.rglob("*") if p.is_file()}
    assert on_disk == set(files), (
        "files differ; regenerate: DMD_UPDATE_GOLDEN=1 pytest tests/infra/test_golden_infra.py"
    )
    for rel, text in files.items():
        want = (expected_dir / rel).read_text()
        if want != text:
            diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True), rel, rel + " (rendered)"))
            pytest.fail(f"{rel} differs; regenerate: DMD_UPDATE_GOLDEN=1 pytest {Path(__file__).name}\n{diff}")


@pytest.mark.parametrize("case", CASES)
def test_golden_output_parses(case: str):
    expected = GOLDEN / case / "expected"
    for path in (expected / "athena").glob("*/*.sql"):
        if path.parent.name == "views":
            assert sqlglot.parse_one(view_sql(path), read="athena").kind == "VIEW"
        else:
            assert parse_table(path).columns
    for path in (expected / "terraform").glob("*.tf"):
        with path.open() as f:
            hcl2.load(f)


def test_reserved_words_and_avro_logical_types_in_the_golden_case():
    expected = GOLDEN / "widget" / "expected" / "athena"
    avro = dict(parse_table(expected / "avro" / "widget.sql").columns)
    parquet = dict(parse_table(expected / "parquet" / "widget.sql").columns)
    assert avro["window"] == "struct<start:bigint,end:timestamp,day:date>"
    assert parquet["window"] == "struct<start:timestamp,end:timestamp,day:date>"
    assert "`order` string" in (expected / "avro" / "widget.sql").read_text()
    assert '"order",' in (expected / "views" / "widget_current.sql").read_text()


def test_avro_literal_survives_sql_and_hcl_quoting():
    """Quotes, backslashes and apostrophes in docs: the literal still reads back as the .avsc."""
    schema = record_avro(load_model(GOLDEN / "widget" / "schemas").types[0])
    expected = GOLDEN / "widget" / "expected"
    literal = parse_table(expected / "athena" / "avro" / "widget.sql").serde_properties["avro.schema.literal"]
    assert json.loads(literal) == schema
    with (expected / "terraform" / "glue.tf").open() as f:
        blocks = hcl2.load(f)["resource"]
    tables = {k: v for b in blocks for k, v in b.get('"aws_glue_catalog_table"', {}).items()}
    (serde,) = tables['"widget_avro"']["storage_descriptor"][0]["ser_de_info"]
    assert json.loads(json.loads(serde["parameters"]['"avro.schema.literal"'])) == schema


def test_rendering_is_byte_identical_across_hash_seeds():
    """No set or dict order leaks into the SQL or HCL."""
    import subprocess
    import sys

    script = (
        "import hashlib, sys; from pathlib import Path; from dmd.generator.loader import load_model;"
        "from dmd.generator.targets.athena import render_athena;"
        "from dmd.generator.targets.terraform import render_terraform;"
        "m = load_model(Path(sys.argv[1])); files = {**render_athena(m), **render_terraform(m)};"
        "print(hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest())"
    )
    schemas = str(Path(__file__).resolve().parents[2] / "schemas")
    digests = {
        subprocess.run(
            [sys.executable, "-c", script, schemas],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1
