"""Anonymisation throughput on one core: the recogniser path and the whole stage.

    .venv/bin/python benchmarks/anonymise_speed.py --mb 100 --json out.json

1. ``detect``: every built-in recogniser plus corpus propagation
   (``qualpipe.anonymise.api.find_in_corpus``), in memory, on a generated corpus;
   each recogniser is also timed alone.
2. ``stage``: ``ingest -> anonymise`` through ``qualpipe run`` on the same corpus written
   to disk, read from the stage manifests (two passes, replacement, leak guard, Parquet,
   review page).
Figures are MB/s of transcript text (10^6 characters per second; the text is nearly
all ASCII, so bytes and characters differ by under 2 %) per second of this process's CPU
time (``time.process_time``), so they are per-core figures that do not drop when other
programs share the machine. The stage also reports its wall-clock figures (its manifest's
``seconds``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402

from qualpipe.anonymise.api import default_recognisers, find_in_corpus  # noqa: E402
from qualpipe.anonymise.engine import DocContext, Engine  # noqa: E402


def time_recognisers(texts: dict[str, str]) -> dict[str, float]:
    chars = sum(map(len, texts.values()))
    out = {}
    engine = Engine(default_recognisers(), {})
    for r in engine.recognisers:
        from qualpipe.anonymise.recognisers import RecogniserContext

        t0 = time.process_time()
        for doc_id, text in texts.items():
            ctx = RecogniserContext(doc_id, None, (), {}, {}, engine.states[r.name])
            for _ in r.find(text + "", ctx):  # a fresh string: no shared scan cache
                pass
        out[r.name] = chars / (time.process_time() - t0) / 1e6
    t0 = time.process_time()
    for doc_id, text in texts.items():
        engine.detect(text, DocContext(doc_id, None, (), {}))
    out["all recognisers (one pass)"] = chars / (time.process_time() - t0) / 1e6
    return out


def run_stage(folder: Path, key: Path) -> dict[str, float]:
    from qualpipe.runner import RunOptions, run

    pipe = folder / "pipeline.yaml"
    pipe.write_text(
        "qualpipe: 1\nname: speed\nstages:\n"
        "  - id: ingest\n    uses: ingest\n"
        "    with: {paths: transcripts, manifest: transcripts/participants.csv}\n"
        f"  - {{id: anonymise, uses: anonymise, with: {{key: {key}, review: false}}}}\n",
        encoding="utf-8",
    )
    cpu0 = time.process_time()
    summary = run(pipe, (), RunOptions(progress=False))
    cpu_total = time.process_time() - cpu0
    chars = 0
    for f in (folder / "transcripts").glob("*.txt"):
        chars += len(f.read_text(encoding="utf-8"))
    seconds = {r.stage_id: r.manifest["seconds"] for r in summary.results if r.manifest}
    return {f"{k} MB/s": chars / v / 1e6 for k, v in seconds.items()} | {
        "characters": chars,
        "ingest + anonymise CPU seconds": round(cpu_total, 2),
        "ingest + anonymise MB per CPU second": chars / cpu_total / 1e6,
        **{f"{k} seconds": v for k, v in seconds.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-stage", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpus.write_corpus(folder / "transcripts", int(args.mb * 1e6), args.seed, "mixed")
        texts = {
            f.stem: f.read_text(encoding="utf-8")
            for f in sorted((folder / "transcripts").glob("*.txt"))
        }
        chars = sum(map(len, texts.values()))
        result: dict[str, object] = {"mb": chars / 1e6, "documents": len(texts)}
        sample = dict(list(texts.items())[: max(1, len(texts) // 10)])
        result["recognisers MB/s (10% sample)"] = time_recognisers(sample)
        t0 = time.process_time()
        find_in_corpus(texts)
        result["detect + propagate MB/s"] = chars / (time.process_time() - t0) / 1e6
        del texts
        if not args.skip_stage:
            key = folder.parent / f"{folder.name}.key.json"
            try:
                result["stage"] = run_stage(folder, key)
            finally:
                key.unlink(missing_ok=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
