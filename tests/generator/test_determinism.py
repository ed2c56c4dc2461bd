"""Generation is byte-for-byte reproducible, and every generated file says where it came from."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
# `dmd` as its console script runs it, in a fresh interpreter of this environment
DMD = [sys.executable, "-c", "from dmd.tools.cli import main; main()"]
SHA256 = re.compile(r"sha256:([0-9a-f]{64})\b")
TIMESTAMPISH = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\b\d{10}\b")


def generate(schemas: Path, out: Path, hashseed: str) -> dict[str, bytes]:
    # The history is state the generator reads (earlier schema versions, docs/schema-evolution.md):
    # a fresh checkout has the committed one.
    shutil.copytree(ROOT / "generated" / "history", out / "history")
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    subprocess.run(
        [*DMD, "generate", "--schemas", str(schemas), "--out", str(out)],
        check=True,
        env=env,
        capture_output=True,
        cwd=out.parent,
    )
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict[str, bytes]:
    return generate(SCHEMAS, tmp_path_factory.mktemp("seed0") / "generated", "0")


def test_two_runs_under_different_hash_seeds_are_byte_identical(tree, tmp_path):
    other = generate(SCHEMAS, tmp_path / "generated", "4242")
    assert sorted(other) == sorted(tree)
    for rel in tree:
        assert other[rel] == tree[rel], f"{rel} differs between PYTHONHASHSEED=0 and 4242"


def test_the_committed_tree_is_what_a_fresh_process_generates(tree):
    committed = {
        p.relative_to(ROOT / "generated").as_posix(): p.read_bytes()
        for p in sorted((ROOT / "generated").rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert committed == tree


def header_lines(rel: str, text: str) -> list[str]:
    lines = text.splitlines()[:2]
    assert lines, f"{rel} is empty"
    return lines


def sources_of(rel: str) -> list[str]:
    stem = rel.rsplit("/", 1)[-1].split(".")[0]
    if (SCHEMAS / f"{stem}.json").exists():  # a per-type file
        return [f"schemas/{stem}.json"]
    return sorted(f"schemas/{p.name}" for p in SCHEMAS.glob("*.json"))  # made from every schema


def test_every_python_and_markdown_file_starts_with_the_do_not_edit_header(tree):
    checked = 0
    for rel, data in tree.items():
        if not rel.endswith((".py", ".md")):
            continue
        text = data.decode()
        first, second = header_lines(rel, text)
        assert "DO NOT EDIT" in first, rel
        assert "dmd generate" in first, rel
        for source in sources_of(rel):
            assert source in first, f"{rel}: header does not name {source}"
        assert SHA256.search(second), f"{rel}: no sha256 in the header"
        assert first.startswith("# " if rel.endswith(".py") else "<!-- "), rel
        checked += 1
    # at least: one module per type, the registry, the data dictionary
    assert checked >= len(list(SCHEMAS.glob("*.json"))) + 2


def test_headers_carry_no_timestamp_and_no_tool_version(tree):
    tool_version = version("dmd-pipeline")
    for rel, data in tree.items():
        if rel.endswith(".avsc"):
            continue  # plain Avro: its header is the manifest
        # the two header lines; JSON has no comments, so the whole manifest is its header
        head = data.decode() if rel.endswith(".json") else "\n".join(data.decode().splitlines()[:2])
        head = SHA256.sub("sha256:<hash>", head)
        assert not TIMESTAMPISH.search(head), f"{rel}: header holds a timestamp: {head}"
        assert tool_version not in head, f"{rel}: header holds the tool version {tool_version}"


def test_avro_manifest_names_each_schema_with_its_hash(tree):
    manifest = json.loads(tree["avro/manifest.json"])
    assert "DO NOT EDIT" in manifest["notice"]
    avsc = sorted(rel.removeprefix("avro/") for rel in tree if rel.endswith(".avsc"))
    assert sorted(manifest["files"]) == avsc
    for name, entry in manifest["files"].items():
        assert entry["source"] == f"schemas/{name.removesuffix('.avsc')}.json"
        assert SHA256.fullmatch("sha256:" + entry["sha256"])


def test_header_hash_follows_the_schema_bytes(tree, tmp_path):
    """Only files made from a changed schema get a new hash (and nothing else moves)."""
    schemas = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, schemas)
    sale = schemas / "sale.json"
    sale.write_text(sale.read_text() + "\n")  # same schema, different bytes
    other = generate(schemas, tmp_path / "generated", "0")

    changed = sorted(rel for rel in tree if other[rel] != tree[rel])
    assert {"avro/manifest.json", "docs/data-dictionary.md", "python/__init__.py", "python/sale.py"} <= set(changed)
    for rel in changed:
        if not rel.endswith(".json"):
            assert "schemas/sale.json" in sources_of(rel), f"{rel} changed but is not made from sale.json"
            old, new = tree[rel].decode().splitlines(), other[rel].decode().splitlines()
            assert old[1] != new[1] and old[2:] == new[2:], f"{rel}: only the hash line may change"


GENERATOR_MODULE = re.compile(r"\bor (generator/targets/\w+\.py), then regenerate\.")
TEMPLATE = re.compile(r"\btemplates/[\w./-]+\.j2\b")


def test_every_header_names_the_templates_and_generator_module_to_change(tree):
    for rel, data in tree.items():
        if rel.endswith((".avsc", ".json")):
            continue
        second = data.decode().splitlines()[1]
        module = GENERATOR_MODULE.search(second)
        assert module, f"{rel}: header names no generator module: {second}"
        assert (ROOT / module.group(1)).is_file(), f"{rel}: {module.group(1)} does not exist"
        templates = TEMPLATE.findall(second)
        assert templates, f"{rel}: header names no template"
        for name in templates:
            assert (ROOT / name).is_file(), f"{rel}: {name} does not exist"
        # the target that renders the file owns its first template's folder
        assert templates[0].split("/")[1] == module.group(1).removeprefix("generator/targets/").removesuffix(".py")


def test_header_hash_follows_the_generator_code(tmp_path, monkeypatch):
    """Every header's hash covers the generator's own code: one changed generator file changes
    the hash line of every generated file (and the manifest's hashes), and nothing else."""
    from dmd.generator import templating
    from dmd.generator.loader import load_model
    from dmd.generator.targets import render_all

    model = load_model(SCHEMAS)
    before = render_all(model)
    same, changed = tmp_path / "same", tmp_path / "changed"
    for copy in (same, changed):
        shutil.copytree(templating.GENERATOR_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(templating, "GENERATOR_ROOT", same)
    assert render_all(model) == before  # the hash is of the code, not of where it lives

    python_target = changed / "targets" / "python.py"
    python_target.write_text(python_target.read_text() + "\n# a comment changes no output, but it is a new generator\n")
    monkeypatch.setattr(templating, "GENERATOR_ROOT", changed)
    after = render_all(model)

    assert after.keys() == before.keys()
    for rel in before:
        if rel.endswith(".avsc"):
            assert after[rel] == before[rel], f"{rel}: plain Avro has no header; its hash is in the manifest"
            continue
        old, new = before[rel].splitlines(), after[rel].splitlines()
        if rel.endswith(".json"):
            assert old != new, f"{rel}: the manifest's hashes do not cover the generator"
            continue
        assert old[1] != new[1] and SHA256.search(new[1]), f"{rel}: the header hash does not cover the generator"
        assert old[0] == new[0] and old[2:] == new[2:], f"{rel}: only the hash line may change"
