"""The committed generated/ tree is exactly what the generator renders from schemas/, and
`dmd generate --check` reports drift (changed, missing, orphaned) with a non-zero exit."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmd.generator.generate import render_tree
from dmd.generator.history import HISTORY
from dmd.generator.targets import TARGETS
from dmd.generator.writer import existing_files
from dmd.tools.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
GENERATED = ROOT / "generated"
REGENERATE = "dmd generate   (then commit generated/)"

RENDERED = render_tree(SCHEMAS, GENERATED)[0]
COMMITTED = existing_files(GENERATED)


@pytest.mark.parametrize("rel", sorted(RENDERED.keys() | COMMITTED))
def test_committed_file_is_what_the_generator_renders(rel):
    path = GENERATED / rel
    assert rel in RENDERED, f"generated/{rel} is orphaned: no schema renders it. Run: {REGENERATE}"
    assert path.exists(), f"generated/{rel} is missing. Run: {REGENERATE}"
    committed = path.read_text(encoding="utf-8")
    if committed != RENDERED[rel]:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                RENDERED[rel].splitlines(keepends=True),
                fromfile=f"generated/{rel} (committed)",
                tofile=f"generated/{rel} (rendered)",
            )
        )
        pytest.fail(f"generated/{rel} is stale. Run: {REGENERATE}\n{diff}")


def test_every_target_contributes():
    assert {rel.split("/")[0] for rel in RENDERED} == {*TARGETS, HISTORY}  # history: not a target, read back


def check(out: Path):
    return CliRunner().invoke(main, ["generate", "--schemas", str(SCHEMAS), "--out", str(out), "--check"])


@pytest.fixture
def copy_of_generated(tmp_path: Path) -> Path:
    out = tmp_path / "generated"
    shutil.copytree(GENERATED, out, ignore=shutil.ignore_patterns("__pycache__"))
    return out


def test_check_passes_on_a_clean_tree(copy_of_generated):
    result = check(copy_of_generated)
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output


def test_check_reports_changed_missing_and_orphaned(copy_of_generated):
    out = copy_of_generated
    (out / "python/sale.py").write_text((out / "python/sale.py").read_text() + "# hand edit\n")
    (out / "avro/event.avsc").unlink()
    (out / "docs/old-notes.md").write_text("left over\n")
    (out / "python/__pycache__").mkdir()
    (out / "python/__pycache__/sale.cpython-311.pyc").write_bytes(b"\0")  # build output is not an orphan

    result = check(out)

    assert result.exit_code == 1
    report = [line for line in result.output.splitlines() if line.split(":")[0] in ("changed", "missing", "orphaned")]
    assert report == [
        "changed:  python/sale.py",
        "missing:  avro/event.avsc",
        "orphaned: docs/old-notes.md",
    ]
    assert "dmd generate" in result.output
    # --check writes nothing
    assert not (out / "avro/event.avsc").exists()
    assert (out / "docs/old-notes.md").exists()


def test_generate_repairs_the_drift_it_reports(copy_of_generated):
    out = copy_of_generated
    (out / "python/sale.py").write_text("stale\n")
    (out / "avro/event.avsc").unlink()
    (out / "docs/old-notes.md").write_text("left over\n")

    result = CliRunner().invoke(main, ["generate", "--schemas", str(SCHEMAS), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert check(out).exit_code == 0
    assert not (out / "docs/old-notes.md").exists()
    assert (out / "python/sale.py").read_text() == RENDERED["python/sale.py"]


def test_check_on_an_empty_folder_lists_every_file_missing(tmp_path):
    result = check(tmp_path / "nothing-yet")
    assert result.exit_code == 1
    missing = sorted(line.split()[1] for line in result.output.splitlines() if line.startswith("missing:"))
    # An empty folder has no history: each type's schema would be its first version.
    assert [m for m in missing if not m.startswith("history/")] == sorted(
        r for r in RENDERED if not r.startswith("history/")
    )
    first_versions = {r.split("/")[1] + "/0001.json" for r in RENDERED if r.startswith("history/")}
    assert {m.removeprefix("history/") for m in missing if m.startswith("history/")} == first_versions
