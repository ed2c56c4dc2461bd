"""`dmd package`: the Lambda deployment zip for a Lambda Python runtime and architecture
(dmd.generator.deploy: the same defaults as the generated Terraform).

It holds the runtime and the generated record code under `dmd/`, and the runtime's
dependencies as manylinux wheels for the target Python, installed with pip. It leaves out what
the function never imports: boto3/botocore (Lambda provides them), the generator, templates,
avro, jinja2, jsonschema, click and duckdb, the CLI, tests, C/C++ headers and Cython sources, and the
Arrow components the runtime does not use (Flight, the S3/GCS/Azure/HDFS filesystems, ORC,
Substrait's Python bindings, Parquet encryption, C++ test modules). The libraries that every
pyarrow extension links against stay, since the dynamic loader needs them.

Python files are compiled to `.pyc` (unchecked-hash, so valid whatever the file times) when the
target Python is this interpreter's: Lambda's /var/task is read-only, so without them every cold
start compiles pyarrow's modules again. For another target version they cannot be made here, and
the build says so.

The zip records its target in `dmd/ingest/lambda_target.json`; the handler refuses, at cold
start and with a message naming both, to run on another Python or instruction set.
"""

from __future__ import annotations

import compileall
import dataclasses
import fnmatch
import importlib
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from dmd.generator.deploy import ARCHITECTURES, DEFAULT_ARCHITECTURE, DEFAULT_PYTHON, PYTHON_VERSIONS

DISTRIBUTION = "dmd-pipeline"
# Lambda provides boto3; the rest serve the generator, the CLI or local queries only.
NOT_DEPLOYED = frozenset({"avro", "boto3", "botocore", "click", "jinja2", "jsonschema", "duckdb", "datafusion"})
TARGET_FILE = "dmd/ingest/lambda_target.json"
# The dmd packages the function imports, shipped whole; dmd.tools, dmd.generator and
# dmd.templates serve developers only and never ship.
DEPLOYED_PACKAGES = ("dmd.ingest", "dmd.support", "dmd.lake", "dmd.generated")

# Paths (relative to the package root, fnmatch patterns) the function never loads.
PRUNE = (
    "bin/*",
    "*/__pycache__/*",
    "*/tests/*",
    "*/include/*",
    "*/includes/*",
    "pyarrow/src/*",
    "*.pyx",
    "*.pxd",
    "*.pxi",
    "*.h",
    "*.hpp",
    "*.cc",
    "*.cpp",
    "pyarrow/_flight.*",
    "pyarrow/flight.py",
    "pyarrow/libarrow_flight.so*",
    "pyarrow/libarrow_python_flight.so*",
    "pyarrow/_s3fs.*",
    "pyarrow/_gcsfs.*",
    "pyarrow/_azurefs.*",
    "pyarrow/_hdfs.*",
    "pyarrow/libarrow_s3.so*",
    "pyarrow/_orc.*",
    "pyarrow/_dataset_orc.*",
    "pyarrow/orc.py",
    "pyarrow/_substrait.*",
    "pyarrow/substrait.py",
    "pyarrow/_parquet_encryption.*",
    "pyarrow/_dataset_parquet_encryption.*",
    "pyarrow/parquet/encryption.py",
    "pyarrow/libarrow_python_parquet_encryption.so*",
    "pyarrow/_pyarrow_cpp_tests.*",
    "pyarrow/_cuda.*",
    "pyarrow/cuda.py",
    "pyarrow/_gandiva.*",
    "pyarrow/gandiva.py",
    "pyarrow/libgandiva.so*",
    "pyarrow/benchmark.py",
    # The extensions link libarrow_python.so.<N> (the SONAME); the wheel also carries two
    # copies under other names (symlinks before packaging).
    "pyarrow/libarrow_python.so",
    "pyarrow/libarrow_python.so.*.*",
    "*.dist-info/RECORD",
)


@dataclass(frozen=True)
class PackageResult:
    path: Path
    zipped_bytes: int
    unzipped_bytes: int
    files: int
    python: str = ""
    architecture: str = ""
    compiled: bool = False  # .pyc files included


def requirements() -> list[str]:
    """The runtime's requirement strings (with markers), from the installed distribution."""
    out = []
    for req in metadata.requires(DISTRIBUTION) or []:
        if "extra ==" in req:
            continue
        name = req.split(";")[0].strip()
        for sep in "<>=!~[ ":
            name = name.split(sep)[0]
        if name.lower().replace("_", "-") not in NOT_DEPLOYED:
            out.append(req)
    return out


def pip_install(target: Path, python_version: str, architecture: str, reqs: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(target)]
    for p in ARCHITECTURES[architecture][0]:
        cmd += ["--platform", p]
    cmd += ["--python-version", python_version, "--implementation", "cp", "--only-binary=:all:", *reqs]
    subprocess.run(cmd, check=True)


def copy_dmd(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in DEPLOYED_PACKAGES:
        package = importlib.import_module(name)
        shutil.copytree(Path(package.__file__).parent, target.joinpath(*name.split(".")), ignore=ignore)


def prune(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):  # children before their folders
        rel = path.relative_to(root).as_posix()
        if path.is_file() or path.is_symlink():
            if any(fnmatch.fnmatch(rel, pattern) for pattern in PRUNE):
                path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def write_zip(root: Path, out: Path) -> PackageResult:
    """A reproducible zip: sorted entries, fixed times, no folders entries."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    unzipped = files = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if ".so" in path.name else 0o644) << 16
            data = path.read_bytes()
            z.writestr(info, data, compresslevel=9)
            unzipped += len(data)
            files += 1
    os.replace(tmp, out)
    return PackageResult(out, out.stat().st_size, unzipped, files)


def local_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def build(out: Path, python_version: str = DEFAULT_PYTHON, architecture: str = DEFAULT_ARCHITECTURE) -> PackageResult:
    if python_version not in PYTHON_VERSIONS:
        raise ValueError(f"Python {python_version}: Lambda runtimes supported are {', '.join(PYTHON_VERSIONS)}")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {architecture!r}: one of {', '.join(ARCHITECTURES)}")
    compiled = python_version == local_python()
    with tempfile.TemporaryDirectory(prefix="dmd-package-") as tmp:
        root = Path(tmp) / "package"
        pip_install(root, python_version, architecture, requirements())
        copy_dmd(root)
        prune(root)
        target = {"python": python_version, "architecture": architecture, "machine": ARCHITECTURES[architecture][1]}
        (root / TARGET_FILE).write_text(json.dumps(target, sort_keys=True) + "\n")
        if compiled:
            compileall.compile_dir(
                root,
                quiet=2,
                legacy=False,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
        return dataclasses.replace(
            write_zip(root, out), python=python_version, architecture=architecture, compiled=compiled
        )
