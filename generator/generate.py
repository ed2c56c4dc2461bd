"""`dmd generate`: schemas -> model -> every target -> generated/, after checking every schema
change against the history of versions the archive holds (history.py, evolution.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from .evolution import EvolutionError, Verdict, classify
from .history import read_history, render_history, retired, source_schema, updated
from .loader import load_model
from .targets import render_all
from .writer import Drift, check, write


def generate(
    schema_dir: Path, out_dir: Path, *, check_only: bool = False, allow_pii_removal: Iterable[str] = ()
) -> tuple[Drift, Verdict]:
    """Write (or, check_only, compare) generated/; raises EvolutionError, writing nothing, when a
    schema change would leave files of the archive unreadable through the generated tables."""
    files, verdict = render_tree(schema_dir, out_dir, allow_pii_removal)
    return (check(files, out_dir) if check_only else write(files, out_dir)), verdict


def render_tree(
    schema_dir: Path, out_dir: Path, allow_pii_removal: Iterable[str] = ()
) -> tuple[dict[str, str], Verdict]:
    """Everything generated/ must hold: the targets' files and the history, with the latter
    read from `out_dir` and extended by the current schemas; raises EvolutionError."""
    model = load_model(schema_dir)
    schemas = {rt.type_name: source_schema(rt, schema_dir) for rt in model.types}
    history = read_history(out_dir)
    verdict = classify(model, schemas, history, allow_pii_removal)
    if verdict.refused:
        raise EvolutionError(verdict)
    model = replace(model, retired=retired(model, history))
    return render_all(model) | render_history(updated(model, schemas, history)), verdict
