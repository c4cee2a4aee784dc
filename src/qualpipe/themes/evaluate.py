"""How well a pipeline's themes match the themes an answer was written for.

Sample corpora come with a labels file (CSV: ``file``, ``turn``, ``theme``): the
transcript (as ``source_path`` in the documents dataset), the 1-based number of the
participant turn within it, and the theme id the answer was written to illustrate.
:func:`theme_agreement` reads a finished run, gives every labelled answer the theme the
pipeline assigned it (the highest-scoring theme-level node of its segment, or ``none``)
and computes Cohen's kappa and accuracy between the two.

    python -m qualpipe.themes.evaluate RUN_DIR LABELS.csv [--level theme]
"""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qualpipe.coding.agreement import cohen_kappa
from qualpipe.errors import QualpipeError
from qualpipe.store import open_dataset


def read_labels(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"file", "turn", "theme"} <= set(rows[0]):
        raise QualpipeError(f"{path}: a labels file needs the columns file, turn, theme")
    return rows


def assigned_themes(workdir: Path, level: str = "theme") -> dict[tuple[str, int], str]:
    """(source_path, participant turn number) -> the theme the run assigned."""
    docs = (
        open_dataset(workdir / "anonymise", "documents")
        if (workdir / "anonymise").is_dir()
        else open_dataset(workdir / "ingest", "documents")
    )
    source_of = {
        r["doc_id"]: r["source_path"]
        for r in docs.read_all().select(["doc_id", "source_path"]).to_pylist()
    }
    theme_dir = workdir / "theme"
    themes = open_dataset(theme_dir, "themes").read_all().to_pylist()
    levels = {t["theme_id"]: t["level"] for t in themes}
    best: dict[str, tuple[float, str]] = {}
    for a in open_dataset(theme_dir, "theme_assignments").read_all().to_pylist():
        if levels.get(a["theme_id"]) != level:
            continue
        score = a["score"] if a["score"] is not None else 0.0
        if a["segment_id"] not in best or score > best[a["segment_id"]][0]:
            best[a["segment_id"]] = (score, a["theme_id"])
    segments = open_dataset(workdir / "segment").read_all()
    rows = segments.select(["segment_id", "doc_id", "start"]).to_pylist()
    rows.sort(key=lambda r: (r["doc_id"], r["start"]))
    out: dict[tuple[str, int], str] = {}
    turn: Counter[str] = Counter()
    for r in rows:
        turn[r["doc_id"]] += 1
        out[(source_of[r["doc_id"]], turn[r["doc_id"]])] = best.get(r["segment_id"], (0.0, "none"))[
            1
        ]
    return out


def theme_agreement(workdir: Path, labels: Path, level: str = "theme") -> dict[str, Any]:
    """Cohen's kappa and accuracy between labelled and assigned themes."""
    assigned = assigned_themes(workdir, level)
    wanted, got, missing = [], [], []
    for row in read_labels(labels):
        key = (row["file"], int(row["turn"]))
        if key not in assigned:
            missing.append(key)
            continue
        wanted.append(row["theme"])
        got.append(assigned[key])
    if missing:
        raise QualpipeError(
            f"{labels}: {len(missing)} labelled answer(s) have no segment in the run, e.g. "
            f"{missing[0]}; segment with strategy: turn and participant_only: true"
        )
    kappa = cohen_kappa(wanted, got)
    confusion: dict[str, dict[str, int]] = {}
    for w, g in zip(wanted, got, strict=True):
        confusion.setdefault(w, {}).setdefault(g, 0)
        confusion[w][g] += 1
    return {
        "kappa": kappa,
        "accuracy": sum(w == g for w, g in zip(wanted, got, strict=True)) / len(wanted),
        "answers": len(wanted),
        "confusion": confusion,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print(__doc__)
        return 2
    level = args[args.index("--level") + 1] if "--level" in args else "theme"
    result: Mapping[str, Any] = theme_agreement(Path(args[0]), Path(args[1]), level)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
