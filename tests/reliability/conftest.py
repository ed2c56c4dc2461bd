"""Reliability tests: report what the property and fault tests exercised."""

from __future__ import annotations

import sys


def pytest_terminal_summary(terminalreporter) -> None:
    lines = []
    for module, title in (("test_conservation", "conservation"), ("test_faults", "faults")):
        mod = sys.modules.get(module)
        totals = getattr(mod, "TOTALS", None)
        if totals:
            lines.append(f"{title}: " + ", ".join(f"{k}={v}" for k, v in sorted(totals.items())))
    if lines:
        terminalreporter.section("reliability numbers")
        for line in lines:
            terminalreporter.write_line(line)
