"""The Lambda runtime the archive is deployed to, in one place: the Terraform target takes its
variable defaults and allowed values from here, and `dmd package` the wheels it installs, so the
two defaults can never name different Pythons or instruction sets."""

from __future__ import annotations

PYTHON_VERSIONS = ("3.11", "3.12", "3.13")  # Lambda's Python runtimes this project supports
DEFAULT_PYTHON = "3.12"

# Lambda's architecture names -> the manylinux platform tags of wheels built for it (pyarrow 15+
# publishes manylinux_2_28; Lambda's Python 3.11+ runtimes run Amazon Linux 2023, glibc 2.34) and
# what platform.machine() says inside the function.
ARCHITECTURES = {
    "x86_64": (("manylinux_2_28_x86_64", "manylinux2014_x86_64"), "x86_64"),
    "arm64": (("manylinux_2_28_aarch64", "manylinux2014_aarch64"), "aarch64"),
}
DEFAULT_ARCHITECTURE = "x86_64"


def lambda_runtime(python: str) -> str:
    """Lambda's runtime identifier for a Python version: 3.12 -> python3.12."""
    return f"python{python}"
