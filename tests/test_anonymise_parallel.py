"""The anonymise stage's ``workers`` parameter: pass 1 in a process pool, same output.

Runs the stage on a generated corpus (benchmarks/corpus.py) split into many small
batches, with one and with two worker processes, and compares every output byte for
byte: the anonymised documents, the findings and the pseudonym key.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qualpipe import hookimpl
from qualpipe.anonymise.keyfile import KeyStore
from qualpipe.anonymise.recognisers import Recogniser, RecogniserContext, Span
from qualpipe.builtin import anonymise as anonymise_stage
from qualpipe.testing import Project

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import corpus  # noqa: E402

PIPELINE = """\
qualpipe: 1
name: par
stages:
  - id: ingest
    uses: ingest
    with: {{paths: data, manifest: data/participants.csv}}
  - id: anonymise
    uses: anonymise
    with:
      key: {key}
      replace: {{PERSON: pseudonym, PLACE: pseudonym, '*': placeholder}}
      workers: {workers}
"""


def _run(
    root: Path, workers: int, salted: bytes
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bytes]:
    qp = Project(root / "project")
    files, _ = corpus.write_corpus(qp.root / "data", 300_000, seed=3, language="mixed")
    assert files >= 6
    key = root / "keys" / "par.key.json"
    key.parent.mkdir(parents=True)
    key.write_bytes(salted)  # the same salt, so the same pseudonyms
    pipe = qp.pipeline(PIPELINE.format(key=key, workers=workers))
    result = qp.run("run", pipe)
    assert result.exit_code == 0, result.stderr
    documents = qp.dataset("par", "anonymise", "documents").to_pylist()
    findings = qp.dataset("par", "anonymise", "findings").to_pylist()
    return documents, findings, key.read_bytes()


@pytest.mark.slow
def test_two_workers_give_the_same_output_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one document per batch: more batches than the 2 * workers in flight
    monkeypatch.setattr(anonymise_stage, "BATCH", 1)
    monkeypatch.setattr(anonymise_stage, "PASS2_POOL_CHARS", 0)  # pass 2 in workers too
    empty = KeyStore.load(tmp_path / "empty.key.json")
    empty.save()
    salted = empty.path.read_bytes()
    docs1, findings1, key1 = _run(tmp_path / "w1", 1, salted)
    docs2, findings2, key2 = _run(tmp_path / "w2", 2, salted)
    assert len(docs1) >= 6 and len(findings1) > 100
    assert [d["doc_id"] for d in docs2] == [d["doc_id"] for d in docs1]
    assert docs2 == docs1
    assert findings2 == findings1
    assert json.loads(key1)["entries"]
    assert key2 == key1


def find_then_fail(text: str, ctx: RecogniserContext) -> Iterator[Span]:
    if "BOOM" in text:
        raise ValueError("badge recogniser failed on a document")
    yield from ()


class FailingPlugin:
    @hookimpl
    def qualpipe_register_recognisers(self, register: Any) -> None:
        register(Recogniser("failing", ("ID",), find_then_fail))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_recogniser_error_in_a_worker_is_reported_as_in_one_process(
    tmp_path: Path, qualpipe_plugin: Any, workers: int
) -> None:
    qualpipe_plugin(FailingPlugin(), "failing-plugin")
    qp = Project(tmp_path)
    qp.write("data/a.txt", "I: Hi.\nP01: Hello there.\n")
    qp.write("data/b.txt", "I: Hi.\nP02: BOOM goes the secret text.\n")
    qp.write("data/participants.csv", "file,participant\na.txt,P01\nb.txt,P02\n")
    pipe = qp.pipeline(
        PIPELINE.format(key=tmp_path / "keys" / "k.json", workers=workers).replace(
            "      workers:", "      recognisers: [failing]\n      workers:"
        )
    )
    result = qp.run("run", pipe)
    assert result.exit_code != 0
    assert "badge recogniser failed on a document" in result.stderr
    assert "secret text" not in result.stderr


def test_workers_default_to_the_runs_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    detect = anonymise_stage._detect_batches

    def spy(ctx: Any, engine: Any, options: Any, workers: int) -> Any:
        seen.append(workers)
        return detect(ctx, engine, options, 1)

    monkeypatch.setattr(anonymise_stage, "_detect_batches", spy)
    qp = Project(tmp_path / "project")
    corpus.write_corpus(qp.root / "data", 20_000, seed=3, language="mixed")
    key = tmp_path / "keys" / "k.json"
    pipe = qp.pipeline(PIPELINE.format(key=key, workers=1).replace("      workers: 1\n", ""))
    for args, expected in ((("--workers", "2"), 2), (("--force",), 1)):
        result = qp.run("run", pipe, *args)
        assert result.exit_code == 0, result.stderr
        assert seen.pop() == expected


@pytest.mark.parametrize("workers", [1, 2])
def test_pass_two_workers_propagate_and_guard_like_one_process(
    tmp_path: Path, workers: int
) -> None:
    from qualpipe import StageError
    from qualpipe.anonymise.engine import Engine, Propagator
    from qualpipe.anonymise.replace import Replaced

    values = {"Sandviken": "PLACE", "Anna Berg": "PERSON"}
    engine = Engine([], {})
    propagator = Propagator(values.items())
    texts = [f"I: Hi.\nP01: I moved to Sandviken in {i}. Anna Berg's dog.\n" for i in range(40)]
    rows = [{"text": t, "doc_id": f"d{i}"} for i, t in enumerate(texts)]
    spill = anonymise_stage._SpanSpill(None)
    for _ in rows:
        spill.append(anonymise_stage._pack([], [], []))
    spill.rewind()
    names: tuple[list[str], list[str]] = ([], [])
    with anonymise_stage._Pass2(workers, propagator, values, engine, names) as pass2:
        out = list(pass2.propagated([rows[:25], rows[25:]], spill))
        assert [r["doc_id"] for part, _, _ in out for r in part] == [r["doc_id"] for r in rows]
        assert [last for _, _, last in out][-1] is True
        found = [[(s.start, s.end, s.entity_type) for s in spans] for _, m, _ in out for spans in m]
        assert found == [
            [(s.start, s.end, s.entity_type) for s in propagator.find(t)] for t in texts
        ]
        # a replaced text that still holds a value outside its replacements fails the
        # stage, here or in a worker, and the message names the document, not the value
        start = texts[0].index("Sandviken")
        covered = [Replaced(start, start + 9, start, start + 9, "PLACE", "x", 1.0, "[Place 1]")]
        name = texts[0].index("Anna Berg")
        both = [*covered, Replaced(name, name + 9, name, name + 9, "PERSON", "x", 1.0, "[N 1]")]
        pass2.guard([("d0", texts[0], both)] * 10)
        with pytest.raises(StageError, match=r"leak guard: an original PERSON value .* d0 ") as err:
            pass2.guard([("d0", texts[0], covered)] * 10)
            pass2.finish()
        assert "Anna" not in str(err.value)
    spill.close()
