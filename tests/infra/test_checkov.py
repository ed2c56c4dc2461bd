"""checkov scans generated/terraform through .ci/checkov (what CI runs): no failed check except
those in .ci/checkov-skips.txt, each with its reason, and each still needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from infra_ddl import ROOT

SCRIPT = ROOT / ".ci" / "checkov"
SKIPS = ROOT / ".ci" / "checkov-skips.txt"


def checkov_binary() -> str | None:
    """checkov where .ci/checkov would find it, without installing it."""
    if os.environ.get("CHECKOV"):
        return os.environ["CHECKOV"]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    venv = Path(os.environ.get("CHECKOV_VENV") or cache / "dmd-pipeline" / "checkov-venv")
    if (venv / "bin" / "checkov").exists():
        return str(venv / "bin" / "checkov")
    return shutil.which("checkov")


CHECKOV = checkov_binary()
needs_checkov = pytest.mark.skipif(CHECKOV is None, reason="checkov is not installed (.ci/checkov installs it)")


def skips() -> dict[str, str]:
    out = {}
    for line in SKIPS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            check, _, reason = line.partition(" ")
            out[check] = reason.strip()
    return out


def run(*args: str, script: bool = True) -> dict:
    command = [str(SCRIPT), *args] if script else [CHECKOV, *args]
    env = {**os.environ, "CHECKOV": CHECKOV or ""}
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def test_every_skip_has_a_reason():
    assert skips()
    for check, reason in skips().items():
        assert check.startswith(("CKV_", "CKV2_")), check
        assert len(reason.split()) >= 8, f"{check}: give a real reason"


@needs_checkov
def test_checkov_passes_with_only_the_listed_skips():
    summary = run("--output", "json")["summary"]
    assert summary["failed"] == 0
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0


@needs_checkov
def test_every_listed_skip_is_still_needed():
    report = run(
        "--directory",
        "generated/terraform",
        "--framework",
        "terraform",
        "--skip-download",
        "--check",
        ",".join(skips()),
        "--output",
        "json",
        "--quiet",
        script=False,
    )
    failing = {c["check_id"] for c in report["results"]["failed_checks"]}
    assert set(skips()) <= failing, f"no longer failing, drop from {SKIPS.name}: {set(skips()) - failing}"
