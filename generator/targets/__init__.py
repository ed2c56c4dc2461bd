"""The table of targets: each a pure function from the model to {path under generated/: text}."""

from __future__ import annotations

from collections.abc import Callable

from ..model import Model
from .athena import render_athena
from .avro import render_avro
from .docs import render_docs
from .python import render_python
from .terraform import render_terraform

Renderer = Callable[[Model], dict[str, str]]

TARGETS: dict[str, Renderer] = {
    "python": render_python,
    "avro": render_avro,
    "docs": render_docs,
    "athena": render_athena,
    "terraform": render_terraform,
}


def render_all(model: Model) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, render in TARGETS.items():
        for path, text in render(model).items():
            if path in out:
                raise ValueError(f"target {name!r} renders {path}, which another target rendered already")
            out[path] = text
    return dict(sorted(out.items()))
