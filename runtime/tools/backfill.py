"""`dmd backfill`: archive a DynamoDB table export, its data files in parallel on all cores.

Each data file is one unit of work (dmd.ingest.backfill.backfill_file) run in a process of its
own; files whose done marker exists are counted from it and not read again, so an interrupted
backfill is resumed by running the same command again.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from functools import cache

from dmd.ingest.backfill import Export, FileResult, Plan, backfill_file, check_plan, open_export
from dmd.ingest.config import Settings
from dmd.ingest.export import DataFile, Summary, relative_key
from dmd.lake import layout
from dmd.lake.storage import Storage, StorageError


@dataclass
class BackfillReport:
    export_id: str
    kind: str
    files: int
    results: list[FileResult] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (data file, why)
    seconds: float = 0.0

    @property
    def items(self) -> int:
        return sum(r.items for r in self.results)

    @property
    def ok(self) -> bool:
        return not self.failed

    def text(self, lake: str) -> str:
        done_before = [r for r in self.results if r.done_before]
        new = [r for r in self.results if not r.done_before]
        items_new = sum(r.items for r in new)
        rate = items_new / self.seconds if self.seconds else 0.0
        archived: dict[str, int] = {}
        for r in self.results:
            for t, n in r.archived.items():
                archived[t] = archived.get(t, 0) + n
        lines = [
            f"{self.items} items in {len(self.results)} of {self.files} data files of export {self.export_id} "
            f"({self.kind}) -> {lake}",
        ]
        if done_before:
            lines.append(f"  ({len(done_before)} data files were archived by an earlier run and not read again)")
        lines += [f"  {t:<14} {n:>8} archived" for t, n in sorted(archived.items())]
        errors = sum(r.errors for r in self.results)
        lines.append(f"  {'errors':<14} {errors:>8} in {sum(r.error_documents for r in self.results)} error documents")
        if self.failed:
            lines.append(f"  {'NOT ARCHIVED':<14} {len(self.failed):>8} data files (rerun to retry), e.g.:")
            lines += [f"    {name}: {why}" for name, why in self.failed[:5]]
        objects, size = sum(r.objects for r in self.results), sum(r.bytes for r in self.results)
        lines.append(f"  {objects} data objects written ({size / 2**20:.1f} MiB)")
        lines.append(f"  {items_new} items in {self.seconds:.1f} s ({rate:,.0f} items/s)")
        return "\n".join(lines)


@dataclass(frozen=True)
class Job:
    """What a worker process needs, all picklable."""

    export: str
    export_endpoint: str | None
    lake: str
    lake_endpoint: str | None
    settings: Settings
    plan: Plan


@cache
def _opened(job: Job) -> tuple[Export, Summary, Storage]:
    from dmd.lake.storage import open_storage

    export = open_export(job.export, job.export_endpoint)
    return export, export.summary(), open_storage(job.lake, job.lake_endpoint)


def _work(job: Job, data_file: DataFile) -> FileResult:
    from dmd.generated import REGISTRY

    export, summary, storage = _opened(job)
    return backfill_file(
        export, summary, data_file, storage=storage, settings=job.settings, registry=REGISTRY, plan=job.plan
    )


def backfill(
    job: Job,
    lake_storage: Storage,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] = lambda items: None,
) -> BackfillReport:
    """Archive every data file of the export not archived yet; `workers` processes (default:
    one per core; 1: in this process). `progress` is called with each finished file's items."""
    export, summary, _ = _opened(job)
    files = export.files()
    context = summary.context
    check_plan(lake_storage, job.settings.state_prefix, context.export_id, job.plan)
    report = BackfillReport(context.export_id, context.kind, len(files))
    done_prefix = layout.folder(layout.backfill_done_key(job.settings.state_prefix, context.export_id, "x"))
    done = set(lake_storage.list(done_prefix))
    todo = []
    for df in files:
        key = layout.backfill_done_key(job.settings.state_prefix, context.export_id, relative_key(df.key))
        if key in done:
            try:
                report.results.append(FileResult.from_json(lake_storage.get(key)))
                progress(df.items)
                continue
            except (StorageError, ValueError, TypeError):
                pass
        todo.append(df)
    workers = workers or os.cpu_count() or 1
    start = time.perf_counter()
    if workers == 1 or len(todo) <= 1:
        for df in todo:
            _collect(report, df, lambda df=df: _work(job, df), progress)
    else:
        # Forked (start-up in milliseconds, modules shared); each worker opens its own S3
        # connections rather than use the ones this process opened (the cache is cleared first).
        fork = multiprocessing.get_context("fork")
        _preload(job.plan.format)
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=fork, initializer=_opened.cache_clear) as pool:
            running: dict[Future[FileResult], DataFile] = {pool.submit(_work, job, df): df for df in todo}
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    df = running.pop(future)
                    _collect(report, df, future.result, progress)
    report.seconds = time.perf_counter() - start
    return report


def _preload(fmt: str) -> None:
    """Import what every worker needs before forking them: each then shares it instead of
    importing it again (pyarrow alone costs ~0.5 s of CPU per process)."""
    from dmd.generated import REGISTRY  # noqa: F401
    from dmd.lake import encode

    if fmt == "parquet":
        encode.arrow_memory()  # the memory pool is chosen before Arrow's first allocation
        import pyarrow.parquet  # noqa: F401


def _collect(
    report: BackfillReport, df: DataFile, result: Callable[[], FileResult], progress: Callable[[int], None]
) -> None:
    try:
        r = result()
    except Exception as e:  # a storage failure, an unreadable gzip: this file only; a rerun retries it
        report.failed.append((relative_key(df.key), f"{type(e).__name__}: {e}"[:300]))
        progress(df.items)
        return
    report.results.append(r)
    progress(r.items)


def describe(job: Job) -> tuple[Summary, list[DataFile]]:
    """The export's summary and data files (what the progress bar needs up front)."""
    export, summary, _ = _opened(job)
    return summary, export.files()
