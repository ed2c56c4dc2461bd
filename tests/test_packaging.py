"""The project installs as declared: every folder of templates is a declared package (setuptools
would otherwise warn about each, and a non-editable install would leave it out)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_template_folder_is_a_declared_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    folders = {
        "dmd.templates." + p.relative_to(ROOT / "templates").as_posix().replace("/", ".")
        for p in (ROOT / "templates").rglob("*")
        if p.is_dir() and "__pycache__" not in p.parts
    }
    assert folders <= declared, sorted(folders - declared)
    for package, folder in config["package-dir"].items():
        assert (ROOT / folder).is_dir(), package
