"""`dmd package` builds a zip that runs on its own: unzipped into a fresh folder, the handler
runs from there with only that folder and boto3 (which Lambda provides) on sys.path."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dmd.generator.deploy import ARCHITECTURES, DEFAULT_ARCHITECTURE, DEFAULT_PYTHON
from dmd.tools.package import TARGET_FILE, build, local_python

pytestmark = pytest.mark.slow  # pip installs the wheels (from the local mirror): ~30-60 s

# What Lambda's Python runtime provides besides the standard library.
LAMBDA_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")

RUN_HANDLER = """
import json, sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import dmd.ingest.handler as h
result = h.handler(json.load(open(sys.argv[3])))
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"pyarrow", "fastavro", "jinja2", "jsonschema", "click"})
from importlib.util import find_spec
print(json.dumps({"result": result, "heavy": heavy, "orjson": find_spec("orjson").origin,
                  "pyarrow": find_spec("pyarrow").origin, "dmd": h.__file__}))
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "lambda.zip"
    result = build(out, local_python())  # runnable here, so the handler can be run from it
    folder = tmp_path_factory.mktemp("task")
    with zipfile.ZipFile(out) as z:
        z.extractall(folder)
    return result, folder


@pytest.fixture(scope="module")
def lambda_provided(tmp_path_factory):
    """A folder holding only what Lambda's runtime provides: boto3 and its dependencies."""
    import boto3

    site = Path(boto3.__file__).parents[1]
    folder = tmp_path_factory.mktemp("lambda-runtime")
    for name in LAMBDA_PROVIDED:
        if (site / name).exists():
            (folder / name).symlink_to(site / name)
    return folder


def test_sizes_within_targets_and_nothing_unneeded(package):
    result, folder = package
    assert result.zipped_bytes <= 50 * 2**20
    assert result.unzipped_bytes <= 150 * 2**20
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    tops = {n.split("/")[0] for n in names}
    for absent in ("avro", "boto3", "botocore", "jinja2", "jsonschema", "click", "duckdb", "datafusion"):
        assert absent not in tops
    assert not any("/tests/" in n or n.endswith((".h", ".pyx", ".pxd")) for n in names)
    assert not any("flight" in n or "substrait.py" in n for n in names)
    assert "dmd/ingest/handler.py" in names and any(n.startswith("dmd/generated/") for n in names)
    assert not any(n.startswith(("dmd/generator/", "dmd/templates/", "dmd/tools/")) for n in names)


@pytest.mark.parametrize("fmt", ["parquet", "avro"])
def test_handler_runs_from_the_unzipped_package(package, lambda_provided, s3, moto_server, project_root, tmp_path, fmt):
    _, folder = package
    event = project_root / "tests" / "events" / "kinesis-event.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "DMD_"))}
    env |= {"DMD_BUCKET": "dmd-test", "DMD_S3_ENDPOINT": moto_server.url, "DMD_FORMAT": fmt}
    out = subprocess.run(
        [sys.executable, "-S", "-c", RUN_HANDLER, str(folder), str(lambda_provided), str(event)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["result"] == {"batchItemFailures": []}
    for module in ("orjson", "pyarrow", "dmd"):
        assert report[module].startswith(str(folder)), report
    assert report["heavy"] == (["pyarrow"] if fmt == "parquet" else [])

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="dmd-test").get("Contents", [])]
    data = [k for k in keys if k.endswith(f".{fmt}")]
    assert data, keys
    body = s3.get_object(Bucket="dmd-test", Key=data[0])["Body"].read()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(io.BytesIO(body)).num_rows >= 1
    else:
        import fastavro

        assert len(list(fastavro.reader(io.BytesIO(body)))) >= 1


ELF_MACHINES = {"x86_64": 62, "arm64": 183}  # e_machine of EM_X86_64 and EM_AARCH64


def _elf_machine(data: bytes) -> int:
    return int.from_bytes(data[18:20], "little")


@pytest.mark.parametrize(
    ("python", "arch"),
    sorted({(DEFAULT_PYTHON, DEFAULT_ARCHITECTURE), (DEFAULT_PYTHON, "arm64")}),
)
def test_a_package_holds_wheels_of_its_target_and_records_it(tmp_path, python, arch):
    """The Terraform default (and arm64): native libraries for that Python and instruction set,
    the target recorded, and .pyc files only where this interpreter could make them."""
    result = build(tmp_path / "lambda.zip", python, arch)
    tag = "cpython-" + python.replace(".", "")
    with zipfile.ZipFile(result.path) as z:
        names = z.namelist()
        target = json.loads(z.read(TARGET_FILE))
        extensions = [n for n in names if n.endswith(".so") and "cpython-" in n]
        assert extensions and all(tag in n for n in extensions), extensions[:3]
        machines = {_elf_machine(z.read(n)) for n in extensions}
    assert machines == {ELF_MACHINES[arch]}
    assert target == {"python": python, "architecture": arch, "machine": ARCHITECTURES[arch][1]}
    assert any(n.endswith(".pyc") for n in names) == (python == local_python()) == result.compiled


def test_the_handler_refuses_a_package_built_for_another_runtime(tmp_path, monkeypatch):
    monkeypatch.setenv("DMD_BUCKET", "dmd-test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from dmd.ingest import handler

    target = tmp_path / "lambda_target.json"
    other = "3.99"
    target.write_text(json.dumps({"python": other, "architecture": "arm64", "machine": "aarch64"}))
    with pytest.raises(handler.WrongRuntime, match=r"built for python3\.99 on arm64.*--python 3\.99 --arch arm64"):
        handler.check_target(target)
    import platform

    running = {"python": local_python(), "architecture": "x", "machine": platform.machine()}
    target.write_text(json.dumps(running))
    handler.check_target(target)  # the running interpreter: accepted
