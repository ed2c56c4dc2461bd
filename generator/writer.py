"""The only code that touches generated/: write the rendered tree, or compare it (drift check)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Files under generated/ that are not rendered and must not be reported as orphans.
IGNORED_PARTS = frozenset({"__pycache__", ".terraform", ".pytest_cache"})


@dataclass(frozen=True)
class Drift:
    changed: tuple[str, ...]
    missing: tuple[str, ...]
    orphaned: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not (self.changed or self.missing or self.orphaned)

    def report(self) -> str:
        lines = [f"changed:  {p}" for p in self.changed]
        lines += [f"missing:  {p}" for p in self.missing]
        lines += [f"orphaned: {p}" for p in self.orphaned]
        return "\n".join(lines)


def existing_files(out_dir: Path) -> set[str]:
    if not out_dir.exists():
        return set()
    return {
        p.relative_to(out_dir).as_posix()
        for p in out_dir.rglob("*")
        if p.is_file() and not IGNORED_PARTS.intersection(p.relative_to(out_dir).parts)
    }


def check(files: dict[str, str], out_dir: Path) -> Drift:
    present = existing_files(out_dir)
    changed = sorted(p for p in files if p in present and (out_dir / p).read_bytes() != files[p].encode())
    missing = sorted(p for p in files if p not in present)
    orphaned = sorted(present - files.keys())
    return Drift(tuple(changed), tuple(missing), tuple(orphaned))


def write(files: dict[str, str], out_dir: Path) -> Drift:
    """Make out_dir hold exactly `files`: write what changed, delete orphans. Returns what it did."""
    drift = check(files, out_dir)
    for rel in (*drift.changed, *drift.missing):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel].encode())
    for rel in drift.orphaned:
        (out_dir / rel).unlink()
    return drift
