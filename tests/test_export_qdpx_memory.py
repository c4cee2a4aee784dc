"""The .qdpx export holds one document's codings at a time: the codings and segments are
partitioned by document on disk, so the order they are read in, the batch sizes and the
number of documents change neither the bytes nor (beyond a few fields a document) the
memory the export needs."""

from __future__ import annotations

import random
import tracemalloc
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from qualpipe.codebook import Codebook
from qualpipe.errors import DatasetError
from qualpipe.export import refi
from qualpipe.export.refi import build_qdpx, export_qdpx
from qualpipe.exporters import ExportBundle
from qualpipe.schemas import CODEBOOK, CODINGS, DOCUMENTS, SEGMENTS
from qualpipe.store import DatasetReader, write_part

etree = pytest.importorskip("lxml.etree")

PROJECT_XSD = Path(__file__).resolve().parents[1].parent / "shared" / "refi-qda" / "Project.xsd"
Q = "{urn:QDA-XML:project:1.0}"
WORDS = ["vi", "åt", "maten", "i", "köket", "😀", "och", "pratade", "om", "stödet"]
CODES = ["c1", "c2", "c3"]


def corpus(documents: int, codings: int, seed: int = 7) -> dict[str, list[dict[str, Any]]]:
    """Documents of two turns, a segment each, and ``codings`` codings a document: three
    coders, every status, and a duplicate (same code, coder and span) now and then."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    segments: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for d in range(documents):
        doc_id = f"d{d:05d}"
        turns = [" ".join(rng.choice(WORDS) for _ in range(40)) for _ in range(2)]
        text = f"I: {turns[0]}\nIP: {turns[1]}\n"
        docs.append(
            {"doc_id": doc_id, "source_path": f"{d}.txt", "participant_id": f"P{d % 7}"}
            | {"attributes": [("role", f"r{d % 3}")], "text": text, "sensitive": False}
        )
        for t, turn in enumerate(turns):
            start = text.index(turn)
            segments.append(
                {"segment_id": f"{doc_id}:t{t}", "doc_id": doc_id, "start": start}
                | {"end": start + len(turn), "text": turn, "sensitive": False}
            )
        for c in range(codings):
            base = c - 1 if c % 9 == 8 else c  # now and then a duplicate of the one before
            seg = segments[-1 - base % 2]
            if base == c:
                start = rng.randrange(seg["start"], seg["end"] - 1)
                end = rng.randrange(start + 1, min(seg["end"], start + 30) + 1)
            else:
                start, end = rows[-1]["start"], rows[-1]["end"]
            coder = ["rules", "semantic", "anna"][base % 3]
            status = "human" if coder == "anna" else "rejected" if c % 11 == 10 else "suggested"
            rows.append(
                {"coding_id": f"{doc_id}:{c}", "segment_id": seg["segment_id"], "doc_id": doc_id}
                | {"start": start, "end": end, "code_id": CODES[base % 3], "coder": coder}
                | {"coder_version": "1", "score": 0.5, "status": status}
                | {"evidence": [{"term": rng.choice(WORDS), "start": start, "end": end}]}
            )
    return {"documents": docs, "segments": segments, "codings": rows}


def bundle(
    root: Path, data: dict[str, list[dict[str, Any]]], parts: int = 1, shuffle: bool = False
) -> ExportBundle:
    book = Codebook.from_table(
        pa.Table.from_pylist(
            [
                {"code_id": c, "name": f"Code {c}", "level": "theme", "codebook_version": "v"}
                for c in CODES
            ],
            schema=CODEBOOK.schema,
        )
    )
    codings = list(data["codings"])
    if shuffle:
        random.Random(3).shuffle(codings)
    kinds = {"documents": DOCUMENTS, "segments": SEGMENTS, "codings": CODINGS}
    datasets: dict[str, DatasetReader] = {}
    for name, kind in kinds.items():
        rows = codings if name == "codings" else data[name]
        table = pa.Table.from_pylist(rows, schema=kind.schema)
        folder = root / "data" / name
        step = -(-table.num_rows // parts)
        for p in range(parts):
            part = table.slice(p * step, step)
            write_part(folder, kind, part, f"part-{p:06d}.parquet", "test")
        datasets[name] = DatasetReader(folder)
    write_part(root / "data" / "codebook", CODEBOOK, book.to_table(), "part-0.parquet", "test")
    datasets["codebook"] = DatasetReader(root / "data" / "codebook")
    out = root / "out"
    out.mkdir()
    return ExportBundle(datasets, out, {"include_segments_as_codes": True}, "mem")


def test_codings_in_any_order_and_any_batch_give_the_same_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = corpus(documents=40, codings=25)
    [first] = export_qdpx(bundle(tmp_path / "a", data))
    expected = first.read_bytes()
    # the codings shuffled over many part files, a few rows a batch and a spill: every
    # document's codings are spread over many spill runs and read back in pieces
    monkeypatch.setattr(refi, "READ_ROWS", 5)
    monkeypatch.setattr(refi, "SPILL_ROWS", 7)
    monkeypatch.setattr(refi, "DOCUMENT_ROWS", 3)
    shuffled = bundle(tmp_path / "b", data, parts=6, shuffle=True)
    [second] = export_qdpx(shuffled)
    assert second.read_bytes() == expected
    assert sorted(p.name for p in shuffled.out_dir.iterdir()) == ["mem.qdpx"]  # no spill left

    with zipfile.ZipFile(second) as zf:
        root = etree.fromstring(zf.read("project.qde"))
    schema = etree.XMLSchema(etree.parse(str(PROJECT_XSD)))
    assert schema.validate(root), schema.error_log
    # each source has its own document's codings: one per code, coder and span, in order
    wanted: dict[str, set[tuple[int, int, str, str]]] = {}
    for c in data["codings"]:
        if c["status"] != "rejected":
            key = (c["start"], c["end"], c["code_id"], c["coder"])
            wanted.setdefault(c["doc_id"], set()).add(key)
    for source in root.iter(f"{Q}TextSource"):
        doc_id = source.get("name").split("_", 1)[1]
        sels = source.findall(f"{Q}PlainTextSelection")
        spans = [(int(s.get("startPosition")), int(s.get("endPosition"))) for s in sels]
        assert spans == sorted(spans)
        memos = [s.findtext(f"{Q}Description") or "" for s in sels]
        coded = [m for m in memos if "qualpipe coding:" in m]
        assert all(f"qualpipe coding: {doc_id}:" in m for m in coded)
        assert len(coded) == len(wanted[doc_id])
        assert sum("qualpipe segment:" in m for m in memos) == 2
    content = build_qdpx(shuffled)
    kept = sum(len(v) for v in wanted.values())
    rejected = sum(c["status"] == "rejected" for c in data["codings"])
    assert content.stats["codings"] == kept
    assert content.stats["not_exported"] == {
        "rejected": rejected,
        "duplicate": len(data["codings"]) - rejected - kept,
    }
    assert content.stats["segments_as_codes"] == 80
    users = Counter(u.get("name") for u in root.iter(f"{Q}User"))
    assert set(users) == {"rules v1", "semantic v1", "anna", "qualpipe"}


def _peak(root: Path, documents: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """Python memory at its highest while a project of ``documents`` is exported."""
    monkeypatch.setattr(refi, "SPILL_ROWS", 2000)
    monkeypatch.setattr(refi, "READ_ROWS", 1000)
    b = bundle(root, corpus(documents=documents, codings=60), parts=4)
    b.options = {}
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        [path] = export_qdpx(b)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    with zipfile.ZipFile(path) as zf:
        assert len(zf.namelist()) == documents + 2
    return peak


def test_memory_does_not_grow_with_the_codings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = _peak(tmp_path / "small", 50, monkeypatch)
    large = _peak(tmp_path / "large", 200, monkeypatch)
    # 150 more documents of 60 codings each: holding every selection to the end (as the
    # export did before it spilled them) peaked 5 MB higher (12.6 -> 17.6 MB); now the
    # peak is the same (10.6 -> 10.2 MB): a document's own fields cost ~1 KB
    assert large - small < 1_500_000, (small, large)


def test_a_coding_of_another_documents_segment_is_refused(tmp_path: Path) -> None:
    data = corpus(documents=3, codings=4)
    data["codings"][0]["segment_id"] = "d00002:t0"  # a coding of d00000
    with pytest.raises(DatasetError, match=r"segment 'd00002:t0' does not match .* 'd00000'"):
        build_qdpx(bundle(tmp_path, data))
    assert not list((tmp_path / "out").iterdir())  # the spill folder is gone
