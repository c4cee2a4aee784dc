"""The executor interface.

The runner hands an executor one *batch job* per batch-wise stage: the stage type, its
resolved parameters, the side inputs, and the folders its outputs go to. The executor
reads the streamed input (a :class:`~qualpipe.store.DatasetReader`) in batches, calls
:func:`run_one_batch` for each, wherever it likes (this process, a process pool, a
cluster), and returns the part files written. Part files are named by (input file index,
batch index within that file), so every executor produces byte-identical datasets.
Whole-dataset stages always run in the driver process.
"""

from __future__ import annotations

import abc
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from qualpipe.datasets import DatasetKind
from qualpipe.decisions import Decision
from qualpipe.errors import DatasetError
from qualpipe.fingerprint import canonical_json, sha256_text
from qualpipe.stage import BatchContext, StageType
from qualpipe.store import DatasetReader, part_name, write_part

#: Output name -> {part file name: rows}
PartResults = dict[str, dict[str, int]]


@dataclass
class BatchJob:
    """Everything needed to process any batch of a batch-wise stage (picklable)."""

    stage_id: str
    stage_type: StageType
    params: dict[str, Any]
    outputs: dict[str, DatasetKind]
    output_dirs: dict[str, Path]
    who: str
    batch_size: int
    side: dict[str, pa.Table] = field(default_factory=dict)
    components: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: effective decisions the stage type reads (frozen dataclasses: picklable)
    decisions: list[Decision] = field(default_factory=list)

    @property
    def key(self) -> str:
        return sha256_text(self.stage_id + canonical_json(self.params))


def exit_with_parent(interval: float = 0.2, parent: int | None = None) -> None:
    """In a worker process: exit as soon as the process that started it is gone.

    A pool's workers wait on a pipe their parent shares with them; when the parent is
    killed (``kill -9``, out of memory) nothing tells them, and they stay behind holding
    memory and, in anonymise, transcript text. ``parent`` is the pid of the process that
    started this one, as that process saw it: a spawned worker starts slowly (a second
    of imports), and its parent may be killed before this runs, when ``os.getppid()``
    already names the process that adopted it. :func:`process_pool` starts it in every
    worker.
    """
    expected = os.getppid() if parent is None else parent
    if os.getppid() != expected:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == expected:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _start_worker(
    parent: int, initializer: Callable[..., None] | None, args: tuple[Any, ...]
) -> None:
    exit_with_parent(parent=parent)
    if initializer is not None:
        initializer(*args)


def process_pool(
    workers: int, initializer: Callable[..., None] | None = None, args: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """``workers`` spawned processes, each set up by ``initializer(*args)`` and ending with
    the process that started them (the pools of the local executor, anonymise, export)."""
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, args),
    )


def picklable(*objects: Any) -> bool:
    """Can ``objects`` be sent to a worker process? (If not, the work stays here.)"""
    try:
        pickle.dumps(objects)
    except Exception:  # any failure means: run in this process
        return False
    return True


# Per-process cache of what a stage's setup() built (models, compiled patterns).
_STATE: dict[str, Any] = {}


def job_state(job: BatchJob) -> Any:
    if job.stage_type.setup is None:
        return None
    if job.key not in _STATE:
        _STATE.clear()  # one stage at a time per worker: free the previous stage's state
        _STATE[job.key] = job.stage_type.setup(job.params)
    return _STATE[job.key]


def run_one_batch(
    job: BatchJob, batch: pa.RecordBatch, file_index: int, batch_index: int
) -> PartResults:
    """Process one input batch and write its output parts; safe to call in any process."""
    assert job.stage_type.process_batch is not None
    ctx = BatchContext(
        stage_id=job.stage_id,
        params=job.params,
        side=job.side,
        state=job_state(job),
        batch_index=batch_index,
        components=job.components,
        decisions=job.decisions,
    )
    result = job.stage_type.process_batch(batch, ctx)
    if not isinstance(result, Mapping):
        raise DatasetError(
            f"{job.who}: process_batch of stage type {job.stage_type.name!r} returned "
            f"{type(result).__name__}; it must return {{output name: table}}"
        )
    parts: PartResults = {}
    for name, data in result.items():
        if name not in job.outputs:
            raise DatasetError(
                f"{job.who} returned output {name!r}, which stage type "
                f"{job.stage_type.name!r} does not declare (declared: {', '.join(job.outputs)})"
            )
        if data is None:
            continue
        if not isinstance(data, pa.Table | pa.RecordBatch):
            raise DatasetError(
                f"{job.who} returned {type(data).__name__} for output {name!r}; "
                "return a pyarrow Table or RecordBatch"
            )
        if data.num_rows == 0:
            continue
        fname = part_name(file_index, batch_index)
        rows = write_part(job.output_dirs[name], job.outputs[name], data, fname, job.who)
        parts[name] = {fname: rows}
    return parts


def merge_parts(total: PartResults, new: PartResults) -> None:
    for name, parts in new.items():
        total.setdefault(name, {}).update(parts)


class Executor(abc.ABC):
    """Runs the batches of batch-wise stages."""

    name: str = "executor"

    @abc.abstractmethod
    def run_batches(
        self, job: BatchJob, reader: DatasetReader, progress: Callable[[int], None]
    ) -> PartResults:
        """Process every batch of ``reader``; return the part files written per output.

        Call ``progress(rows)`` as input rows are done. Raise on the first failure;
        the runner then discards everything the stage wrote.
        """

    def describe(self) -> dict[str, Any]:
        """Settings recorded in stage manifests (not part of the fingerprint)."""
        return {"name": self.name}

    def processes(self) -> int:
        """Processes a whole-dataset stage may use on this machine (``ctx.workers``)."""
        return 1

    def close(self) -> None:  # noqa: B027 - optional hook for subclasses
        """Release workers and other resources."""


ExecutorFactory = Callable[..., Executor]
