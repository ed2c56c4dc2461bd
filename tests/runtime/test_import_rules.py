"""What each run imports, checked in a fresh interpreter: Avro runs never load pyarrow, Parquet
runs never load fastavro, and the runtime never loads the generator's or the CLI's libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

WATCHED = ("pyarrow", "fastavro", "jinja2", "jsonschema", "click", "duckdb")

RUN = """
import json, sys
from pathlib import Path
fmt, event_file = sys.argv[1], sys.argv[2]
import dmd.ingest.handler  # the Lambda cold start
after_import = sorted({m.split(".")[0] for m in sys.modules} & WATCHED)
from dmd.generated import REGISTRY
from dmd.ingest.config import Settings
from dmd.ingest.envelope import decode_event
from dmd.ingest.pipeline import process_batch


class Memory:
    def put(self, key, body, content_type):
        return key


event = json.loads(Path(event_file).read_text())
for codec in CODECS[fmt]:
    result = process_batch(decode_event(event), registry=REGISTRY, settings=Settings(format=fmt, codec=codec),
                           storage=Memory())
    assert result.data and not result.failed, result
print(json.dumps({"after_import": after_import,
                  "after_run": sorted({m.split(".")[0] for m in sys.modules} & WATCHED)}))
"""

CODECS = {"avro": ["deflate", "null", "snappy"], "parquet": ["snappy", "zstd", "none"]}


def run(fmt: str, project_root) -> dict[str, list[str]]:
    code = f"WATCHED = set({WATCHED!r})\nCODECS = {CODECS!r}\n" + RUN
    env = os.environ | {"DMD_BUCKET": "dmd-test", "DMD_FORMAT": fmt, "AWS_DEFAULT_REGION": "us-east-1"}
    event = project_root / "tests" / "events" / "kinesis-event.json"
    out = subprocess.run(
        [sys.executable, "-c", code, fmt, str(event)], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_handler_import_loads_no_encoder_and_no_generator_library(project_root):
    assert run("parquet", project_root)["after_import"] == []


def test_avro_runs_never_import_pyarrow(project_root):
    assert run("avro", project_root)["after_run"] == []


def test_parquet_runs_never_import_fastavro(project_root):
    assert run("parquet", project_root)["after_run"] == ["pyarrow"]


@pytest.mark.parametrize(
    "module",
    ["dmd.ingest.handler", "dmd.ingest.pipeline", "dmd.lake.storage", "dmd.tools.package", "dmd.generated"],
)
def test_runtime_modules_never_import_jinja2_jsonschema_click(module):
    code = (
        f"import sys, {module}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jinja2', 'jsonschema', 'click'}))"
    )
    env = os.environ | {"DMD_BUCKET": "dmd-test", "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Which dmd packages each package may import: the jobs layer, with no cycle between them.
LAYERS = {
    "dmd.support": set(),  # what generated code imports: nothing else of dmd
    "dmd.generated": {"dmd.support"},
    "dmd.lake": {"dmd.support"},
    "dmd.ingest": {"dmd.support", "dmd.lake", "dmd.generated"},
    "dmd.generator": {"dmd.lake", "dmd.support"},
    "dmd.tools": {"dmd.support", "dmd.lake", "dmd.ingest", "dmd.generated", "dmd.generator"},
}


def _dmd_imports(path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {".".join(n.split(".")[:2]) for n in names if n.startswith("dmd.")}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_packages_import_only_the_layers_below_them(package):
    import importlib
    from pathlib import Path

    folder = Path(importlib.import_module(package).__file__).parent
    allowed = LAYERS[package] | {package}
    bad = {
        f"{path.relative_to(folder)} imports {name}"
        for path in folder.rglob("*.py")
        for name in _dmd_imports(path)
        if name not in allowed
    }
    assert not bad, sorted(bad)
