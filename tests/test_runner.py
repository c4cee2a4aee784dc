"""The runner and run store: skip-if-unchanged, override flags, chaining, atomicity."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import TRANSCRIPT
from qualpipe import Output, Param, StageType, hookimpl
from qualpipe.runner import RunOptions, run
from qualpipe.schemas import SEGMENTS
from qualpipe.store import open_dataset
from qualpipe.testing import Project

PIPELINE = """\
qualpipe: 1
name: demo
params:
  data: data
stages:
  - id: ingest
    uses: ingest
    with:
      paths: ${params.data}/transcripts
      manifest: ${params.data}/participants.csv
  - id: segment
    uses: segment
    with:
      drop_speakers: [Interviewer]
"""


def make_project(project: Project, n: int = 3) -> Path:
    rows = ["file,participant,role"]
    for i in range(1, n + 1):
        project.write(f"data/transcripts/p{i:02d}.txt", TRANSCRIPT.format(n=i, topic=f"topic {i}"))
        rows.append(
            f"transcripts/p{i:02d}.txt,P{i:02d},{'Service user' if i % 2 else 'Support worker'}"
        )
    project.write("data/participants.csv", "\n".join(rows) + "\n")
    return project.pipeline(PIPELINE)


def actions(summary: object) -> dict[str, str]:
    return {r.stage_id: r.action for r in summary.results}  # type: ignore[attr-defined]


def test_first_run_then_everything_skipped(qualpipe_project: Project) -> None:
    pipe = make_project(qualpipe_project)
    first = run(pipe)
    assert actions(first) == {"ingest": "run", "segment": "run"}
    docs = qualpipe_project.dataset("demo", "ingest", "documents")
    assert docs.num_rows == 3
    assert docs.column("participant_id").to_pylist() == ["P01", "P02", "P03"]
    segs = qualpipe_project.dataset("demo", "segment")
    # two participant turns per transcript; interviewer turns dropped
    assert segs.num_rows == 6
    for row in segs.to_pylist():
        doc = next(d for d in docs.to_pylist() if d["doc_id"] == row["doc_id"])
        assert doc["text"][row["start"] : row["end"]] == row["text"]
        assert row["speaker"].startswith("P")
    second = run(pipe)
    assert actions(second) == {"ingest": "skip", "segment": "skip"}


def test_changed_transcript_reruns_ingest_and_downstream(qualpipe_project: Project) -> None:
    pipe = make_project(qualpipe_project)
    run(pipe)
    (qualpipe_project.root / "data/transcripts/p02.txt").write_text(
        TRANSCRIPT.format(n=2, topic="the bus"), encoding="utf-8"
    )
    summary = run(pipe)
    assert actions(summary) == {"ingest": "run", "segment": "run"}
    assert summary.results[0].reason == "files of parameter 'paths' changed"
    assert summary.results[1].reason == "input 'documents' changed"


def test_changed_parameter_reruns_only_that_stage(qualpipe_project: Project) -> None:
    pipe = make_project(qualpipe_project)
    run(pipe)
    summary = run(pipe, ["segment.min_chars=40"])
    assert actions(summary) == {"ingest": "skip", "segment": "run"}
    assert summary.results[1].reason == "parameters changed"


def test_identical_upstream_output_does_not_rerun_downstream(
    qualpipe_project: Project,
) -> None:
    pipe = make_project(qualpipe_project)
    run(pipe)
    # A changed manifest row re-runs ingest ... and the new documents differ (attributes),
    # whereas an unrelated file in the folder does not change ingest's output at all.
    qualpipe_project.write("data/transcripts/notes.csv", "not a transcript\n")
    summary = run(pipe)
    assert actions(summary) == {"ingest": "run", "segment": "skip"}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (RunOptions(force=True), {"ingest": "run", "segment": "run"}),
        (RunOptions(only="segment"), {"ingest": "not selected", "segment": "run"}),
        (RunOptions(from_stage="segment"), {"ingest": "skip", "segment": "run"}),
        (RunOptions(until="ingest"), {"ingest": "run", "segment": "not selected"}),
    ],
)
def test_override_flags(
    qualpipe_project: Project, options: RunOptions, expected: dict[str, str]
) -> None:
    pipe = make_project(qualpipe_project)
    run(pipe)
    if options.until:
        run(pipe, ["ingest.language=sv"])  # make ingest stale, then run only up to it
        summary = run(pipe, ["ingest.language=en"], options)
    else:
        summary = run(pipe, (), options)
    got = actions(summary)
    if options.from_stage:
        # stages before --from are not selected; they are neither run nor checked
        expected = {"ingest": "not selected", "segment": "run"}
    assert got == expected


def test_only_without_upstream_output_is_a_clear_error(qualpipe_project: Project) -> None:
    pipe = make_project(qualpipe_project)
    result = qualpipe_project.run("run", pipe, "--only", "segment")
    assert result.exit_code == 1
    assert "stage 'segment'" in result.stderr
    assert "needs the output of stage 'ingest'" in result.stderr


def test_status_explains_each_stage(qualpipe_project: Project) -> None:
    pipe = make_project(qualpipe_project)
    result = qualpipe_project.run("status", pipe, "--json")
    assert result.json() == [
        {"stage": "ingest", "action": "run", "reason": "no output yet"},
        {"stage": "segment", "action": "run", "reason": "upstream 'ingest' will run"},
    ]
    run(pipe)
    result = qualpipe_project.run("status", pipe, "--json", "--set", "segment.min_chars=5")
    assert [d["reason"] for d in result.json()] == ["unchanged", "parameters changed"]


def test_chaining_a_dataset_from_another_pipeline(qualpipe_project: Project) -> None:
    pipe = make_project(qualpipe_project)
    run(pipe)
    second = qualpipe_project.pipeline(
        """\
        qualpipe: 1
        name: second
        stages:
          - id: paragraphs
            uses: segment
            inputs: [.qualpipe/demo/ingest/documents]
            with: {strategy: paragraph}
        """,
        name="second.yaml",
    )
    summary = run(second)
    assert actions(summary) == {"paragraphs": "run"}
    manifest = qualpipe_project.manifest("second", "paragraphs")
    upstream = qualpipe_project.manifest("demo", "ingest")
    assert (
        manifest["inputs"]["documents"]["fingerprint"]
        == (upstream["outputs"]["documents"]["fingerprint"])
    )
    assert qualpipe_project.dataset("second", "paragraphs").num_rows == 12
    assert actions(run(second)) == {"paragraphs": "skip"}
    # re-running the first pipeline with a change makes the chained stage stale
    (qualpipe_project.root / "data/transcripts/p01.txt").write_text("P01: changed\n")
    run(pipe)
    assert actions(run(second)) == {"paragraphs": "run"}


def test_manifest_records_provenance(qualpipe_project: Project) -> None:
    pipe = make_project(qualpipe_project)
    run(pipe)
    m = qualpipe_project.manifest("demo", "segment")
    assert m["record_format"] == "qualpipe.manifest/1"
    assert m["status"] == "complete"
    assert m["uses"] == "segment"
    assert m["plugin"]["name"] == "qualpipe.builtin.segment"
    assert m["params"]["drop_speakers"] == ["Interviewer"]
    out = m["outputs"]["segments"]
    assert out["rows"] == 6
    assert out["kind"] == "segments" and out["kind_version"] == 1
    assert out["sensitive"] is True
    assert m["stats"] == {}
    assert m["seconds"] >= 0
    schema = pq.read_schema(qualpipe_project.workdir("demo") / "segment/segments" / out["files"][0])
    assert schema.metadata[b"qualpipe.kind"] == b"segments"


# -- plugins used by the tests below -------------------------------------------------


def _bad_batch(batch: pa.RecordBatch, ctx: object) -> dict[str, pa.Table]:
    return {"segments": pa.table({"segment_id": ["x"]})}  # lacks required columns


def _failing_batch(batch: pa.RecordBatch, ctx: object) -> dict[str, pa.Table]:
    raise RuntimeError("boom")


class BadPlugin:
    @hookimpl
    def qualpipe_register_stages(self, register: object) -> None:
        register(  # type: ignore[operator]
            StageType(
                name="bad-segment",
                description="returns rows that miss required columns",
                mode="batch",
                consumes=["documents"],
                produces=["segments"],
                process_batch=_bad_batch,
            )
        )
        register(  # type: ignore[operator]
            StageType(
                name="failing-segment",
                description="raises",
                mode="batch",
                consumes=["documents"],
                produces=[Output("segments", "segments")],
                params=[Param("note", "str", "", "anything")],
                process_batch=_failing_batch,
            )
        )


def test_schema_mismatch_is_rejected_before_anything_is_written(
    qualpipe_project: Project, qualpipe_plugin: object
) -> None:
    qualpipe_plugin(BadPlugin(), "bad-plugin")  # type: ignore[operator]
    make_project(qualpipe_project)
    pipe = qualpipe_project.pipeline(
        PIPELINE.replace("uses: segment", "uses: bad-segment").replace(
            "    with:\n      drop_speakers: [Interviewer]\n", ""
        )
    )
    result = qualpipe_project.run("run", pipe)
    assert result.exit_code == 1
    assert "plugin 'bad-plugin'" in result.stderr
    assert "without required column 'doc_id'" in result.stderr
    wd = qualpipe_project.workdir("demo")
    assert not (wd / "segment").exists()
    assert not list((wd / ".staging").glob("*")) if (wd / ".staging").exists() else True


def test_failed_stage_keeps_previous_complete_output(
    qualpipe_project: Project, qualpipe_plugin: object
) -> None:
    qualpipe_plugin(BadPlugin(), "bad-plugin")  # type: ignore[operator]
    pipe = make_project(qualpipe_project)
    run(pipe)
    before = qualpipe_project.dataset("demo", "segment")
    broken = qualpipe_project.pipeline(PIPELINE.replace("uses: segment", "uses: failing-segment"))
    broken.write_text(
        broken.read_text().replace("drop_speakers: [Interviewer]", "note: x"), encoding="utf-8"
    )
    result = qualpipe_project.run("run", broken)
    assert result.exit_code == 1
    assert "stage 'segment' (plugin 'bad-plugin'): RuntimeError: boom" in result.stderr
    assert "Traceback" not in result.stderr
    # the earlier, complete output is still there and still trusted
    assert qualpipe_project.dataset("demo", "segment").equals(before)


def test_workers_produce_identical_datasets(qualpipe_project: Project, tmp_path: Path) -> None:
    pipe = make_project(qualpipe_project, n=8)
    one = run(pipe, ["segment.min_chars=2"], RunOptions(workdir=tmp_path / "one"))
    two = run(
        pipe,
        ["segment.min_chars=2"],
        RunOptions(workdir=tmp_path / "two", workers=2),
    )
    fp1 = one.results[1].manifest["outputs"]["segments"]["fingerprint"]  # type: ignore[index]
    fp2 = two.results[1].manifest["outputs"]["segments"]["fingerprint"]  # type: ignore[index]
    assert fp1 == fp2
    assert two.results[1].manifest["executor"] == {"name": "local", "workers": 2}  # type: ignore[index]


def test_small_batches_stream_into_many_parts(qualpipe_project: Project) -> None:
    pipe = make_project(qualpipe_project, n=5)
    text = pipe.read_text().replace("  - id: segment\n", "  - id: segment\n    batch_size: 2\n")
    pipe.write_text(text, encoding="utf-8")
    run(pipe)
    files = sorted(
        p.name for p in (qualpipe_project.workdir("demo") / "segment/segments").iterdir()
    )
    assert files == [
        "part-000000-000000.parquet",
        "part-000000-000001.parquet",
        "part-000000-000002.parquet",
    ]
    assert open_dataset(qualpipe_project.workdir("demo") / "segment").rows == 10


class BigBatchPlugin:
    @hookimpl
    def qualpipe_register_stages(self, register: object) -> None:
        from qualpipe.builtin.segment import SEGMENT

        register(  # type: ignore[operator]
            dataclasses.replace(SEGMENT, name="segment-in-threes", batch_size=3)
        )


def test_a_stage_types_batch_size_applies_unless_the_pipeline_sets_one(
    qualpipe_project: Project, qualpipe_plugin: object
) -> None:
    qualpipe_plugin(BigBatchPlugin(), "big-batch")  # type: ignore[operator]
    pipe = make_project(qualpipe_project, n=5)
    text = pipe.read_text().replace("uses: segment", "uses: segment-in-threes")
    pipe.write_text(text, encoding="utf-8")
    parts = qualpipe_project.workdir("demo") / "segment/segments"
    run(pipe)
    assert len(list(parts.iterdir())) == 2  # 5 documents in batches of 3
    pipe.write_text(
        text.replace("  - id: segment\n", "  - id: segment\n    batch_size: 1\n"),
        encoding="utf-8",
    )
    run(pipe, ("segment.min_chars=2",))
    assert len(list(parts.iterdir())) == 5
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        StageType(name="x", description="", mode="batch", batch_size=0)


def test_quarantine_and_strict(qualpipe_project: Project) -> None:
    pipe = make_project(qualpipe_project)
    qualpipe_project.write("data/transcripts/broken.txt", b"\x00\x01\x02binary")
    qualpipe_project.write("data/transcripts/empty.txt", "")
    result = qualpipe_project.run("run", pipe, "--set", "ingest.strict=false")
    assert result.exit_code == 0, result.stderr
    assert "2 file(s) quarantined" in result.stdout
    q = qualpipe_project.dataset("demo", "ingest", "quarantine").to_pylist()
    assert {r["source_path"]: r["reason"] for r in q} == {
        "broken.txt": "binary file (NUL bytes), not a text transcript",
        "empty.txt": "empty file",
    }
    strict = qualpipe_project.run("run", pipe, "--set", "ingest.strict=false", "--strict")
    assert strict.exit_code == 4
    assert "2 input file(s) were quarantined" in strict.stderr


def test_segment_ids_are_stable(qualpipe_project: Project, tmp_path: Path) -> None:
    pipe = make_project(qualpipe_project)
    a = run(pipe, (), RunOptions(workdir=tmp_path / "a"))
    b = run(pipe, (), RunOptions(workdir=tmp_path / "b"))
    ta = open_dataset(a.workdir / "segment").read_all()
    tb = open_dataset(b.workdir / "segment").read_all()
    assert ta.column("segment_id").to_pylist() == tb.column("segment_id").to_pylist()
    assert ta.schema.equals(SEGMENTS.arrow_schema, check_metadata=False)


# -- an interrupted stage ------------------------------------------------------------

SLOW_PLUGIN = """
import time
import pyarrow as pa
from qualpipe import hookimpl, StageType, Param
from qualpipe.schemas import SEGMENTS


def slow_batch(batch, ctx):
    time.sleep(ctx.params["delay"])
    rows = [
        {"segment_id": d["doc_id"] + ":all", "doc_id": d["doc_id"], "start": 0,
         "end": len(d["text"]), "text": d["text"], "sensitive": d["sensitive"]}
        for d in batch.to_pylist()
    ]
    return {"segments": pa.Table.from_pylist(rows, schema=SEGMENTS.schema)}


def dying_batch(batch, ctx):
    import multiprocessing, os, signal
    if multiprocessing.parent_process() is not None:  # a worker: dies like an OOM kill
        os.kill(os.getpid(), signal.SIGKILL)
    return slow_batch(batch, ctx)


@hookimpl
def qualpipe_register_stages(register):
    register(StageType(
        name="slow-copy", description="copies documents to segments, slowly", mode="batch",
        consumes=["documents"], produces=["segments"],
        params=[Param("delay", "float", 0.0, "seconds per batch")],
        process_batch=slow_batch,
    ))
    register(StageType(
        name="dying-copy", description="its worker processes are killed", mode="batch",
        consumes=["documents"], produces=["segments"],
        params=[Param("delay", "float", 0.0, "seconds per batch")],
        process_batch=dying_batch,
    ))
"""


def test_a_killed_worker_process_is_a_one_line_error_and_nothing_is_kept(
    qualpipe_project: Project, fake_distribution: object
) -> None:
    site = fake_distribution("qualpipe-slow", "qualpipe_slow_plugin", SLOW_PLUGIN)  # type: ignore[operator]
    make_project(qualpipe_project, n=4)
    pipe = qualpipe_project.pipeline(
        PIPELINE.replace("uses: segment", "uses: dying-copy").replace(
            "drop_speakers: [Interviewer]", "delay: 0.0"
        )
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    exe = [sys.executable, "-m", "qualpipe", "--log-level", "error"]
    one = subprocess.run(
        [*exe, "run", str(pipe), "--workers", "2"], env=env, capture_output=True, text=True
    )
    assert one.returncode == 1, one.stderr
    assert "Traceback" not in one.stderr
    lines = [x for x in one.stderr.splitlines() if x.startswith("qualpipe:")]
    assert len(lines) == 1 and "a worker process ended abruptly" in lines[0], one.stderr
    assert "stage 'segment'" in lines[0] and "--workers" in lines[0]
    wd = qualpipe_project.workdir("demo")
    assert not (wd / "segment").exists()
    assert not (wd / ".staging").exists() or not any((wd / ".staging").iterdir())
    # in one process the same stage works: the error was the worker's death
    again = subprocess.run([*exe, "run", str(pipe)], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr


@pytest.mark.slow
def test_killed_stage_leaves_nothing_trusted_and_rerun_matches(
    qualpipe_project: Project, fake_distribution: object, tmp_path: Path
) -> None:
    site = fake_distribution("qualpipe-slow", "qualpipe_slow_plugin", SLOW_PLUGIN)  # type: ignore[operator]
    make_project(qualpipe_project, n=12)
    pipe = qualpipe_project.pipeline(
        PIPELINE.replace("uses: segment", "uses: slow-copy")
        .replace("drop_speakers: [Interviewer]", "delay: ${params.delay}")
        .replace("  data: data\n", "  data: data\n  delay: 0.0\n")
        .replace("  - id: segment\n", "  - id: segment\n    batch_size: 1\n")
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    exe = [sys.executable, "-m", "qualpipe"]
    # reference: an uninterrupted run in its own workdir
    ref = subprocess.run(
        [*exe, "run", str(pipe), "--workdir", str(tmp_path / "ref")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ref.returncode == 0, ref.stderr
    wd = qualpipe_project.workdir("demo")
    proc = subprocess.Popen(
        [*exe, "run", str(pipe), "--set", "params.delay=0.3"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    staged: list[Path] = []
    while time.monotonic() < deadline and not staged:
        staged = list((wd / ".staging").glob("segment-*/segments/*.parquet"))
        time.sleep(0.05)
    assert staged, "the slow stage never started writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (wd / "segment").exists()  # nothing half-written is in place
    status = subprocess.run(
        [*exe, "status", str(pipe), "--json"], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(status.stdout)[1] == {
        "stage": "segment",
        "action": "run",
        "reason": "previous run was interrupted",
    }
    again = subprocess.run(
        [*exe, "run", str(pipe)], env=env, capture_output=True, text=True, check=False
    )
    assert again.returncode == 0, again.stderr
    assert not (wd / ".staging").exists() or not any((wd / ".staging").iterdir())
    got = json.loads((wd / "segment/manifest.json").read_text())
    want = json.loads((tmp_path / "ref/segment/manifest.json").read_text())
    assert got["fingerprint"] == want["fingerprint"]
    assert got["outputs"]["segments"]["fingerprint"] == want["outputs"]["segments"]["fingerprint"]
    assert got["outputs"]["segments"]["rows"] == 12


class FaultyAuditor:
    """A user's auditing wrapper with a bug after the stage ran."""

    @hookimpl(wrapper=True)
    def qualpipe_run_stage(self, stage: object) -> object:
        result = yield
        raise ValueError("audit log is full")
        return result  # pragma: no cover


def test_a_failing_wrapper_is_reported_by_plugin_name(
    qualpipe_project: Project, qualpipe_plugin: object
) -> None:
    qualpipe_plugin(FaultyAuditor(), "auditor")  # type: ignore[operator]
    pipe = make_project(qualpipe_project)
    result = qualpipe_project.run("run", pipe)
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "qualpipe: error: stage 'ingest' (plugin 'auditor'): "
        "a qualpipe_run_stage hook raised ValueError: audit log is full"
    )


def test_same_file_name_in_two_folders_gets_two_ids(qualpipe_project: Project) -> None:
    qualpipe_project.write("a/p01.txt", "P01: first folder\n")
    qualpipe_project.write("b/p01.txt", "P01: second folder\n")
    pipe = qualpipe_project.pipeline(
        """\
        qualpipe: 1
        name: two
        stages:
          - {id: ingest, uses: ingest, with: {paths: [a, b, "a/*.txt"]}}
        """
    )
    run(pipe)
    docs = qualpipe_project.dataset("two", "ingest", "documents").to_pylist()
    assert sorted(d["source_path"] for d in docs) == ["a/p01.txt", "b/p01.txt"]
    assert len({d["doc_id"] for d in docs}) == 2


def test_a_part_file_keeps_its_datasets_manifest_info(qualpipe_project: Project) -> None:
    pipe = make_project(qualpipe_project)
    run(pipe)
    folder = qualpipe_project.workdir("demo") / "segment/segments"
    part = next(folder.glob("*.parquet"))
    reader = open_dataset(part)
    assert reader.kind == "segments"
    assert reader.sensitive is True
    assert reader.rows == 6
