"""The ``ray`` executor: batch-wise stages as Ray tasks over row ranges of Parquet files.

Installed with the ``ray`` extra (``pip install 'qualpipe[ray]'``)::

    qualpipe run pipeline.yaml --executor ray                 # a local Ray on this machine
    qualpipe run pipeline.yaml --executor ray --address auto  # the cluster of `ray start`
    qualpipe run pipeline.yaml --executor ray --address ray://head:10001

Each task reads a contiguous range of batches of one input file with pyarrow (the driver
reads only Parquet footers) and calls :func:`~qualpipe.executors.base.run_one_batch` for
every batch of it, so part files have the same names and bytes as with the ``local``
executor. Batch *b* of a file is rows ``[b * batch_size, (b + 1) * batch_size)``, which is
what ``ParquetFile.iter_batches`` yields. The run store must be reachable from every
worker at the same path (a shared filesystem on a cluster).

Why tasks and not Ray Data: with the same stage on this project's 2-core machine, tasks
over Parquet row ranges ran 1.5-2x faster than ``map_batches``; Ray Data's reader grouped
16 files into 2 uneven blocks, and a pool of model-loading actors can hold every CPU
before the upstream tasks run. Here a stage's tasks are sized so there are at least four
per CPU, at most ``2 x CPUs`` are in flight, and stages run one after another, so no
long-lived worker can starve another stage. Whole-dataset stages run on the driver.

A local Ray started here gets a temporary folder, no dashboard and an object store sized
to fit ``/dev/shm``; a small watchdog process removes every process of that Ray instance
when the driver exits, even when it is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from qualpipe.errors import PipelineError, QualpipeError, StageError
from qualpipe.executors.base import BatchJob, Executor, PartResults, merge_parts, run_one_batch
from qualpipe.store import DatasetReader, parquet_file

log = logging.getLogger("qualpipe.ray")

MISSING_RAY = "executor 'ray' needs ray: pip install 'qualpipe[ray]'"
TASK_OPTIONS = ("num_cpus", "memory", "task_mb", "max_retries")
#: columns naming the document a row comes from (first present wins)
DOC_ID_COLUMNS = ("doc_id", "document_id")
MAX_IDS = 20

# The watchdog: waits until the driver's end of its stdin pipe closes (the driver exited,
# however), then ends every process holding a file in the Ray temporary folder and
# removes the folder. Standard library only, so it starts fast.
_REAPER = r"""
import os, shutil, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
root = os.path.realpath(sys.argv[1])
spare = {os.getpid(), int(sys.argv[2])}
sys.stdin.buffer.read()
def holders():
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in spare:
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith(root + "/"):
                    found.add(int(pid))
                    break
        except OSError:
            continue
    return found
deadline = time.monotonic() + 3
while holders() and time.monotonic() < deadline:
    time.sleep(0.2)
for sig in (signal.SIGTERM, signal.SIGKILL):
    pids = holders()
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    end = time.monotonic() + 3
    while pids and time.monotonic() < end:
        time.sleep(0.1)
        pids = holders()
shutil.rmtree(root, ignore_errors=True)
"""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise PipelineError(MISSING_RAY) from None
    return ray


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)


def parse_bytes(value: int | float | str | None, what: str) -> int | None:
    """``2GiB``, ``512M``, ``1e9`` or a number of bytes -> bytes (None stays None)."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number, unit = float(value), ""
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise PipelineError(
                f"executor 'ray': {what}: {value!r} is not a size (e.g. 2GiB, 512M, 1000000)"
            )
        number, unit = float(m.group(1)), m.group(2).upper()
    scale = 1024 ** "_KMGT".index(unit) if unit else 1
    if number <= 0:
        raise PipelineError(f"executor 'ray': {what} must be positive, got {value!r}")
    return int(number * scale)


@dataclass(frozen=True)
class Task:
    """Batches ``first``..``last`` (exclusive) of input file ``file_index``."""

    file_index: int
    path: str
    first: int
    last: int
    batch_size: int
    rows: int

    @property
    def start_row(self) -> int:
        return self.first * self.batch_size


def plan_tasks(files: list[Path], batch_size: int, task_bytes: int, min_tasks: int) -> list[Task]:
    """Cut the input into tasks of whole batches: about ``task_bytes`` of (uncompressed)
    input each, but at least ``min_tasks`` tasks where there are that many batches, so
    that every CPU gets work until the end."""
    sizes = []
    for path in files:
        meta = pq.ParquetFile(path).metadata
        nbytes = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        sizes.append((int(meta.num_rows), int(nbytes)))
    total = sum(b for _, b in sizes)
    target = max(1, min(task_bytes, total // max(1, min_tasks)))
    tasks = []
    for fi, (path, (rows, nbytes)) in enumerate(zip(files, sizes, strict=True)):
        batches = math.ceil(rows / batch_size)
        if not batches:
            continue
        per_batch = max(1, nbytes / batches)
        step = max(1, int(target // per_batch))
        for first in range(0, batches, step):
            last = min(batches, first + step)
            n = min(rows, last * batch_size) - first * batch_size
            tasks.append(Task(fi, str(path), first, last, batch_size, n))
    return tasks


def read_task_batches(task: Task) -> Any:
    """Yield (batch index, batch) for the task's batches, as ``iter_batches`` cuts them."""
    pf = parquet_file(task.path)
    meta = pf.metadata
    start = task.start_row
    stop = start + task.rows
    groups, offset, group_start = [], 0, None
    for i in range(meta.num_row_groups):
        n = meta.row_group(i).num_rows
        if offset + n > start and offset < stop:
            groups.append(i)
            if group_start is None:
                group_start = offset
        offset += n
    if not groups or group_start is None:
        return
    table = pf.read_row_groups(groups).slice(start - group_start, stop - start)
    for i, bi in enumerate(range(task.first, task.last)):
        part = table.slice(i * task.batch_size, task.batch_size).combine_chunks()
        batch = part.to_batches()[0] if part.num_rows else None
        if batch is not None:
            yield bi, batch


def doc_ids(batch: pa.RecordBatch | pa.Table) -> list[str]:
    """Distinct document ids of a batch, in order (empty if it has no such column)."""
    for col in DOC_ID_COLUMNS:
        if col in batch.schema.names:
            return list(dict.fromkeys(str(v) for v in batch.column(col).to_pylist()))
    return []


def _format_ids(ids: list[str]) -> str:
    if not ids:
        return "no document id column"
    shown = ", ".join(ids[:MAX_IDS])
    more = f", ... ({len(ids)} in all)" if len(ids) > MAX_IDS else ""
    return f"document ids: {shown}{more}"


def run_task(job: BatchJob, task: Task) -> dict[str, Any]:
    """Ray task body: process the task's batches; failures come back as a value."""
    parts: PartResults = {}
    bi, current = task.first, None
    try:
        for bi, batch in read_task_batches(task):
            current = batch
            merge_parts(parts, run_one_batch(job, batch, task.file_index, bi))
            current = None
    except Exception as exc:
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        return {
            "error": f"{type(exc).__name__}: {first}",
            "qualpipe_error": str(exc) if isinstance(exc, QualpipeError) else None,
            "exit_code": getattr(exc, "exit_code", None),
            # a batch that failed, or (while reading) the task's batches
            "where": (
                f"batch {bi} of input file {task.file_index}"
                if current is not None
                else f"reading batches {task.first}-{task.last - 1} of input file {task.file_index}"
            ),
            "doc_ids": doc_ids(current) if current is not None else None,
            "traceback": traceback.format_exc(),
        }
    return {"parts": parts, "rows": task.rows}


class RemoteTraceback(Exception):
    """The traceback of a failed Ray task, shown by ``--debug``."""


class RayExecutor(Executor):
    """Runs batch-wise stages as Ray tasks (see the module docstring)."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        num_cpus: float = 1,
        memory: int | str | None = None,
        task_mb: float = 64,
        max_retries: int = 3,
        in_flight: int | None = None,
        object_store_memory: int | str | None = None,
        stages: Mapping[str, Mapping[str, Any]] | None = None,
        **_: Any,
    ) -> None:
        self._ray = _import_ray()
        if workers is not None and workers < 1:
            raise PipelineError("executor 'ray': workers must be at least 1")
        self.address = None if address in (None, "", "local") else str(address)
        self.workers = workers
        self.defaults = self._task_options(
            {
                "num_cpus": num_cpus,
                "memory": memory,
                "task_mb": task_mb,
                "max_retries": max_retries,
            },
            "executor",
        )
        self.stage_options: dict[str, dict[str, Any]] = {}
        for sid, conf in (stages or {}).items():
            if not isinstance(conf, Mapping):
                raise PipelineError(
                    f"executor 'ray': stages.{sid} must be a mapping of {', '.join(TASK_OPTIONS)}"
                )
            unknown = set(conf) - set(TASK_OPTIONS)
            if unknown:
                raise PipelineError(
                    f"executor 'ray': stages.{sid}: unknown option(s) "
                    f"{', '.join(sorted(unknown))} (allowed: {', '.join(TASK_OPTIONS)})"
                )
            self.stage_options[str(sid)] = self._task_options(dict(conf), f"stages.{sid}")
        self.in_flight = in_flight
        self.object_store_memory = parse_bytes(object_store_memory, "object_store_memory")
        self._owned = False  # this executor started the Ray instance (and shuts it down)
        self._tmp: str | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._remote: Any = None
        self._start()

    @staticmethod
    def _task_options(conf: dict[str, Any], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if conf.get("num_cpus") is not None:
            cpus = float(conf["num_cpus"])
            if cpus <= 0:
                raise PipelineError(f"executor 'ray': {where}.num_cpus must be positive")
            out["num_cpus"] = cpus
        if conf.get("memory") is not None:
            out["memory"] = parse_bytes(conf["memory"], f"{where}.memory")
        if conf.get("task_mb") is not None:
            mb = float(conf["task_mb"])
            if mb <= 0:
                raise PipelineError(f"executor 'ray': {where}.task_mb must be positive")
            out["task_mb"] = mb
        if conf.get("max_retries") is not None:
            retries = int(conf["max_retries"])
            if retries < 0:
                raise PipelineError(f"executor 'ray': {where}.max_retries must be 0 or more")
            out["max_retries"] = retries
        return out

    # -- the Ray instance ----------------------------------------------------------
    def _start(self) -> None:
        ray = self._ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
        if ray.is_initialized():
            pass  # a Ray this process already joined (tests, notebooks): use it as it is
        elif self.address is not None:
            try:
                ray.init(address=self.address, logging_level=logging.WARNING)
            except Exception as exc:  # ConnectionError, RuntimeError, ...
                raise PipelineError(
                    f"executor 'ray': cannot connect to the Ray cluster at {self.address!r}: "
                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}; "
                    "start it with 'ray start --head' or check --address"
                ) from None
        else:
            self._start_local()
        self._remote = ray.remote(run_task)

    def _start_local(self) -> None:
        ray = self._ray
        # a short path: Ray's unix sockets live below it (at most 107 bytes in all)
        parent = tempfile.gettempdir()
        if len(parent) > 40 and Path("/tmp").is_dir():
            parent = "/tmp"
        self._tmp = tempfile.mkdtemp(prefix="qp-ray-", dir=parent)
        self._reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER, self._tmp, str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        atexit.register(self.close)
        self._owned = True
        kwargs: dict[str, Any] = {
            "num_cpus": self.workers or os.cpu_count() or 1,
            "include_dashboard": False,
            "_temp_dir": self._tmp,
            "logging_level": logging.WARNING,
            "log_to_driver": True,
        }
        store = self.object_store_memory or _default_object_store()
        if store:
            kwargs["object_store_memory"] = store
        try:
            ray.init(**kwargs)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._owned:
            self._owned = False
            with contextlib.suppress(Exception):
                self._ray.shutdown()
        if self._reaper is not None:
            reaper, self._reaper = self._reaper, None
            with contextlib.suppress(Exception):
                assert reaper.stdin is not None
                reaper.stdin.close()  # the watchdog ends what is left and removes the folder
                reaper.wait(timeout=15)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    def cluster_cpus(self) -> float:
        return float(self._ray.cluster_resources().get("CPU", 1.0))

    def options_for(self, stage_id: str) -> dict[str, Any]:
        opts = {"num_cpus": 1.0, "task_mb": 64.0, "max_retries": 3, **self.defaults}
        opts.update(self.stage_options.get(stage_id, {}))
        return opts

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"name": self.name, "address": self.address or "local"}
        with contextlib.suppress(Exception):
            info["cluster_cpus"] = self.cluster_cpus()
        info.update(self.defaults)
        if self.stage_options:
            info["stages"] = self.stage_options
        return info

    # -- running a stage ----------------------------------------------------------------
    def run_batches(
        self, job: BatchJob, reader: DatasetReader, progress: Callable[[int], None]
    ) -> PartResults:
        ray = self._ray
        opts = self.options_for(job.stage_id)
        cpus = self.cluster_cpus()
        if self.address is None and opts["num_cpus"] > cpus:
            # on a local instance such a task would wait forever for a big enough node
            raise StageError(
                job.stage_id,
                f"executor 'ray': a task asks for {opts['num_cpus']:g} CPUs but the local Ray "
                f"instance has {cpus:g}; lower num_cpus or raise --workers",
            )
        slots = max(1, int(cpus // opts["num_cpus"]))
        if self.workers is not None:
            slots = min(slots, self.workers)
        tasks = plan_tasks(
            [Path(f).absolute() for f in reader.files],
            job.batch_size,
            int(opts["task_mb"] * 1e6),
            4 * slots,
        )
        # workers on other nodes do not share the driver's working directory
        job = dataclasses.replace(
            job, output_dirs={n: Path(d).absolute() for n, d in job.output_dirs.items()}
        )
        remote = self._remote.options(
            num_cpus=opts["num_cpus"],
            max_retries=opts["max_retries"],
            retry_exceptions=False,
            name=f"qualpipe:{job.stage_id}",
            **({"memory": opts["memory"]} if opts.get("memory") else {}),
        )
        limit = self.in_flight or 2 * slots
        job_ref = ray.put(job)
        results: PartResults = {}
        pending: dict[Any, Task] = {}
        queue = list(reversed(tasks))
        try:
            while queue or pending:
                while queue and len(pending) < limit:
                    task = queue.pop()
                    pending[remote.remote(job_ref, task)] = task
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    task = pending.pop(ref)
                    try:
                        out = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        raise self._crashed(job, task, exc) from None
                    if "error" in out:
                        raise self._failed(job, task, out)
                    merge_parts(results, out["parts"])
                    progress(int(out["rows"]))
        except BaseException:
            self._cancel(list(pending))
            raise
        return results

    def _cancel(self, refs: list[Any]) -> None:
        """Stop the other tasks and wait until none of them can still write a part."""
        ray = self._ray
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        with contextlib.suppress(Exception):
            _, left = ray.wait(refs, num_returns=len(refs), timeout=30)
            for ref in left:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            if left:
                ray.wait(left, num_returns=len(left), timeout=30)

    def _failed(self, job: BatchJob, task: Task, out: dict[str, Any]) -> StageError:
        where = out["where"]
        ids = _format_ids(out["doc_ids"]) if out["doc_ids"] is not None else task.path
        msg = out["qualpipe_error"] or f"{out['error']} (run with --debug for the traceback)"
        err = StageError(job.stage_id, f"{msg} [ray task, {where}; {ids}]", _plugin(job))
        if out["exit_code"] is not None:
            err.exit_code = int(out["exit_code"])
        err.__cause__ = RemoteTraceback(out["traceback"])
        return err

    def _crashed(self, job: BatchJob, task: Task, exc: BaseException) -> StageError:
        ids: list[str] = []
        with contextlib.suppress(Exception):
            names = pq.read_schema(task.path).names
            cols = [c for c in DOC_ID_COLUMNS if c in names][:1]
            if cols:
                table = pq.ParquetFile(task.path).read(columns=cols)
                ids = doc_ids(table.slice(task.start_row, task.rows))
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        where = f"batches {task.first}-{task.last - 1} of input file {task.file_index}"
        retries = self.options_for(job.stage_id)["max_retries"]
        err = StageError(
            job.stage_id,
            f"{type(exc).__name__} after {retries} retries: {first} "
            f"[ray task, {where}; {_format_ids(ids)}]",
            _plugin(job),
        )
        err.__cause__ = RemoteTraceback(str(exc))
        return err


def _plugin(job: BatchJob) -> str | None:
    m = re.fullmatch(r"plugin '(.*)'", job.who)
    return m.group(1) if m else None


def _default_object_store() -> int | None:
    """An object store that fits in /dev/shm (Ray falls back to slow disk otherwise).

    qualpipe's tasks pass only the job and part lists through it, so 1 GiB is plenty; with
    less than 128 MiB free in /dev/shm, Ray's default (and its disk fallback) is kept.
    """
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    free = st.f_bavail * st.f_frsize
    if free < 128 * 2**20:
        return None
    return int(min(2**30, free * 0.5))
