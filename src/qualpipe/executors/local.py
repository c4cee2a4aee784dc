"""The ``local`` executor: this machine, streaming, optionally several processes.

With one worker, batches run in this process one at a time, so memory holds one input
batch and its outputs. With ``workers > 1`` a process pool runs them; at most
``2 * workers`` batches are in flight, which keeps memory bounded however large the
input is.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from qualpipe.executors.base import (
    BatchJob,
    Executor,
    PartResults,
    merge_parts,
    process_pool,
    run_one_batch,
)
from qualpipe.store import DatasetReader, parquet_file

_JOB: BatchJob | None = None


def _init_worker(job: BatchJob) -> None:
    global _JOB
    _JOB = job


def _worker_batch(batch: Any, file_index: int, batch_index: int) -> PartResults:
    assert _JOB is not None
    return run_one_batch(_JOB, batch, file_index, batch_index)


def iter_indexed_batches(reader: DatasetReader, batch_size: int) -> Any:
    """Yield (file index, batch index, batch) in a deterministic order."""
    for fi, path in enumerate(reader.files):
        for bi, batch in enumerate(parquet_file(path).iter_batches(batch_size=batch_size)):
            yield fi, bi, batch


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, workers: int = 1, **_: Any) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "workers": self.workers}

    def processes(self) -> int:
        return self.workers

    def run_batches(
        self, job: BatchJob, reader: DatasetReader, progress: Callable[[int], None]
    ) -> PartResults:
        results: PartResults = {}
        batches = iter_indexed_batches(reader, job.batch_size)
        if self.workers == 1:
            for fi, bi, batch in batches:
                merge_parts(results, run_one_batch(job, batch, fi, bi))
                progress(batch.num_rows)
            return results
        with process_pool(self.workers, _init_worker, (job,)) as pool:
            pending: dict[Future[PartResults], int] = {}
            try:
                for fi, bi, batch in batches:
                    if len(pending) >= 2 * self.workers:
                        done, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for fut in done:
                            merge_parts(results, fut.result())
                            progress(pending.pop(fut))
                    pending[pool.submit(_worker_batch, batch, fi, bi)] = batch.num_rows
                for fut in list(pending):
                    merge_parts(results, fut.result())
                    progress(pending.pop(fut))
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
        return results
