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
