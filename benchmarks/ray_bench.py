"""Ray against local: the batch-wise stages on a generated corpus, per executor setting.

    .venv/bin/python benchmarks/ray_bench.py --mb 500 --dir /tmp/qp-raybench --json r.json
    .venv/bin/python benchmarks/ray_bench.py --mb 50 --anonymise --dir /tmp/qp-raybench50

A corpus is written once with ``corpus.write_corpus`` (seed 1, mixed English and Swedish)
into ``--dir`` and reused by later invocations. The upstream stages (``ingest``, with
``--anonymise`` also ``anonymise``, and ``codebook``) run once with the local executor;
then for every repeat and executor setting (``local:1 local:2 ray:1 ray:2`` by default)
the batch-wise stages, ``segment`` and ``code`` (the settings of ``pipelines/sidl.yaml``,
as in ``pipeline_bench.py``), run in one fresh ``python -m qualpipe run --from segment
--until code --executor E --workers N`` process on a hard-linked copy of the upstream
run store. ``ray:N`` starts a local Ray instance with N CPUs in that process.

Measured per run: each stage's ``seconds`` (its manifest; Ray's start-up is not in it),
corpus MB/s from those seconds, the process wall time (interpreter, plugin loading and
Ray start-up included), the CPU seconds of the process tree (user + system time from
``/proc/PID/stat`` of every process seen in the tree, at its last 0.2 s sample), and the
peak memory of the whole process tree during each stage: every 0.2 s the RSS and the PSS
(``/proc/PID/smaps_rollup``) of the driver and all its descendants (pool workers; Ray's
gcs_server, raylet, agents and workers) are summed. Summed RSS counts shared pages once
per process (Ray's object store in /dev/shm, shared libraries); PSS shares them out, so
it is the better sum. Every run's output fingerprints are checked against the first run's.
MB means 10^6 bytes of transcript text.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402
import pipeline_bench  # noqa: E402

BATCH_STAGES = ("segment", "code")
PAGE = os.sysconf("SC_PAGE_SIZE")


def pipeline_yaml(data: Path, key: Path, anonymise: bool) -> str:
    """The settings of pipelines/sidl.yaml (as pipeline_bench.py), up to ``code``."""
    return pipeline_bench.pipeline_yaml(data, key, name="raybench", anonymise=anonymise)


# -- memory of a process tree -------------------------------------------------------------


def _processes() -> tuple[dict[int, list[int]], dict[int, int]]:
    """(parent pid -> child pids, pid -> CPU clock ticks used, user + system)."""
    kids: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        pid = entry.name
        if not pid.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        kids.setdefault(int(fields[1]), []).append(int(pid))
        ticks[int(pid)] = int(fields[11]) + int(fields[12])
    return kids, ticks


def tree_memory(root: int) -> tuple[int, int, int, dict[int, int]]:
    """Summed RSS and PSS bytes, processes, and CPU ticks per pid of ``root``'s tree."""
    kids, all_ticks = _processes()
    todo, rss, pss, n = [root], 0, 0, 0
    ticks: dict[int, int] = {}
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        try:
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                    break
            n += 1
            ticks[pid] = all_ticks.get(pid, 0)
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss, n, ticks


class Sampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int, int, int, float]] = []
        self.stop = threading.Event()
        self.ticks: dict[int, int] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            rss, pss, n, ticks = tree_memory(self.pid)
            if n:
                self.ticks.update(ticks)
                self.samples.append((time.time(), rss, pss, n, self.cpu_seconds()))
            self.stop.wait(self.every)

    def cpu_seconds(self) -> float:
        """CPU time of every process seen in the tree (to its last sample)."""
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")

    def peak(self, start: float, end: float) -> dict[str, float]:
        inside = [s for s in self.samples if start <= s[0] <= end] or self.samples
        before = [s[4] for s in self.samples if s[0] <= start] or [0.0]
        upto = [s[4] for s in self.samples if s[0] <= end] or [0.0]
        return {
            "cpu_seconds": round(upto[-1] - before[-1], 1),
            "peak_rss_sum_mib": round(max(s[1] for s in inside) / 2**20, 1),
            "peak_pss_sum_mib": round(max(s[2] for s in inside) / 2**20, 1),
            "max_processes": max(s[3] for s in inside),
        }


# -- runs --------------------------------------------------------------------------------


def qualpipe(args: list[str], log: Path) -> tuple[float, float, Sampler]:
    """Run ``python -m qualpipe ARGS``; (wall s, CPU s of the process tree, sampler).

    With ``--executor ray-data`` this file runs instead, registering that executor first.
    """
    prefix = [sys.executable, "-m", "qualpipe"]
    if "ray-data" in args:
        prefix = [sys.executable, str(Path(__file__).resolve()), "--child"]
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [*prefix, *args, "--no-progress"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        sampler = Sampler(proc.pid)
        sampler.start()
        code = proc.wait()
    sampler.stop.set()
    sampler.join()
    wall = time.perf_counter() - t0
    cpu = sampler.cpu_seconds()
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"qualpipe {' '.join(args)} failed (exit {code}):\n{tail}")
    return wall, cpu, sampler


def ray_data_executor(**options: Any) -> Any:
    """For comparison only: the stage's batches through Ray Data's ``read_parquet`` and
    ``map_batches`` (Ray Data cuts the batches, so part files differ from ``local``'s)."""
    import hashlib

    import pyarrow as pa

    from qualpipe.executors.base import merge_parts, run_one_batch
    from qualpipe.executors.ray import RayExecutor

    class RayDataExecutor(RayExecutor):
        name = "ray-data"

        def run_batches(self, job: Any, reader: Any, progress: Any) -> Any:
            ray = self._ray
            ds = ray.data.read_parquet([str(Path(f).absolute()) for f in reader.files])

            def process(table: pa.Table) -> pa.Table:
                batch = table.combine_chunks().to_batches()[0]
                first = str(batch.column(0)[0]) + str(batch.num_rows)
                index = int(hashlib.sha1(first.encode()).hexdigest()[:12], 16) % 10**9
                parts = run_one_batch(job, batch, 0, index)
                return pa.table({"parts": [json.dumps(parts)], "rows": [batch.num_rows]})

            out = ds.map_batches(
                process,
                batch_size=job.batch_size,
                batch_format="pyarrow",
                num_cpus=self.options_for(job.stage_id)["num_cpus"],
            )
            results: dict[str, dict[str, int]] = {}
            for row in out.iter_rows():
                merge_parts(results, json.loads(row["parts"]))
                progress(int(row["rows"]))
            return results

    return RayDataExecutor(**options)


class _DataPlugin:
    from qualpipe import hookimpl

    @hookimpl
    def qualpipe_register_executors(self, register: Any) -> None:
        register("ray-data", ray_data_executor)


def child(argv: list[str]) -> int:
    from qualpipe.cli import main as cli_main
    from qualpipe.plugins import temporary_plugin

    with temporary_plugin(_DataPlugin(), "ray-bench"):
        return int(cli_main(argv) or 0)


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def bench_run(
    folder: Path, pipe: Path, base: Path, executor: str, workers: int, rep: int, mb: float
) -> dict[str, Any]:
    name = f"{executor}{workers}-r{rep}"
    workdir = folder / "runs" / name
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-al", str(base), str(workdir)], check=True)
    args = ["run", str(pipe), "--workdir", str(workdir), "--from", "segment"]
    args += ["--until", "code", "--executor", executor, "--workers", str(workers)]
    wall, cpu, sampler = qualpipe(args, folder / f"{name}.log")
    stages: dict[str, Any] = {}
    for stage in BATCH_STAGES:
        m = json.loads((workdir / stage / "manifest.json").read_text(encoding="utf-8"))
        seconds = float(m["seconds"])
        stages[stage] = {
            "seconds": round(seconds, 2),
            "MB/s": round(mb / seconds, 2),
            "rows": {k: v["rows"] for k, v in m["outputs"].items()},
            "fingerprints": {k: v["fingerprint"] for k, v in m["outputs"].items()},
            **sampler.peak(_epoch(m["started_at"]), _epoch(m["finished_at"])),
        }
    shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "executor": executor,
        "workers": workers,
        "repeat": rep,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 1),
        "stages": stages,
    }
    print(
        f"  {name}: wall {wall:.1f} s, cpu {cpu:.0f} s, "
        + ", ".join(
            f"{s} {v['seconds']:.1f} s {v['peak_pss_sum_mib']:.0f} MiB" for s, v in stages.items()
        ),
        file=sys.stderr,
        flush=True,
    )
    return result


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"\n**{res['mb']:.0f} MB, {res['documents']:,} transcripts, upstream: "
        f"{' -> '.join(res['upstream'])}**\n",
        "| stage | executor | seconds (run 1 / run 2) | CPU s (run 1 / run 2) | MB/s (best) "
        "| peak PSS sum (MiB) | peak RSS sum (MiB) | ray/local (best seconds) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    runs = res["runs"]
    for stage in BATCH_STAGES:
        for workers in sorted({r["workers"] for r in runs}):
            best_local = None
            for executor in ("local", "ray", "ray-data"):
                mine = [r for r in runs if r["executor"] == executor and r["workers"] == workers]
                if not mine:
                    continue
                secs = [r["stages"][stage]["seconds"] for r in mine]
                best = min(secs)
                ratio = ""
                if executor == "local":
                    best_local = best
                elif best_local:
                    ratio = f"{best / best_local:.2f}"
                pss = max(r["stages"][stage]["peak_pss_sum_mib"] for r in mine)
                rss = max(r["stages"][stage]["peak_rss_sum_mib"] for r in mine)
                cpu = " / ".join(f"{r['stages'][stage].get('cpu_seconds', 0):.0f}" for r in mine)
                lines.append(
                    f"| {stage} | {executor} {workers} | {' / '.join(f'{s:.1f}' for s in secs)} "
                    f"| {cpu} | {res['mb'] / best:.2f} | {pss:.0f} | {rss:.0f} | {ratio} |"
                )
    lines += [
        "",
        "| executor | process wall s (run 1 / run 2) | process-tree CPU s (run 1 / run 2) |",
        "| --- | ---: | ---: |",
    ]
    for executor in ("local", "ray", "ray-data"):
        for workers in sorted({r["workers"] for r in runs}):
            mine = [r for r in runs if r["executor"] == executor and r["workers"] == workers]
            if mine:
                walls = " / ".join(f"{r['wall_seconds']:.1f}" for r in mine)
                cpus = " / ".join(f"{r['cpu_seconds']:.0f}" for r in mine)
                lines.append(f"| {executor} {workers} | {walls} | {cpus} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=500.0)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/qp-raybench"))
    parser.add_argument("--anonymise", action="store_true", help="anonymise before segment")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["local:1", "local:2", "ray:1", "ray:2"],
        help="EXECUTOR:WORKERS; ray-data:N runs the stages through Ray Data map_batches",
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    folder = args.dir
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "transcripts"
    info_file = folder / "corpus.json"
    if info_file.exists():
        info = json.loads(info_file.read_text())
    else:
        t0 = time.perf_counter()
        files, nbytes = corpus.write_corpus(data, int(args.mb * 1e6), args.seed, "mixed")
        info = {"files": files, "bytes": nbytes, "seconds": round(time.perf_counter() - t0, 1)}
        info_file.write_text(json.dumps(info))
    mb = info["bytes"] / 1e6
    print(f"corpus: {info['files']} files, {mb:.1f} MB", file=sys.stderr, flush=True)

    pipe = folder / ("pipeline-anon.yaml" if args.anonymise else "pipeline.yaml")
    pipe.write_text(pipeline_yaml(data, folder / "key.json", args.anonymise), encoding="utf-8")
    base = folder / ("base-anon" if args.anonymise else "base")
    upstream = ["ingest", *(["anonymise"] if args.anonymise else []), "codebook"]
    upstream_seconds = {}
    for stage in upstream:
        if not (base / stage / "manifest.json").exists():
            qualpipe(
                ["run", str(pipe), "--workdir", str(base), "--only", stage],
                folder / f"{stage}.log",
            )
        m = json.loads((base / stage / "manifest.json").read_text(encoding="utf-8"))
        upstream_seconds[stage] = m["seconds"]
        print(f"  {stage}: {m['seconds']:.1f} s", file=sys.stderr, flush=True)

    res: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": os.getloadavg(),
        },
        "mb": mb,
        "documents": info["files"],
        "upstream": upstream,
        "upstream_seconds": upstream_seconds,
        "runs": [],
    }
    for rep in range(1, args.repeats + 1):
        for conf in args.configs:
            executor, _, workers = conf.partition(":")
            run = bench_run(folder, pipe, base, executor, int(workers or 1), rep, mb)
            res["runs"].append(run)
            if args.json:
                args.json.write_text(json.dumps(res, indent=2), encoding="utf-8")
    same = [r for r in res["runs"] if r["executor"] != "ray-data"]  # other batches by design
    first = same[0]["stages"] if same else {}
    res["identical_outputs"] = all(
        r["stages"][s]["fingerprints"] == first[s]["fingerprints"]
        for r in same
        for s in BATCH_STAGES
    )
    res["meta"]["load_average_at_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(res, indent=2), encoding="utf-8")
    print(markdown(res))
    print(f"\nidentical outputs in every run: {res['identical_outputs']}")
    return 0 if res["identical_outputs"] else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        raise SystemExit(child(sys.argv[2:]))
    raise SystemExit(main())
