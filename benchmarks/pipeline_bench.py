"""Scale benchmark: the whole SIDL-style pipeline on generated corpora of growing size.

    .venv/bin/python benchmarks/pipeline_bench.py --mb 10 100 --workers 1 2 --json out.json

For each size a corpus is written with ``corpus.write_corpus`` (fixed seed) into a
temporary folder, then the seven stages run ``ingest -> anonymise -> segment ->
codebook -> code -> theme -> export`` (the settings of ``pipelines/sidl.yaml``; the
anonymise key lives in the temporary folder, no review page; export writes csv and
parquet, plus qdpx and html up to ``--full-export-mb``). Every stage runs as its own
subprocess (``python -m qualpipe run PIPELINE --only STAGE --workdir ...``) under
``/usr/bin/time``, so each stage's peak RSS is measured on a fresh process. Per stage:
seconds (the stage manifest's ``seconds``), corpus MB/s, output rows per second,
peak RSS; per run: wall time (subprocesses, including interpreter start-up) and
whole-pipeline MB/s. ``--workers`` only changes the batch-wise stages (segment, code);
each worker setting runs the whole pipeline in its own run folder.
MB means 10^6 bytes of transcript text on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402

STAGES = ("ingest", "anonymise", "segment", "codebook", "code", "theme", "export")
TIME = "/usr/bin/time"


def pipeline_yaml(
    data: Path,
    key: Path,
    exports: Path | None = None,
    formats: Sequence[str] = (),
    *,
    name: str = "bench",
    anonymise: bool = True,
) -> str:
    """The settings of pipelines/sidl.yaml on ``data``: up to ``code``, then ``theme``
    and ``export`` when ``exports`` is given; ``anonymise=False`` segments the ingested
    documents directly (ray_bench.py uses this for batch-wise stages only)."""
    codebook = REPO / "pipelines" / "codebooks" / "sidl.yaml"
    anon = f"""  - id: anonymise
    uses: anonymise
    with:
      key: {key}
      review: false
      replace: {{PERSON: pseudonym, "*": placeholder}}
      allow: [ICA, Coop, Apoteket]
"""
    tail = f"""  - id: theme
    uses: theme
    with: {{quotes_per_theme: 2, label: role}}
  - id: export
    uses: export
    with: {{formats: [{", ".join(formats)}], out: {exports}}}
"""
    return f"""qualpipe: 1
name: {name}
stages:
  - id: ingest
    uses: ingest
    with: {{paths: {data}, manifest: {data / "participants.csv"}, language: en}}
{anon if anonymise else ""}  - id: segment
    uses: segment
    inputs: [{"anonymise" if anonymise else "ingest"}]
    with: {{strategy: turn, participant_only: true}}
  - id: codebook
    uses: codebook
    with: {{path: {codebook}}}
  - id: code
    uses: code
    with:
      coders:
        - {{name: rules, negation: false, language: auto}}
        - {{name: semantic, top_k: 2, threshold: 0.05}}
{tail if exports is not None else ""}"""


def run_stage(
    pipe: Path, workdir: Path, stage: str, workers: int, log: Path
) -> tuple[float, int, float]:
    """Run one stage in a fresh process; (wall seconds, peak RSS in KiB, CPU seconds).

    CPU seconds are user + system time of the process and the worker processes it
    waited for (``/usr/bin/time``), start-up included: unlike wall time they do not grow
    when other programs share the machine.
    """
    rss_file = log.with_suffix(".rss")
    cmd = [sys.executable, "-m", "qualpipe", "run", str(pipe), "--only", stage]
    cmd += ["--workdir", str(workdir), "--workers", str(workers), "--no-progress"]
    if Path(TIME).exists():
        cmd = [TIME, "-f", "%M %U %S", "-o", str(rss_file), *cmd]
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(f"stage {stage} failed (exit {proc.returncode}):\n{tail}")
    rss, cpu = 0, 0.0
    if rss_file.exists():
        lines = [line.split() for line in rss_file.read_text().splitlines()]
        fields = [f for f in lines if len(f) == 3 and f[0].isdigit()]
        if fields:
            rss, cpu = int(fields[-1][0]), float(fields[-1][1]) + float(fields[-1][2])
    return wall, rss, cpu


def bench_one(folder: Path, data: Path, mb: float, workers: int, formats: list[str]) -> dict:
    run_dir = folder / f"w{workers}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir()
    # One key per corpus, shared by the worker settings: the second run reuses the first
    # run's replacements, so both see the same anonymised text.
    key = folder / "anonymise.key.json"
    pipe = run_dir / "pipeline.yaml"
    pipe.write_text(pipeline_yaml(data, key, run_dir / "exports", formats), encoding="utf-8")
    workdir = run_dir / "store"
    stages: dict[str, dict[str, Any]] = {}
    wall_total = 0.0
    for stage in STAGES:
        try:
            wall, rss, cpu = run_stage(pipe, workdir, stage, workers, run_dir / f"{stage}.log")
        except RuntimeError as exc:
            print(f"  {mb:.0f} MB w{workers} {exc}", file=sys.stderr, flush=True)
            shutil.rmtree(workdir, ignore_errors=True)
            return {
                "workers": workers,
                "export_formats": formats,
                "stages": stages,
                "failed": stage,
                "error": str(exc).splitlines()[-1],
            }
        wall_total += wall
        manifest = json.loads((workdir / stage / "manifest.json").read_text(encoding="utf-8"))
        seconds = float(manifest["seconds"])
        rows = {k: int(v.get("rows", 0)) for k, v in manifest.get("outputs", {}).items()}
        total_rows = sum(rows.values())
        stages[stage] = {
            "seconds": round(seconds, 3),
            "wall_seconds": round(wall, 3),
            "cpu_seconds": round(cpu, 2),
            "MB/s": round(mb / seconds, 2) if seconds else None,
            "MB/s per CPU second": round(mb / cpu, 2) if cpu else None,
            "rows": rows,
            "rows/s": round(total_rows / seconds) if seconds else None,
            "peak_rss_mib": round(rss / 1024, 1),
        }
        print(
            f"  {mb:.0f} MB w{workers} {stage}: {seconds:.1f} s, "
            f"{stages[stage]['peak_rss_mib']} MiB",
            file=sys.stderr,
            flush=True,
        )
    stage_seconds = sum(s["seconds"] for s in stages.values())
    cpu_seconds = sum(s["cpu_seconds"] for s in stages.values())
    shutil.rmtree(workdir, ignore_errors=True)
    shutil.rmtree(run_dir / "exports", ignore_errors=True)
    return {
        "workers": workers,
        "export_formats": formats,
        "stages": stages,
        "stage_seconds": round(stage_seconds, 2),
        "wall_seconds": round(wall_total, 2),
        "cpu_seconds": round(cpu_seconds, 2),
        "MB/s per CPU second": round(mb / cpu_seconds, 2) if cpu_seconds else None,
        "MB/s (stage seconds)": round(mb / stage_seconds, 2),
        "MB/s (wall)": round(mb / wall_total, 2),
        "peak_rss_mib": max(s["peak_rss_mib"] for s in stages.values()),
    }


def markdown(results: list[dict]) -> str:
    lines = []
    for size in results:
        for run in size["runs"]:
            if "failed" in run:
                lines.append(
                    f"\n**{size['mb']:.1f} MB, --workers {run['workers']}**: stage "
                    f"{run['failed']} failed: {run['error']}\n"
                )
                continue
            lines.append(
                f"\n**{size['mb']:.1f} MB, {size['documents']} documents, "
                f"--workers {run['workers']}** (export: {', '.join(run['export_formats'])})\n"
            )
            lines.append(
                "| stage | seconds | MB/s | CPU s | MB per CPU s | output rows | rows/s "
                "| peak RSS (MiB) |"
            )
            lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            for name, s in run["stages"].items():
                lines.append(
                    f"| {name} | {s['seconds']:.2f} | {s['MB/s']} | {s.get('cpu_seconds', 0):.1f} "
                    f"| {s.get('MB/s per CPU second')} | {sum(s['rows'].values()):,} "
                    f"| {s['rows/s']:,} | {s['peak_rss_mib']:.0f} |"
                )
            lines.append(
                f"| **total** | **{run['stage_seconds']:.1f}** (wall {run['wall_seconds']:.1f}) "
                f"| **{run['MB/s (stage seconds)']}** (wall {run['MB/s (wall)']}) "
                f"| **{run.get('cpu_seconds', 0):.1f}** | **{run.get('MB/s per CPU second')}** "
                f"| | | **{run['peak_rss_mib']:.0f}** |"
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, nargs="+", default=[10.0, 100.0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--language", default="mixed", choices=corpus.LANGUAGES)
    parser.add_argument(
        "--density", type=float, default=0.3, help="identifier density of the corpus (0-1)"
    )
    parser.add_argument(
        "--full-export-mb",
        type=float,
        default=10.0,
        help="sizes up to this also export qdpx and html (default 10)",
    )
    parser.add_argument("--json", type=Path, help="write the results here (after each run)")
    parser.add_argument("--tmp", type=Path, help="parent of the temporary folder")
    args = parser.parse_args()

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "seed": args.seed,
        "language": args.language,
        "density": args.density,
    }
    results: list[dict] = []
    for mb in args.mb:
        with tempfile.TemporaryDirectory(dir=args.tmp, prefix="qp-bench-") as tmp:
            folder = Path(tmp)
            data = folder / "transcripts"
            t0 = time.perf_counter()
            files, nbytes = corpus.write_corpus(
                data, int(mb * 1e6), args.seed, args.language, density=args.density
            )
            print(
                f"corpus: {files} files, {nbytes / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            size = {"mb": nbytes / 1e6, "documents": files, "runs": []}
            results.append(size)
            formats = ["csv", "parquet"]
            if mb <= args.full_export_mb:
                formats += ["qdpx", "html"]
            for workers in args.workers:
                size["runs"].append(bench_one(folder, data, nbytes / 1e6, workers, formats))
                if args.json:
                    args.json.write_text(
                        json.dumps({"meta": meta, "results": results}, indent=2),
                        encoding="utf-8",
                    )
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
