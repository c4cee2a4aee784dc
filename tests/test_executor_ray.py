"""The ``ray`` executor: identical results to ``local``, failures, retries, clean-up.

The tests that need Ray are marked ``ray`` and share one local Ray instance (started by
the module-scoped ``ray_instance`` fixture through the executor itself); they are
skipped when ray is not installed (``pip install 'qualpipe[ray]'``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from conftest import TRANSCRIPT
from qualpipe import Output, Param, StageType, hookimpl
from qualpipe.errors import PipelineError, StageError
from qualpipe.executors.ray import (
    MISSING_RAY,
    Task,
    parse_bytes,
    plan_tasks,
    read_task_batches,
)
from qualpipe.runner import RunOptions, run
from qualpipe.schemas import SEGMENTS
from qualpipe.testing import Project

try:
    import ray

    HAVE_RAY = True
except ImportError:  # pragma: no cover - CI installs ray with the test extra
    HAVE_RAY = False

REPO = Path(__file__).resolve().parents[1]
PIPELINES = sorted((REPO / "pipelines").glob("*.yaml"))

if HAVE_RAY:
    # the test stages below live in this file, which Ray workers cannot import by name
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """One local Ray (2 CPUs) for this module, started and stopped by the executor (so the
    rest of the test session does not share the machine with it)."""
    from qualpipe.executors.ray import RayExecutor

    if ray.is_initialized():  # pragma: no cover - another fixture started one
        yield None
        return
    executor = RayExecutor(workers=2)
    try:
        yield executor
    finally:
        executor.close()


# -- batches and tasks (no Ray needed) -------------------------------------------------


def test_task_batches_are_the_batches_iter_batches_yields(tmp_path: Path) -> None:
    path = tmp_path / "uneven.parquet"
    schema = pa.schema([("doc_id", pa.string()), ("n", pa.int64())])
    writer = pq.ParquetWriter(path, schema)
    start = 0
    for size in (5, 1, 17, 3, 40, 2, 9):  # uneven row groups, as whole stages write them
        rows = range(start, start + size)
        writer.write_table(
            pa.table({"doc_id": [f"d{i // 4}" for i in rows], "n": list(rows)}, schema=schema)
        )
        start += size
    writer.close()
    for batch_size in (1, 4, 7, 16, 100):
        expected = list(pq.ParquetFile(path).iter_batches(batch_size=batch_size))
        for task_bytes in (1, 50, 200, 10**9):
            tasks = plan_tasks([path], batch_size, task_bytes, min_tasks=1)
            got = [pair for task in tasks for pair in read_task_batches(task)]
            assert [bi for bi, _ in got] == list(range(len(expected)))
            for (_, batch), want in zip(got, expected, strict=True):
                assert batch.equals(want), (batch_size, task_bytes)
            assert sum(t.rows for t in tasks) == 77


def test_tasks_are_at_least_four_per_cpu_and_bounded_by_size(tmp_path: Path) -> None:
    files = []
    for i in range(3):
        path = tmp_path / f"f{i}.parquet"
        pq.write_table(pa.table({"x": list(range(1000))}), path)
        files.append(path)
    # sixteen batches of 100 rows... more tasks than 4 x 2 CPUs
    tasks = plan_tasks(files, 100, 10**9, min_tasks=8)
    assert len(tasks) >= 8
    assert {(t.file_index, t.first) for t in tasks} == {
        (t.file_index, t.first) for t in tasks
    }  # no duplicates
    covered = sorted((t.file_index, b) for t in tasks for b in range(t.first, t.last))
    assert covered == [(f, b) for f in range(3) for b in range(10)]
    # a tiny task size gives one batch a task
    assert len(plan_tasks(files, 100, 1, min_tasks=1)) == 30
    # an empty file gives no task
    empty = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"x": pa.array([], pa.int64())}), empty)
    assert plan_tasks([empty], 10, 10**6, 4) == []
    assert Task(0, "p", 3, 5, 10, 20).start_row == 30


def test_sizes_parse() -> None:
    assert parse_bytes("2GiB", "memory") == 2 * 2**30
    assert parse_bytes("512M", "memory") == 512 * 2**20
    assert parse_bytes(1000, "memory") == 1000
    assert parse_bytes(None, "memory") is None
    with pytest.raises(PipelineError, match="is not a size"):
        parse_bytes("lots", "memory")


def test_without_ray_the_runner_imports_and_ray_says_how_to_install(
    tmp_path: Path,
) -> None:
    # a fresh interpreter where `import ray` fails, as without the extra
    script = tmp_path / "noray.py"
    script.write_text(
        "import sys\n"
        "sys.modules['ray'] = None\n"
        "import qualpipe.runner, qualpipe.cli\n"
        "from qualpipe.cli import main\n"
        f"sys.exit(main(['run', {str(REPO / 'pipelines' / 'sidl.yaml')!r}, "
        f"'--executor', 'ray', '--workdir', {str(tmp_path / 'wd')!r}]))\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert MISSING_RAY in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "wd" / "ingest").exists()


# -- identical results -----------------------------------------------------------------


def small_batch_copy(pipeline: Path, dest: Path, key: Path, exports: Path) -> Path:
    """The pipeline with small batches (so a stage is many tasks), absolute paths."""
    data = yaml.safe_load(pipeline.read_text(encoding="utf-8"))
    base = pipeline.parent
    for name, value in (data.get("params") or {}).items():
        if isinstance(value, str) and (base / value).exists():
            data["params"][name] = str(base / value)
    for stage in data["stages"]:
        params = stage.setdefault("with", {}) or {}
        stage["with"] = params
        for name, value in list(params.items()):
            if isinstance(value, str) and "${" not in value and (base / value).exists():
                params[name] = str(base / value)
        if stage["uses"] == "anonymise":
            params["key"] = str(key)
        if stage["uses"] == "export":
            params["out"] = str(exports)
        if stage["uses"] in ("segment", "code"):
            stage["batch_size"] = 3 if stage["uses"] == "segment" else 16
    out = dest / pipeline.name
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def outputs_of(workdir: Path) -> dict[str, Any]:
    found = {}
    for manifest in sorted(workdir.glob("*/manifest.json")):
        m = json.loads(manifest.read_text(encoding="utf-8"))
        found[m["stage_id"]] = {
            "uses": m["uses"],
            "mode": m["mode"],
            "fingerprint": m["fingerprint"],
            "outputs": {
                n: (o["rows"], o["files"], o["fingerprint"]) for n, o in m["outputs"].items()
            },
            "executor": m["executor"]["name"],
        }
    return found


@pytest.mark.parametrize("pipeline", PIPELINES, ids=[p.stem for p in PIPELINES])
@pytest.mark.usefixtures("ray_instance")
@pytest.mark.ray
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed: pip install 'qualpipe[ray]'")
def test_ray_gives_the_same_rows_and_fingerprints_as_local(pipeline: Path, tmp_path: Path) -> None:
    pipe = small_batch_copy(pipeline, tmp_path, tmp_path / "key.json", tmp_path / "exports")
    run(pipe, options=RunOptions(workdir=tmp_path / "local", progress=False))
    run(
        pipe,
        options=RunOptions(
            workdir=tmp_path / "ray",
            executor="ray",
            executor_options={"task_mb": 0.001},  # tiny tasks: many per stage
            progress=False,
        ),
    )
    local, distributed = outputs_of(tmp_path / "local"), outputs_of(tmp_path / "ray")
    assert list(local) == list(distributed)
    batch_stages = [s for s, v in local.items() if v["mode"] == "batch"]
    assert {local[s]["uses"] for s in batch_stages} == {"segment", "code"}
    for sid in batch_stages:
        assert distributed[sid]["executor"] == "ray"
        assert len(next(iter(local[sid]["outputs"].values()))[1]) > 1  # several part files
    for sid in local:
        assert local[sid]["fingerprint"] == distributed[sid]["fingerprint"], sid
        if local[sid]["uses"] == "export":
            # the files written (docx, xlsx) hold the time they were written: rows only
            rows = {n: o[0] for n, o in local[sid]["outputs"].items()}
            assert rows == {n: o[0] for n, o in distributed[sid]["outputs"].items()}
        else:
            assert local[sid]["outputs"] == distributed[sid]["outputs"], sid


# -- failures ---------------------------------------------------------------------------

PIPELINE = """\
qualpipe: 1
name: demo
stages:
  - id: ingest
    uses: ingest
    with: {{paths: data, language: en}}
  - id: segment
    uses: {uses}
    batch_size: 2
    with: {{marker: {marker}, poison: {poison}}}
"""


def _fragile_segment(batch: pa.RecordBatch, ctx: Any) -> dict[str, pa.Table]:
    """One segment per document; dies or raises as its parameters say."""
    ids = batch.column("doc_id").to_pylist()
    if ctx.params["poison"] in ids:
        raise ValueError("cannot segment this document")
    marker = Path(ctx.params["marker"])
    if ctx.params["marker"] and ctx.batch_index == 1:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.close(fd)
            os._exit(1)  # the worker process dies (once: the marker now exists)
    texts = batch.column("text").to_pylist()
    return {
        "segments": pa.table(
            {
                "segment_id": [f"{d}:all" for d in ids],
                "doc_id": ids,
                "start": [0] * len(ids),
                "end": [len(t) for t in texts],
                "text": texts,
                "sensitive": [True] * len(ids),
            }
        )
    }


class FragilePlugin:
    @hookimpl
    def qualpipe_register_stages(self, register: Any) -> None:
        register(
            StageType(
                name="fragile-segment",
                description="one segment per document; can fail on purpose",
                mode="batch",
                consumes=["documents"],
                produces=[Output("segments", SEGMENTS.name)],
                params=[
                    Param("marker", "str", "", "die once in batch 1 unless this file exists"),
                    Param("poison", "str", "", "raise on this document id"),
                ],
                process_batch=_fragile_segment,
            )
        )


def fragile_project(project: Project, marker: str = "''", poison: str = "''") -> Path:
    for i in range(1, 9):
        project.write(f"data/p{i:02d}.txt", TRANSCRIPT.format(n=i, topic=f"topic {i}"))
    return project.pipeline(PIPELINE.format(uses="fragile-segment", marker=marker, poison=poison))


def doc_ids(project: Project) -> list[str]:
    return [str(x) for x in project.dataset("demo", "ingest", "documents").column("doc_id")]


def staging_empty(workdir: Path) -> bool:
    staging = workdir / ".staging"
    return not staging.exists() or not any(staging.iterdir())


@pytest.mark.usefixtures("ray_instance")
@pytest.mark.ray
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed: pip install 'qualpipe[ray]'")
def test_a_failing_batch_names_its_documents_and_commits_nothing(
    qualpipe_project: Project, qualpipe_plugin: Any
) -> None:
    qualpipe_plugin(FragilePlugin(), "fragile")
    pipe = fragile_project(qualpipe_project)
    run(pipe, options=RunOptions(only="ingest", progress=False))
    ids = doc_ids(qualpipe_project)
    poison = ids[5]  # batch 2 (size 2) holds documents 4 and 5
    pipe = fragile_project(qualpipe_project, poison=poison)
    with pytest.raises(StageError) as info:
        run(pipe, options=RunOptions(executor="ray", progress=False))
    msg = str(info.value)
    assert msg.startswith("stage 'segment' (plugin 'fragile'): ValueError: cannot segment")
    assert f"document ids: {ids[4]}, {poison}]" in msg
    assert "batch 2 of input file 0" in msg
    assert info.value.exit_code == 1
    workdir = qualpipe_project.workdir("demo")
    assert not (workdir / "segment").exists()
    assert staging_empty(workdir)
    # the CLI says it in one line
    result = qualpipe_project.run("run", pipe, "--executor", "ray", "--no-progress")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert any(poison in line and "stage 'segment'" in line for line in errors), result.stderr
    assert not (workdir / "segment").exists()


@pytest.mark.usefixtures("ray_instance")
@pytest.mark.ray
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed: pip install 'qualpipe[ray]'")
def test_a_worker_that_dies_is_retried_and_the_result_is_unchanged(
    qualpipe_project: Project, qualpipe_plugin: Any, tmp_path: Path
) -> None:
    qualpipe_plugin(FragilePlugin(), "fragile")
    marker = tmp_path / "died-once"
    pipe = fragile_project(qualpipe_project, marker=str(marker))
    summary = run(
        pipe,
        options=RunOptions(executor="ray", executor_options={"task_mb": 1e-6}, progress=False),
    )
    assert marker.exists()  # a worker did die in batch 1
    segments = qualpipe_project.dataset("demo", "segment")
    assert segments.num_rows == 8
    # the same data as a run in which nothing died
    plain = fragile_project(qualpipe_project)
    base = run(plain, options=RunOptions(workdir=tmp_path / "plain", progress=False))
    rows = summary.results[1].manifest["outputs"]["segments"]  # type: ignore[index]
    want = base.results[1].manifest["outputs"]["segments"]  # type: ignore[index]
    assert (rows["files"], rows["fingerprint"]) == (want["files"], want["fingerprint"])


@pytest.mark.usefixtures("ray_instance")
@pytest.mark.ray
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed: pip install 'qualpipe[ray]'")
def test_a_worker_that_dies_without_retries_names_its_documents(
    qualpipe_project: Project, qualpipe_plugin: Any, tmp_path: Path
) -> None:
    qualpipe_plugin(FragilePlugin(), "fragile")
    pipe = fragile_project(qualpipe_project, marker=str(tmp_path / "died"))
    run(pipe, options=RunOptions(only="ingest", progress=False))
    ids = doc_ids(qualpipe_project)
    with pytest.raises(StageError) as info:
        run(
            pipe,
            options=RunOptions(
                executor="ray",
                executor_options={"task_mb": 1e-6, "stages": {"segment": {"max_retries": 0}}},
                progress=False,
            ),
        )
    msg = str(info.value)
    assert "stage 'segment'" in msg and "after 0 retries" in msg
    assert f"document ids: {ids[2]}, {ids[3]}]" in msg  # batch 1: documents 2 and 3
    assert not (qualpipe_project.workdir("demo") / "segment").exists()
    assert staging_empty(qualpipe_project.workdir("demo"))


@pytest.mark.usefixtures("ray_instance")
@pytest.mark.ray
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed: pip install 'qualpipe[ray]'")
def test_pipeline_file_executor_section_and_stage_resources(
    qualpipe_project: Project, qualpipe_plugin: Any
) -> None:
    qualpipe_plugin(FragilePlugin(), "fragile")
    fragile_project(qualpipe_project)
    text = (qualpipe_project.root / "pipeline.yaml").read_text(encoding="utf-8")
    section = "executor:\n  name: ray\n  num_cpus: 1\n  stages:\n    segment: {num_cpus: 2}\n"
    pipe = qualpipe_project.pipeline(section + text)
    summary = run(pipe, options=RunOptions(progress=False))
    info = summary.results[1].manifest["executor"]  # type: ignore[index]
    assert info["name"] == "ray"
    assert info["stages"] == {"segment": {"num_cpus": 2.0}}
    # more CPUs than the local instance has: a clear error, not a task waiting forever
    pipe = qualpipe_project.pipeline(section.replace("{num_cpus: 2}", "{num_cpus: 64}") + text)
    with pytest.raises(StageError, match="asks for 64 CPUs"):
        run(pipe, options=RunOptions(force=True, progress=False))
    bad = qualpipe_project.pipeline(section.replace("num_cpus: 2", "cpus: 2") + text)
    with pytest.raises(PipelineError, match=r"stages.segment: unknown option\(s\) cpus"):
        run(bad, options=RunOptions(progress=False))


# -- processes left behind ----------------------------------------------------------------


def ray_processes(root: str) -> set[int]:
    """Processes holding a file below ``root`` or naming it on their command line."""
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if root in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                found.add(int(pid))
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(root):
                        found.add(int(pid))
                        break
                except OSError:
                    continue
        except OSError:
            continue
    return found


def short_tmp() -> str:
    # Ray's socket paths must stay short: a folder directly in /tmp
    return tempfile.mkdtemp(prefix="qpt-", dir="/tmp")


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs Linux /proc")


@needs_proc
@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed: pip install 'qualpipe[ray]'")
def test_a_cli_run_on_its_own_ray_leaves_no_processes(tmp_path: Path) -> None:
    tmp = short_tmp()
    env = {**os.environ, "TMPDIR": tmp}
    cmd = [sys.executable, "-m", "qualpipe", "run", str(REPO / "pipelines" / "sidl.yaml")]
    cmd += ["--executor", "ray", "--workers", "2", "--workdir", str(tmp_path / "wd")]
    cmd += ["--set", f"anonymise.key={tmp_path / 'key.json'}", "--until", "code"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((tmp_path / "wd" / "code" / "manifest.json").read_text())
    assert manifest["executor"]["name"] == "ray"
    assert ray_processes(tmp) == set()
    assert os.listdir(tmp) == []  # Ray's temporary folder is gone too
    os.rmdir(tmp)


@needs_proc
@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed: pip install 'qualpipe[ray]'")
def test_a_killed_driver_leaves_no_processes() -> None:
    tmp = short_tmp()
    script = (
        "import time\n"
        "from qualpipe.executors.ray import RayExecutor\n"
        "ex = RayExecutor(workers=1)\n"
        "import ray\n"
        "ray.get(ray.remote(lambda: 1).remote())\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": tmp},
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert len(ray_processes(tmp)) >= 3  # gcs_server, raylet, a worker, ...
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 30
    while ray_processes(tmp) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray_processes(tmp) == set()
    while os.listdir(tmp) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert os.listdir(tmp) == []
    os.rmdir(tmp)
