"""The theme stage's streaming engine gives exactly what the in-memory functions give.

The reference below is the theme stage as it was before streaming: Python objects for
every segment and coding, :func:`roll_up`, :func:`theme_rows`, :func:`select_quotes`,
:func:`propose` and friends. The engine (:mod:`qualpipe.themes.stream`) must produce the
same rows on messy input (duplicated segment ids and texts, interviewer and blank turns,
unknown codes and segments, rejected codings, missing scores, several coders, codings
out of segment order) and with batches small enough that its bounded quote pools are
pruned many times.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from qualpipe.codebook import Codebook, load_yaml_codebook
from qualpipe.schemas import CODINGS, SEGMENTS
from qualpipe.themes import stream
from qualpipe.themes.cooccurrence import by_participant, cooccurrence_rows
from qualpipe.themes.proposals import code_group_rows, proposal_rows, propose
from qualpipe.themes.quotes import (
    QuoteOptions,
    is_interviewer,
    participant_numbers,
    select_quotes,
)
from qualpipe.themes.rollup import (
    Segment,
    assignment_rows,
    roll_up,
    theme_nodes,
    theme_rows,
)
from qualpipe.themes.text import TfidfMatrix

BOOK = Path(__file__).resolve().parents[1] / "pipelines" / "codebooks" / "sidl.yaml"
WORDS = (
    "coffee talk listen walk bus shop plan schedule help home lake swim money "
    "kaffe prata lyssna promenad buss handla planera schema hjälp hemma sjön simma pengar "
    "worker decide together friend mother phone letter doctor pharmacy bank"
).split()
STATUSES = frozenset({"suggested", "accepted", "human"})


def _corpus(seed: int, n_segments: int) -> tuple[pa.Table, pa.Table, Codebook]:
    rng = random.Random(seed)
    book = load_yaml_codebook(BOOK)
    codes = [c.id for c in book.codes] + ["not-in-the-book"]
    roles = ["Service user", "Support worker", None]
    segs: list[dict[str, Any]] = []
    for i in range(n_segments):
        doc = f"doc{i // 40:03d}"
        pid = None if i // 40 % 7 == 3 else f"P{rng.randrange(12):02d}"
        role = roles[(i // 40) % 3]
        speaker = rng.choice(["Interviewer", "I1", pid or "R", pid or "R", pid or "R"])
        n_words = rng.choice([0, 3, 8, 16, 25, 40, 120])
        text = " ".join(rng.choice(WORDS) for _ in range(n_words))
        if rng.random() < 0.08 and segs:
            text = rng.choice(segs)["text"].upper()  # the same words again
        if rng.random() < 0.03:
            text = "   "
        seg_id = f"{doc}:s{i:05d}"
        if rng.random() < 0.02 and segs:
            seg_id = rng.choice(segs)["segment_id"]  # a duplicated id: the first counts
        segs.append(
            {
                "segment_id": seg_id,
                "doc_id": doc,
                "start": 0,
                "end": len(text),
                "text": text,
                "speaker": speaker,
                "participant_id": pid,
                "attributes": [("role", role), ("site", f"S{i // 40 % 2}")] if role else [],
                "context": None,
                "strategy": "turn",
                "sensitive": True,
            }
        )
    codings: list[dict[str, Any]] = []
    doc_of: dict[str, str] = {}
    for seg in segs:
        doc_of.setdefault(seg["segment_id"], seg["doc_id"])
    for n, seg in enumerate(segs):
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            code = rng.choice(codes)
            codings.append(
                {
                    "coding_id": f"c{len(codings)}",
                    "segment_id": seg["segment_id"] if rng.random() > 0.01 else "nowhere",
                    "doc_id": doc_of[seg["segment_id"]],
                    "start": 0,
                    "end": 1,
                    "code_id": code,
                    "coder": rng.choice(["rules", "semantic", "human"]),
                    "score": None if rng.random() < 0.1 else round(rng.random(), 3),
                    "codebook_version": book.version if n % 50 else "old",
                    "status": rng.choice(["suggested", "accepted", "rejected", "human"]),
                }
            )
    rng.shuffle(codings[: len(codings) // 3])  # some out of segment order
    return (
        pa.Table.from_pylist(segs, schema=SEGMENTS.schema),
        pa.Table.from_pylist(codings, schema=CODINGS.schema),
        book,
    )


def _reference(
    segments_t: pa.Table, codings_t: pa.Table, book: Codebook, options: QuoteOptions
) -> dict[str, list[dict[str, Any]]]:
    segments: dict[str, Segment] = {}
    for row in segments_t.to_pylist():
        if row["segment_id"] not in segments:
            segments[row["segment_id"]] = Segment.from_row(row, len(segments))
    rollup = roll_up(codings_t.to_pylist(), book, STATUSES, segments)
    participant_of = {s.segment_id: s.participant for s in segments.values()}
    themes_of: dict[str, set[str]] = {}
    for seg_id, theme_id in rollup.assignments:
        themes_of.setdefault(seg_id, set()).add(theme_id)
    co: list[dict[str, Any]] = []
    for kind, per_segment in (("code", rollup.codes), ("theme", themes_of)):
        co += cooccurrence_rows(kind, "segment", per_segment)
        co += cooccurrence_rows(kind, "participant", by_participant(per_segment, participant_of))
    ordered = list(segments.values())
    matrix = TfidfMatrix.fit([s.text for s in ordered])
    row_of = {s.segment_id: i for i, s in enumerate(ordered)}
    numbers = participant_numbers(ordered, options.role_attribute)
    members = rollup.by_theme()
    quotes: list[dict[str, Any]] = []
    for node in theme_nodes(book):
        quotes += select_quotes(
            node.id, members.get(node.id, []), segments, matrix, row_of, options, numbers
        )
    spoken = [s for s in ordered if not is_interviewer(s.speaker, options.interviewer_labels)]
    found = propose(spoken, 4, 7, matrix, row_of)
    proposals = proposal_rows(found, segments, 7)
    names = {c.id: c.name for c in book.codes}
    proposals += code_group_rows(rollup.codes, segments, names, 0.1)
    return {
        "themes": theme_rows(book, rollup, segments),
        "theme_assignments": assignment_rows(rollup, book, segments),
        "cooccurrence": co,
        "quotes": quotes,
        "proposals": proposals,
    }


def _streamed(
    segments_t: pa.Table,
    codings_t: pa.Table,
    book: Codebook,
    options: QuoteOptions,
    tmp_path: Path,
    batch: int,
) -> tuple[dict[str, list[dict[str, Any]]], stream.ThemeEngine]:
    engine = stream.ThemeEngine(book, STATUSES, book.version, options, tmp_path)
    engine.read_segments(segments_t.to_batches(batch))
    engine.read_codings(codings_t.to_batches(batch))
    assignments: list[dict[str, Any]] = []
    for table in engine.assignments():
        assignments += table.to_pylist()
    engine.second_pass(True, 7, 0.1)
    quotes = engine.quotes(
        lambda wanted: stream.segment_texts(segments_t.to_batches(batch), engine.index, wanted)
    )
    proposals = engine.proposal_rows(engine.proposals(4, 7), 7)
    proposals += engine.code_group_rows()
    out = {
        "themes": engine.theme_rows(),
        "theme_assignments": assignments,
        "cooccurrence": engine.cooccurrence(),
        "quotes": quotes,
        "proposals": proposals,
    }
    return out, engine


@pytest.mark.parametrize(("seed", "batch", "per_theme"), [(1, 64, 3), (2, 1000, 2), (3, 7, 5)])
def test_streaming_engine_equals_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, batch: int, per_theme: int
) -> None:
    monkeypatch.setattr(stream, "SPILL_ROWS", 100 * seed)  # spilled in many pieces
    monkeypatch.setattr(stream, "RUN_MAX", 50 * seed)  # many id look-up runs, key buckets
    monkeypatch.setattr(stream, "BLOCK_ENTRIES", 7 * seed)  # scores and centroids in blocks
    segments_t, codings_t, book = _corpus(seed, 1500)
    options = QuoteOptions(per_theme=per_theme, min_words=15, max_words=30, label="number")
    expected = _reference(segments_t, codings_t, book, options)
    got, engine = _streamed(segments_t, codings_t, book, options, tmp_path, batch)
    assert engine.other_version > 0
    assert set(engine.skipped) == {"status", "unknown_code", "unknown_segment"}
    for name, rows in expected.items():
        assert rows, name  # the corpus exercises every output
        assert got[name] == rows, name


def test_proposals_sample_is_seeded_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    segments_t, codings_t, book = _corpus(4, 1200)
    options = QuoteOptions(per_theme=2)
    monkeypatch.setattr(stream, "PROPOSAL_CAP", 100)
    runs = []
    for n in range(2):
        folder = tmp_path / str(n)
        folder.mkdir()
        got, engine = _streamed(segments_t, codings_t, book, options, folder, 50)
        assert engine.sample_total > 100
        assert len(engine.sample) == 100
        runs.append(got["proposals"])
    assert runs[0] == runs[1]
    clustered = [r for r in runs[0] if r["theme_id"].startswith("proposal-")]
    assert clustered and all("a seeded sample of" in r["description"] for r in clustered)
    assert sum(r["segments"] for r in clustered) == 100


def test_proposals_sample_is_the_smallest_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample (cut back as it grows, new segments filtered by the current cut-off) is
    the PROPOSAL_CAP eligible segments with the smallest keyed hashes of their ids."""
    segments_t, codings_t, book = _corpus(5, 1500)
    options = QuoteOptions(per_theme=2)
    monkeypatch.setattr(stream, "PROPOSAL_CAP", 150)
    monkeypatch.setattr(stream, "SAMPLE_SLACK", 1.1)
    _, engine = _streamed(segments_t, codings_t, book, options, tmp_path, 40)
    first: dict[str, Segment] = {}
    for row in segments_t.to_pylist():
        if row["segment_id"] not in first:
            first[row["segment_id"]] = Segment.from_row(row, len(first))
    matrix = TfidfMatrix.fit([s.text for s in first.values()])
    eligible = [
        s.segment_id
        for s, has_words in zip(first.values(), matrix.nonempty(), strict=True)
        if has_words and not is_interviewer(s.speaker, options.interviewer_labels)
    ]
    assert engine.sample_total == len(eligible) > 150
    expected = sorted(eligible, key=lambda i: (stream._sample_key(i, 7), first[i].order))[:150]
    assert sorted(engine.index.ids(sorted(engine.sample))) == sorted(expected)


def test_segment_lookup_runs_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Id look-up runs merge while the one before is no bigger, up to RUN_MAX entries,
    and every id is found in them."""
    monkeypatch.setattr(stream, "RUN_MAX", 12)
    index = stream.SegmentIndex()
    total = 0
    for size in [5, 5, 5, 3, 8, 5, 5, 5, 5, 5, 1]:
        ids = [f"doc:s{i}" for i in range(total, total + size)]
        hashes = np.array([hash(i) for i in ids], dtype=np.int64)
        stream._add_run(index.id_runs, hashes, np.arange(total, total + size))
        total += size
    sizes = [len(h) for h, _ in index.id_runs]
    assert max(sizes) <= 12 and len(sizes) < 11 and sum(sizes) == total
    assert all(list(h) == sorted(h) for h, _ in index.id_runs)
    ids = [f"doc:s{i}" for i in range(total)]
    assert index.lookup([*ids, "elsewhere", None]).tolist() == [*range(total), -1, -1]
