"""Malformed schema files are rejected with `file:JSON-pointer: reason`, every fault at once.

Each case is a folder under cases/malformed/: `schemas/` (a valid schema broken in one way, or
two files) and `expected.txt` (the exact fault lines, in the order the loader reports them).
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmd.generator.loader import GENERATED_MODULE_NAMES, SchemaError, load_model
from dmd.tools.cli import main

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).parent / "cases" / "malformed"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if p.is_dir())


def faults_of(schema_dir: Path) -> list[str]:
    with pytest.raises(SchemaError) as err:
        load_model(schema_dir)
    return err.value.faults


def expected(case: str) -> list[str]:
    return (CASES / case / "expected.txt").read_text(encoding="utf-8").splitlines()


def test_there_are_enough_cases():
    assert len(CASE_NAMES) >= 12


@pytest.mark.parametrize("case", CASE_NAMES)
def test_malformed_schema_is_rejected_with_file_pointer_and_reason(case):
    assert faults_of(CASES / case / "schemas") == expected(case)


def test_the_valid_schemas_load():
    files = sorted(p.stem for p in (ROOT / "schemas").glob("*.json"))  # a schema's type is its file's name
    assert [t.type_name for t in load_model(ROOT / "schemas").types] == files


def test_one_file_with_three_faults_reports_all_three():
    faults = faults_of(CASES / "three-faults" / "schemas")
    assert len(faults) == 3
    assert {f.split(":", 2)[1] for f in faults} == {"/fields/4/dmd/pii", "/fields/5/dmd", "/dmd/partitionDate/paths/0"}


def test_faults_of_every_file_are_reported_together(tmp_path):
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    shutil.copy(CASES / "pii-on-a-long" / "schemas" / "demand.json", schemas / "demand.json")
    shutil.copy(CASES / "union-of-three" / "schemas" / "sale.json", schemas / "sale.json")
    assert faults_of(schemas) == expected("pii-on-a-long") + expected("union-of-three")


def test_cli_prints_the_faults_and_exits_2():
    result = CliRunner().invoke(main, ["generate", "--schemas", str(CASES / "three-faults" / "schemas"), "--check"])
    assert result.exit_code == 2
    assert result.output.splitlines() == expected("three-faults")


def test_an_empty_folder_is_an_error(tmp_path):
    (tmp_path / "schemas").mkdir()
    assert faults_of(tmp_path / "schemas") == [f"{tmp_path / 'schemas'}:: no schema files (*.json) found"]


def module_level_names(source: str) -> set[str]:
    """Names a module binds at its top level (also under `if TYPE_CHECKING:`)."""
    names: set[str] = set()
    body = list(ast.parse(source).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.If):
            body += node.body
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.add(target.id)
    return names


def test_reserved_names_are_every_name_a_generated_module_binds():
    """A record class may not shadow these; the loader's list must follow the template."""
    for path in sorted((ROOT / "generated" / "python").glob("*.py")):
        if not (ROOT / "schemas" / f"{path.stem}.json").exists():  # registry, views: not record modules
            continue
        source = path.read_text()
        classes = {n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)}
        # named after a class
        derived = re.compile(r"_(decode|fast|avro|columns|NULL|EMPTY|write)_\w+|_\w+_(SYMBOLS|AVRO_INDEX)")
        own = {n for n in module_level_names(source) - classes if not derived.fullmatch(n)}
        assert own == GENERATED_MODULE_NAMES, path.name
