"""`dmd generate`: schemas -> model -> every target -> generated/."""

from __future__ import annotations

from pathlib import Path

from .loader import load_model
from .targets import render_all
from .writer import Drift, check, write


def generate(schema_dir: Path, out_dir: Path, *, check_only: bool = False) -> Drift:
    files = render_all(load_model(schema_dir))
    return check(files, out_dir) if check_only else write(files, out_dir)
